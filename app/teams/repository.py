"""The only door from teams to MongoDB: teams, memberships and invitations.

A membership is its own record (`team_members`, id `<team>:<user>`), indexed by user and
by team, so "my teams" and "this team's members" are both one index scan and a user's
teams can be read per request without loading team documents. Invitations keep only a
SHA-256 of the mailed token; a TTL index removes expired ones.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.db.change_feed import ReadCache
from app.db.client import Db

TEAMS = "teams"
MEMBERS = "team_members"
INVITATIONS = "team_invitations"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    owner_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_mongo(cls, raw: dict[str, Any]) -> Team:
        return cls(
            id=raw["_id"],
            name=raw["name"],
            owner_id=raw["owner_id"],
            created_at=raw["created_at"],
            updated_at=raw["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class Member:
    team_id: str
    user_id: str
    role: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    team_id: str
    email: str
    role: str
    invited_by: str
    created_at: datetime
    expires_at: datetime


def _member(raw: dict[str, Any]) -> Member:
    return Member(raw["team_id"], raw["user_id"], raw["role"], raw["joined_at"])


def _invitation(raw: dict[str, Any]) -> Invitation:
    return Invitation(
        id=raw["_id"],
        team_id=raw["team_id"],
        email=raw["email"],
        role=raw["role"],
        invited_by=raw["invited_by"],
        created_at=raw["created_at"],
        expires_at=raw["expires_at"],
    )


class TeamRepository:
    def __init__(self, db: Db, *, roles: ReadCache[str, dict[str, str]] | None = None) -> None:
        # Users' cached teams and roles (TeamService.roles_of): each write here forgets
        # what it changed at once; other processes hear of it through the change feed.
        self.roles = roles
        self.teams = db[TEAMS]
        self.members = db[MEMBERS]
        self.invitations = db[INVITATIONS]

    async def ensure_indexes(self) -> None:
        await self.members.create_indexes(
            [
                IndexModel([("user_id", ASCENDING), ("team_id", ASCENDING)], name="by_user"),
                IndexModel([("team_id", ASCENDING), ("joined_at", ASCENDING)], name="by_team"),
            ]
        )
        await self.invitations.create_indexes(
            [
                IndexModel([("expires_at", ASCENDING)], name="expiry", expireAfterSeconds=0),
                IndexModel([("team_id", ASCENDING), ("email", ASCENDING)], name="by_team"),
                IndexModel([("token_hash", ASCENDING)], name="by_token", sparse=True),
            ]
        )

    def _forget(self, user_id: str | None = None) -> None:
        if self.roles is not None:
            if user_id is None:
                self.roles.clear()
            else:
                self.roles.invalidate(user_id)

    # -- teams -------------------------------------------------------------------------------

    async def create(self, team: Team, *, now: datetime) -> None:
        await self.teams.insert_one(
            {
                "_id": team.id,
                "name": team.name,
                "owner_id": team.owner_id,
                "created_at": team.created_at,
                "updated_at": team.updated_at,
            }
        )
        await self.add_member(team.id, team.owner_id, "owner", now=now)

    async def get(self, team_id: str) -> Team | None:
        raw = await self.teams.find_one({"_id": team_id})
        return None if raw is None else Team.from_mongo(raw)

    async def get_many(self, team_ids: list[str]) -> list[Team]:
        cursor = self.teams.find({"_id": {"$in": team_ids}}).sort("_id", ASCENDING)
        return [Team.from_mongo(raw) async for raw in cursor]

    async def rename(self, team_id: str, name: str, *, now: datetime) -> Team | None:
        raw = await self.teams.find_one_and_update(
            {"_id": team_id},
            {"$set": {"name": name, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return None if raw is None else Team.from_mongo(raw)

    async def set_owner(self, team_id: str, owner_id: str, *, was: str, now: datetime) -> bool:
        """Hand the team from `was` to `owner_id` in one conditional write: of two
        concurrent transfers, one wins."""
        result = await self.teams.update_one(
            {"_id": team_id, "owner_id": was}, {"$set": {"owner_id": owner_id, "updated_at": now}}
        )
        self._forget()
        return result.modified_count == 1

    async def delete(self, team_id: str) -> bool:
        """The team, its memberships and its invitations."""
        result = await self.teams.delete_one({"_id": team_id})
        await self.members.delete_many({"team_id": team_id})
        await self.invitations.delete_many({"team_id": team_id})
        self._forget()
        return result.deleted_count == 1

    async def count_all(self) -> int:
        return await self.teams.count_documents({})

    async def stream_all(self) -> AsyncIterator[tuple[Team, list[Member]]]:
        """Every team with its members, in id order (exports)."""
        async for raw in self.teams.find({}).sort("_id", ASCENDING):
            members = [_member(m) async for m in self.members.find({"team_id": raw["_id"]})]
            yield Team.from_mongo(raw), sorted(members, key=lambda m: (m.joined_at, m.user_id))

    async def import_team(self, team: Team, members: list[Member]) -> bool:
        """Insert a team as exported (id, owner, members kept); False when its id exists.
        Members are upserted, so a restore stopped half-way completes on the next run."""
        try:
            await self.teams.insert_one(
                {
                    "_id": team.id,
                    "name": team.name,
                    "owner_id": team.owner_id,
                    "created_at": team.created_at,
                    "updated_at": team.updated_at,
                }
            )
            inserted = True
        except DuplicateKeyError:
            inserted = False
        for member in members:
            await self.add_member(team.id, member.user_id, member.role, now=member.joined_at)
        return inserted

    async def owned_by(self, user_id: str) -> list[str]:
        return [raw["_id"] async for raw in self.teams.find({"owner_id": user_id}, {"_id": 1})]

    # -- members -----------------------------------------------------------------------------

    async def add_member(self, team_id: str, user_id: str, role: str, *, now: datetime) -> None:
        """Join (or keep the current role of a member who already is one)."""
        await self.members.update_one(
            {"_id": f"{team_id}:{user_id}"},
            {
                "$setOnInsert": {
                    "team_id": team_id,
                    "user_id": user_id,
                    "role": role,
                    "joined_at": now,
                }
            },
            upsert=True,
        )
        self._forget(user_id)

    async def member(self, team_id: str, user_id: str) -> Member | None:
        raw = await self.members.find_one({"_id": f"{team_id}:{user_id}"})
        return None if raw is None else _member(raw)

    async def members_of(self, team_id: str, *, limit: int) -> list[Member]:
        cursor = self.members.find({"team_id": team_id}).sort("joined_at", ASCENDING).limit(limit)
        return [_member(raw) async for raw in cursor]

    async def count_members(self, team_id: str) -> int:
        return await self.members.count_documents({"team_id": team_id})

    async def count_memberships(self, user_id: str) -> int:
        return await self.members.count_documents({"user_id": user_id})

    async def memberships(self, user_id: str) -> dict[str, str]:
        """The user's teams: team id -> their role in it."""
        cursor = self.members.find({"user_id": user_id}, {"team_id": 1, "role": 1})
        return {raw["team_id"]: raw["role"] async for raw in cursor}

    async def set_role(self, team_id: str, user_id: str, role: str) -> bool:
        result = await self.members.update_one(
            {"_id": f"{team_id}:{user_id}"}, {"$set": {"role": role}}
        )
        self._forget(user_id)
        return result.matched_count == 1

    async def remove_member(self, team_id: str, user_id: str) -> bool:
        result = await self.members.delete_one({"_id": f"{team_id}:{user_id}"})
        self._forget(user_id)
        return result.deleted_count == 1

    async def remove_user(self, user_id: str) -> None:
        await self.members.delete_many({"user_id": user_id})
        self._forget(user_id)

    # -- invitations -------------------------------------------------------------------------

    async def invite(self, invitation: Invitation) -> None:
        await self.invitations.insert_one(
            {
                "_id": invitation.id,
                "team_id": invitation.team_id,
                "email": invitation.email,
                "role": invitation.role,
                "invited_by": invitation.invited_by,
                "created_at": invitation.created_at,
                "expires_at": invitation.expires_at,
                "token_hash": None,
            }
        )

    async def invitation(self, invitation_id: str) -> Invitation | None:
        raw = await self.invitations.find_one({"_id": invitation_id})
        return None if raw is None else _invitation(raw)

    async def invitations_of(self, team_id: str, *, now: datetime) -> list[Invitation]:
        cursor = self.invitations.find({"team_id": team_id, "expires_at": {"$gt": now}})
        return [_invitation(raw) async for raw in cursor.sort("created_at", ASCENDING)]

    async def count_invitations(self, team_id: str, *, now: datetime) -> int:
        return await self.invitations.count_documents(
            {"team_id": team_id, "expires_at": {"$gt": now}}
        )

    async def set_token(self, invitation_id: str, token: str | None) -> bool:
        """Bind the mailed token to the invitation (a new mail replaces the old token)."""
        digest = None if token is None else token_hash(token)
        result = await self.invitations.update_one(
            {"_id": invitation_id}, {"$set": {"token_hash": digest}}
        )
        return result.matched_count == 1

    async def by_token(self, token: str, *, now: datetime) -> Invitation | None:
        raw = await self.invitations.find_one(
            {"token_hash": token_hash(token), "expires_at": {"$gt": now}}
        )
        return None if raw is None else _invitation(raw)

    async def consume(self, invitation_id: str, token: str) -> bool:
        """Use the invitation up: True for the one request that does (single use)."""
        result = await self.invitations.delete_one(
            {"_id": invitation_id, "token_hash": token_hash(token)}
        )
        return result.deleted_count == 1

    async def revoke_for(self, team_id: str, email: str) -> None:
        await self.invitations.delete_many({"team_id": team_id, "email": email})

    async def revoke(self, team_id: str, invitation_id: str) -> bool:
        result = await self.invitations.delete_one({"_id": invitation_id, "team_id": team_id})
        return result.deleted_count == 1

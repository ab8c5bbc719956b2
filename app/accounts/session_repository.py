"""The only door from accounts to refresh sessions and rate-limit counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from app.accounts.models import RateLimitCounter, Session
from app.db.change_feed import ReadCache
from app.db.client import Db
from app.db.ids import parse_object_id

# Enough rotated-out hashes to recognise a replayed token for any realistic session.
_USED_HASHES_KEPT = 200


@dataclass(frozen=True, slots=True)
class SessionState:
    """What an authenticated request needs to know about the session behind its token."""

    revoked: bool
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        return not self.revoked and now < self.expires_at


SessionStateCache = ReadCache[str, "SessionState | None"]


class SessionRepository:
    def __init__(self, db: Db, *, states: SessionStateCache | None = None) -> None:
        self.collection = db[Session.Settings.name]
        # Read on every authenticated request; see app.db.change_feed.
        self.states = states

    def _forget(self, session_id: str | None = None) -> None:
        """Drop cached session states once a write to them has returned."""
        if self.states is None:
            return
        if session_id is None:
            self.states.clear()
        else:
            self.states.invalidate(session_id)

    async def is_live(self, session_id: str, *, now: datetime) -> bool:
        """Whether the session exists, is not revoked and has not expired."""
        oid = parse_object_id(session_id)
        if oid is None:
            return False
        key = str(oid)
        state = (
            await self._read_state(oid)
            if self.states is None
            else await self.states.load(key, lambda: self._read_state(oid))
        )
        return state is not None and state.live(now)

    async def _read_state(self, oid: ObjectId) -> SessionState | None:
        raw = await self.collection.find_one({"_id": oid}, {"revoked_at": 1, "expires_at": 1})
        if raw is None:
            return None
        return SessionState(revoked=raw.get("revoked_at") is not None, expires_at=raw["expires_at"])

    async def create(self, session: Session) -> None:
        await self.collection.insert_one(session.model_dump(by_alias=True, exclude={"revision_id"}))

    async def rotate(
        self, session_id: str, *, old_hash: str, new_hash: str, now: datetime
    ) -> Session | None:
        """Swap the current token hash atomically, only if `old_hash` is still current.

        Of two concurrent refreshes with the same token, exactly one wins.
        """
        oid = parse_object_id(session_id)
        if oid is None:
            return None
        # update_one, then a read by _id: findAndModify costs O(collection) on some servers.
        result = await self.collection.update_one(
            {"_id": oid, "token_hash": old_hash, "revoked_at": None, "expires_at": {"$gt": now}},
            {
                "$set": {"token_hash": new_hash, "last_used_at": now},
                "$push": {"used_hashes": {"$each": [old_hash], "$slice": -_USED_HASHES_KEPT}},
            },
        )
        return await self.get(session_id) if result.matched_count == 1 else None

    async def get(self, session_id: str) -> Session | None:
        oid = parse_object_id(session_id)
        if oid is None:
            return None
        raw = await self.collection.find_one({"_id": oid})
        return None if raw is None else Session.model_validate(raw)

    async def revoke(self, session_id: str, *, now: datetime) -> None:
        oid = parse_object_id(session_id)
        if oid is not None:
            try:
                await self.collection.update_one(
                    {"_id": oid, "revoked_at": None}, {"$set": {"revoked_at": now}}
                )
            finally:
                self._forget(str(oid))

    async def list_live_for_user(self, user_id: str, *, now: datetime) -> list[Session]:
        cursor = self.collection.find(
            {"user_id": ObjectId(user_id), "revoked_at": None, "expires_at": {"$gt": now}},
            {"used_hashes": 0},
        ).sort("created_at", 1)
        return [Session.model_validate(raw) async for raw in cursor]

    async def revoke_own(self, user_id: str, session_id: str, *, now: datetime) -> bool:
        """Revoke one live session of this user; False when there is none such."""
        oid = parse_object_id(session_id)
        if oid is None:
            return False
        try:
            result = await self.collection.update_one(
                {"_id": oid, "user_id": ObjectId(user_id), "revoked_at": None},
                {"$set": {"revoked_at": now}},
            )
        finally:
            self._forget(str(oid))
        return result.modified_count == 1

    async def revoke_all_for_user(
        self, user_id: str, *, now: datetime, keep: str | None = None
    ) -> int:
        criteria: dict[str, Any] = {"user_id": ObjectId(user_id), "revoked_at": None}
        keep_oid = parse_object_id(keep) if keep else None
        if keep_oid is not None:
            criteria["_id"] = {"$ne": keep_oid}
        try:
            result = await self.collection.update_many(criteria, {"$set": {"revoked_at": now}})
        finally:
            self._forget()
        return result.modified_count

    async def delete_all_for_user(self, user_id: str) -> None:
        try:
            await self.collection.delete_many({"user_id": ObjectId(user_id)})
        finally:
            self._forget()


class RateLimitRepository:
    def __init__(self, db: Db) -> None:
        self.collection = db[RateLimitCounter.Settings.name]

    async def increment_many(
        self, keys: list[tuple[str, datetime]], *, also: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Count one attempt under each key (a counter the TTL index removes at its expiry)
        in one round trip, then read the counters and the markers named in `also` back in
        one more: the stored rows by key. A count may include concurrent attempts: a limit
        may bite one attempt early, never late."""
        await self.collection.bulk_write(
            [
                UpdateOne(
                    {"_id": key},
                    {"$inc": {"hits": 1}, "$setOnInsert": {"expires_at": expires_at}},
                    upsert=True,
                )
                for key, expires_at in keys
            ],
            ordered=False,
        )
        wanted = [key for key, _ in keys] + also
        cursor = self.collection.find({"_id": {"$in": wanted}}, {"hits": 1, "expires_at": 1})
        return {raw["_id"]: raw async for raw in cursor}

    async def mark(self, key: str, *, expires_at: datetime) -> None:
        """A marker under `key` that the TTL index removes at `expires_at`."""
        await self.collection.update_one(
            {"_id": key}, {"$set": {"hits": 0, "expires_at": expires_at}}, upsert=True
        )

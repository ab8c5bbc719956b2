"""The only door from accounts to the users collection."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.accounts.models import Role, User
from app.accounts.principal import Principal
from app.db.change_feed import ReadCache
from app.db.client import Db
from app.db.ids import canonical_id, parse_object_id


class EmailTakenError(Exception):
    pass


_PRINCIPAL_FIELDS = {"role": 1, "disabled": 1, "token_version": 1}


PrincipalCache = ReadCache[str, "Principal | None"]


class UserRepository:
    def __init__(self, db: Db, *, principals: PrincipalCache | None = None) -> None:
        self.collection = db[User.Settings.name]
        # Principals are read on every authenticated request; see app.db.change_feed.
        self.principals = principals

    def _forget(self, user_id: str) -> None:
        """Drop a cached principal once a write to its user has returned."""
        if self.principals is not None:
            self.principals.invalidate(canonical_id(user_id))

    @staticmethod
    def _to_model(raw: dict[str, Any] | None) -> User | None:
        return None if raw is None else User.model_validate(raw)

    async def insert(self, user: User) -> User:
        doc = user.model_dump(by_alias=True, exclude={"id", "revision_id"})
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError as exc:
            raise EmailTakenError(user.email) from exc
        user.id = result.inserted_id
        self._forget(str(user.id))
        return user

    async def get(self, user_id: str) -> User | None:
        oid = parse_object_id(user_id)
        if oid is None:
            return None
        return self._to_model(await self.collection.find_one({"_id": oid}))

    async def get_by_email(self, email: str) -> User | None:
        return self._to_model(await self.collection.find_one({"email": email}))

    async def get_principal(self, user_id: str) -> Principal | None:
        if self.principals is None:
            return await self._read_principal(user_id)
        key = canonical_id(user_id)
        return await self.principals.load(key, lambda: self._read_principal(key))

    async def _read_principal(self, user_id: str) -> Principal | None:
        oid = parse_object_id(user_id)
        if oid is None:
            return None
        raw = await self.collection.find_one({"_id": oid}, _PRINCIPAL_FIELDS)
        if raw is None:
            return None
        return Principal(
            id=user_id,
            role=Role(raw.get("role", Role.USER)),
            disabled=bool(raw.get("disabled", False)),
            token_version=int(raw.get("token_version", 0)),
        )

    async def update(
        self,
        user_id: str,
        changes: dict[str, Any],
        *,
        now: datetime,
        bump_token_version: bool = False,
    ) -> User | None:
        """Apply `changes` atomically and return the new state (None when absent)."""
        oid = parse_object_id(user_id)
        if oid is None:
            return None
        update: dict[str, Any] = {"$set": {**changes, "updated_at": now}}
        if bump_token_version:
            update["$inc"] = {"token_version": 1}
        try:
            result = await self.collection.update_one({"_id": oid}, update)
        except DuplicateKeyError as exc:
            raise EmailTakenError(str(changes.get("email"))) from exc
        finally:
            self._forget(user_id)
        if result.matched_count != 1:
            return None
        return self._to_model(await self.collection.find_one({"_id": oid}))

    async def update_if(
        self, user_id: str, conditions: dict[str, Any], changes: dict[str, Any], *, now: datetime
    ) -> bool:
        """Apply `changes` only while the account still matches `conditions`."""
        oid = parse_object_id(user_id)
        result = await self.collection.update_one(
            {"_id": oid, **conditions}, {"$set": {**changes, "updated_at": now}}
        )
        self._forget(user_id)
        return result.modified_count == 1

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        """Record that a TOTP code for `step` was used: False when one for this step or a
        later one already was (a code works once)."""
        oid = parse_object_id(user_id)
        result = await self.collection.update_one(
            {"_id": oid, "totp_last_step": {"$lt": step}}, {"$set": {"totp_last_step": step}}
        )
        return result.modified_count == 1

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """Use up a recovery code: True for the one request that does."""
        oid = parse_object_id(user_id)
        result = await self.collection.update_one(
            {"_id": oid, "recovery_code_hashes": code_hash},
            {"$pull": {"recovery_code_hashes": code_hash}},
        )
        return result.modified_count == 1

    async def delete(self, user_id: str) -> bool:
        oid = parse_object_id(user_id)
        if oid is None:
            return False
        try:
            result = await self.collection.delete_one({"_id": oid})
        finally:
            self._forget(user_id)
        return result.deleted_count == 1

    async def find_page(self, *, query: str | None, after: str | None, limit: int) -> list[User]:
        """Users in id order after `after`, optionally matching `query` in email or name."""
        criteria: dict[str, Any] = {}
        if query:
            pattern = {"$regex": re.escape(query), "$options": "i"}
            criteria["$or"] = [{"email": pattern}, {"name": pattern}]
        if after is not None:
            oid = parse_object_id(after)
            if oid is not None:
                criteria["_id"] = {"$gt": oid}
        cursor = self.collection.find(criteria).sort("_id", 1).limit(limit)
        return [User.model_validate(raw) async for raw in cursor]

    async def get_many(self, user_ids: list[str]) -> list[User]:
        """The existing users among `user_ids` (unknown or malformed ids are skipped)."""
        oids = [oid for oid in (parse_object_id(i) for i in user_ids) if oid is not None]
        cursor = self.collection.find({"_id": {"$in": oids}})
        return [User.model_validate(raw) async for raw in cursor]

    async def count_admins(self) -> int:
        return await self.collection.count_documents({"role": Role.ADMIN, "disabled": False})

    # -- backup and restore (scripts.export, scripts.restore) -------------------------------

    async def count_all(self) -> int:
        return await self.collection.count_documents({})

    async def stream_all(self, *, batch_size: int = 1000) -> AsyncIterator[User]:
        """Every account in id order, password hash included: for exports only."""
        async for raw in self.collection.find().sort("_id", 1).batch_size(batch_size):
            yield User.model_validate(raw)

    async def insert_many_as_is(self, users: list[User]) -> UsersImported:
        """Insert accounts keeping their ids and every stored field (password hash too).

        An account whose id exists is left as it is (a repeated or resumed import); one
        whose email another account here already has is skipped, so emails stay unique.
        Emails must already be normalised (see UserService.import_users).
        """
        outcome = UsersImported()
        if not users:
            return outcome
        ids = [ObjectId(str(u.id)) for u in users]
        present = {
            raw["_id"] async for raw in self.collection.find({"_id": {"$in": ids}}, {"_id": 1})
        }
        fresh = [(oid, u) for oid, u in zip(ids, users, strict=True) if oid not in present]
        outcome.present = len(users) - len(fresh)
        taken = {
            raw["email"]
            async for raw in self.collection.find(
                {"email": {"$in": [u.email for _, u in fresh]}}, {"email": 1}
            )
        }
        docs: list[dict[str, Any]] = []
        for oid, user in fresh:
            if user.email in taken:  # here already, or twice in this batch
                outcome.email_taken.append(user.email)
                continue
            taken.add(user.email)
            docs.append({"_id": oid, **user.model_dump(exclude={"id", "revision_id"})})
        if not docs:
            return outcome
        failed: list[dict[str, Any]] = []
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            failed = [docs[e["index"]] for e in errors]  # another writer came first
        finally:
            for doc in docs:
                self._forget(str(doc["_id"]))
        outcome.inserted = len(docs) - len(failed)
        for doc in failed:
            if await self.collection.count_documents({"_id": doc["_id"]}, limit=1):
                outcome.present += 1
            else:
                outcome.email_taken.append(doc["email"])
        return outcome


@dataclass
class UsersImported:
    """What `UserRepository.insert_many_as_is` did with a batch."""

    inserted: int = 0
    present: int = 0  # the id exists already
    email_taken: list[str] = field(default_factory=list)  # another account has the email

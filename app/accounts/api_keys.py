"""API keys for servers and scripts: `Authorization: Bearer dsk_...` acts as its user.

A key is `dsk_` + 256 random bits. Only its SHA-256 is stored, as the record's `_id`, so
the change stream's document keys name exactly the cache entry to drop: a revocation in
any process reaches every process's read cache at once, as for sessions. The public `id`
(for listing and revoking) and an 8-character `prefix` (to recognise a key) are stored
beside it. `last_used_at` is written at most once a minute per key and process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel

from app.db.change_feed import ReadCache
from app.db.client import Db

COLLECTION = "api_keys"
PREFIX = "dsk_"
_TOUCH_EVERY = timedelta(minutes=1)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    # Made after a second factor (or by an operator's script): with ADMIN_MFA_REQUIRED,
    # only such a key of an admin carries admin rights.
    mfa: bool = False

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


ApiKeyCache = ReadCache[str, "ApiKey | None"]


def _model(raw: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=raw["id"],
        user_id=raw["user_id"],
        name=raw["name"],
        prefix=raw["prefix"],
        created_at=raw["created_at"],
        last_used_at=raw.get("last_used_at"),
        expires_at=raw.get("expires_at"),
        mfa=raw.get("mfa") is True,
    )


class ApiKeyRepository:
    def __init__(self, db: Db, *, cache: ApiKeyCache | None = None) -> None:
        self.collection = db[COLLECTION]
        self.cache = cache
        self._touched: dict[str, datetime] = {}

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("user_id", ASCENDING), ("id", ASCENDING)], name="by_user"),
                IndexModel([("id", ASCENDING)], name="by_id", unique=True),
            ]
        )

    def _forget(self, hashes: list[str] | None = None) -> None:
        if self.cache is None:
            return
        if hashes is None:
            self.cache.clear()
        else:
            for h in hashes:
                self.cache.invalidate(h)

    async def create(
        self,
        *,
        user_id: str,
        name: str,
        expires_at: datetime | None,
        now: datetime,
        mfa: bool = False,
    ) -> tuple[ApiKey, str]:
        """A new key: (its record, the secret, shown to the user once)."""
        secret = PREFIX + secrets.token_urlsafe(32)
        raw = {
            "_id": key_hash(secret),
            "id": str(ObjectId()),
            "user_id": user_id,
            "name": name,
            "prefix": secret[: len(PREFIX) + 8],
            "created_at": now,
            "last_used_at": None,
            "expires_at": expires_at,
            "mfa": mfa,
        }
        await self.collection.insert_one(raw)
        return _model(raw), secret

    async def list_for_user(self, user_id: str) -> list[ApiKey]:
        cursor = self.collection.find({"user_id": user_id}).sort("created_at", ASCENDING)
        return [_model(raw) async for raw in cursor]

    async def delete(self, user_id: str, key_id: str) -> bool:
        raw = await self.collection.find_one_and_delete({"user_id": user_id, "id": key_id})
        if raw is not None:
            self._forget([raw["_id"]])
        return raw is not None

    async def is_live(self, key_id: str, *, now: datetime) -> bool:
        """Whether the key with this public id still exists and has not expired."""
        raw = await self.collection.find_one({"id": key_id}, {"expires_at": 1})
        return raw is not None and (raw.get("expires_at") is None or now < raw["expires_at"])

    async def delete_all_for_user(self, user_id: str) -> None:
        try:
            await self.collection.delete_many({"user_id": user_id})
        finally:
            self._forget()

    async def find(self, secret: str, *, now: datetime) -> ApiKey | None:
        """The live key with this secret, or None (unknown, revoked or expired)."""
        digest = key_hash(secret)

        async def read() -> ApiKey | None:
            raw = await self.collection.find_one({"_id": digest})
            return None if raw is None else _model(raw)

        key = read() if self.cache is None else self.cache.load(digest, read)
        found = await key
        if found is None or not found.live(now):
            return None
        last = self._touched.get(found.id)
        if last is None or now - last >= _TOUCH_EVERY:
            self._touched[found.id] = now
            if len(self._touched) > 10_000:
                self._touched.clear()
            await self.collection.update_one({"_id": digest}, {"$set": {"last_used_at": now}})
        return found

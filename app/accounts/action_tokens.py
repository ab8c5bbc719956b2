"""Single-use tokens mailed to people: email verification and password reset.

Only a SHA-256 of each token is stored (the token is 256 random bits, so a plain hash is
enough); the plaintext exists in the mail alone. Using a token deletes it in the same
atomic operation that finds it, so a second use finds nothing. A TTL index removes
expired ones; the expiry is also checked on use, since the TTL monitor runs once a minute.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel

from app.db.client import Db

COLLECTION = "action_tokens"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ActionToken:
    purpose: str
    user_id: str
    email: str


class ActionTokenRepository:
    def __init__(self, db: Db) -> None:
        self.collection = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("expires_at", ASCENDING)], name="expiry", expireAfterSeconds=0),
                IndexModel([("user_id", ASCENDING), ("purpose", ASCENDING)], name="by_user"),
            ]
        )

    async def create(
        self, purpose: str, *, user_id: str, email: str, now: datetime, ttl: timedelta
    ) -> tuple[str, str]:
        """A new token: (the plaintext for the mail, its stored id)."""
        token = secrets.token_urlsafe(32)
        token_id = _hash(token)
        await self.collection.insert_one(
            {
                "_id": token_id,
                "purpose": purpose,
                "user_id": user_id,
                "email": email,
                "created_at": now,
                "expires_at": now + ttl,
            }
        )
        return token, token_id

    async def delete(self, token_id: str) -> None:
        await self.collection.delete_one({"_id": token_id})

    async def delete_for_user(self, user_id: str, purpose: str | None = None) -> None:
        query: dict[str, Any] = {"user_id": user_id}
        if purpose is not None:
            query["purpose"] = purpose
        await self.collection.delete_many(query)

    async def consume(self, purpose: str, token: str, *, now: datetime) -> ActionToken | None:
        """The token's record, deleted as it is read; None when unknown, used or expired."""
        raw = await self.collection.find_one_and_delete(
            {"_id": _hash(token), "purpose": purpose, "expires_at": {"$gt": now}}
        )
        if raw is None:
            return None
        return ActionToken(purpose=raw["purpose"], user_id=raw["user_id"], email=raw["email"])

"""Linked sign-in identities (a provider's subject → an account) and the short-lived
records of the social sign-in flows: pending redirects, exchange codes, used nonces.

Secrets (state, exchange codes, nonces) are stored as SHA-256 only and taken with an
atomic find-and-delete, so each works once; TTL indexes remove what was never used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from app.accounts.oauth_providers import ProviderIdentity
from app.accounts.ways_in import OwnedRecords
from app.db.client import Db, insert_new

IDENTITIES = "identities"
FLOWS = "oauth_flows"
CODES = "oauth_codes"
NONCES = "oauth_nonces"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    provider: str
    subject: str
    user_id: str
    email: str | None
    email_verified: bool
    created_at: datetime
    last_used_at: datetime

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Identity:
        return cls(
            id=str(raw["_id"]),
            provider=raw["provider"],
            subject=raw["subject"],
            user_id=raw["user_id"],
            email=raw.get("email"),
            email_verified=bool(raw.get("email_verified")),
            created_at=raw["created_at"],
            last_used_at=raw.get("last_used_at", raw["created_at"]),
        )


class IdentityTaken(Exception):
    """The provider's subject is linked to an account already."""


class IdentityRepository(OwnedRecords):
    def __init__(self, db: Db) -> None:
        self.collection = db[IDENTITIES]
        self.flows = db[FLOWS]
        self.codes = db[CODES]
        self.nonces = db[NONCES]

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel(
                    [("provider", ASCENDING), ("subject", ASCENDING)],
                    name="provider_subject",
                    unique=True,
                ),
                IndexModel([("user_id", ASCENDING)], name="by_user"),
            ]
        )
        for collection in (self.flows, self.codes, self.nonces):
            await collection.create_indexes(
                [IndexModel([("expires_at", ASCENDING)], name="expiry", expireAfterSeconds=0)]
            )

    # -- identities ------------------------------------------------------------------------

    async def find(self, provider: str, subject: str) -> Identity | None:
        raw = await self.collection.find_one({"provider": provider, "subject": subject})
        return Identity.of(raw) if raw else None

    async def for_user(self, user_id: str) -> list[Identity]:
        cursor = self.collection.find({"user_id": user_id}).sort("created_at", ASCENDING)
        return [Identity.of(raw) async for raw in cursor]

    async def count_for_user(self, user_id: str) -> int:
        return await self.collection.count_documents({"user_id": user_id})

    async def link(self, who: ProviderIdentity, *, user_id: str, now: datetime) -> Identity:
        raw = {
            "_id": ObjectId(),
            "provider": who.provider,
            "subject": who.subject,
            "user_id": user_id,
            "email": who.email,
            "email_verified": who.email_verified,
            "created_at": now,
            "last_used_at": now,
        }
        try:
            await self.collection.insert_one(raw)
        except DuplicateKeyError:
            raise IdentityTaken from None
        return Identity.of(raw)

    async def touch(self, identity: Identity, *, email: str | None, now: datetime) -> None:
        await self.collection.update_one(
            {"_id": ObjectId(identity.id)}, {"$set": {"last_used_at": now, "email": email}}
        )

    async def unlink(self, user_id: str, provider: str, subject: str) -> bool:
        result = await self.collection.delete_one(
            {"user_id": user_id, "provider": provider, "subject": subject}
        )
        return result.deleted_count == 1

    async def delete_for_user(self, user_id: str) -> None:
        await self.collection.delete_many({"user_id": user_id})

    async def raw_for_users(self, user_ids: list[str]) -> list[dict[str, Any]]:
        return [raw async for raw in self.collection.find({"user_id": {"$in": user_ids}})]

    async def restore(self, raws: list[dict[str, Any]]) -> None:
        """Insert records from a backup; ones already here (same key) are left alone."""
        await insert_new(self.collection, raws)

    # -- one-time records ------------------------------------------------------------------

    async def put_flow(self, state: str, record: dict[str, Any], *, expires_at: datetime) -> None:
        await self.flows.insert_one({"_id": digest(state), **record, "expires_at": expires_at})

    async def claim_flow(
        self, state: str, provider: str, browser: str, *, now: datetime
    ) -> dict[str, Any] | None:
        """Bind a flow started by an API call (linking) to the browser that opens it: the
        first browser only."""
        return await self.flows.find_one_and_update(
            {
                "_id": digest(state),
                "provider": provider,
                "browser": None,
                "expires_at": {"$gt": now},
            },
            {"$set": {"browser": digest(browser)}},
        )

    async def take_flow(self, state: str, *, now: datetime) -> dict[str, Any] | None:
        return await self.flows.find_one_and_delete(
            {"_id": digest(state), "expires_at": {"$gt": now}}
        )

    async def put_code(self, code: str, record: dict[str, Any], *, expires_at: datetime) -> None:
        await self.codes.insert_one({"_id": digest(code), **record, "expires_at": expires_at})

    async def take_code(self, code: str, *, now: datetime) -> dict[str, Any] | None:
        return await self.codes.find_one_and_delete(
            {"_id": digest(code), "expires_at": {"$gt": now}}
        )

    async def use_nonce(self, provider: str, nonce: str, *, expires_at: datetime) -> bool:
        """Record a native sign-in's nonce; False when it was used before."""
        try:
            await self.nonces.insert_one(
                {"_id": digest(f"{provider}\n{nonce}"), "expires_at": expires_at}
            )
        except DuplicateKeyError:
            return False
        return True

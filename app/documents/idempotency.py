"""Idempotency-Key for document creation: the same key and body replay the first response.

A record is claimed atomically (insert on a unique `_id`) before the write runs, so two
concurrent requests with one key cannot both create a document. Records expire through
a TTL index after `IDEMPOTENCY_TTL_SECONDS` (24 h by default).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pymongo
from beanie import Document
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from app.db.client import Db
from app.errors import AppError, Conflict, ErrorCode


class IdempotencyRecord(Document):
    id: str  # type: ignore[assignment]  # hash of (caller, collection, key)
    request_hash: str
    done: bool = False  # False while the first request is still running
    body: dict[str, Any] | None = None  # the document it created (its envelope)
    # Records written before `done` (they carried the HTTP status): read for one TTL.
    status: int | None = None
    expires_at: datetime

    class Settings:
        name = "idempotency_keys"
        indexes = [
            IndexModel([("expires_at", pymongo.ASCENDING)], name="expire", expireAfterSeconds=0),
        ]


class IdempotencyKeyReused(AppError):
    code, status = ErrorCode.IDEMPOTENCY_KEY_REUSED, 422


@dataclass(frozen=True, slots=True)
class Replay:
    """The document the first request created (its envelope); the router answers with it
    as it answered then."""

    body: dict[str, Any]


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def request_fingerprint(body: Any) -> str:
    return _hash(json.dumps(body, sort_keys=True, separators=(",", ":")))


class IdempotencyStore:
    def __init__(self, db: Db, *, ttl_seconds: int) -> None:
        self.collection = db[IdempotencyRecord.Settings.name]
        self.ttl = timedelta(seconds=ttl_seconds)

    @staticmethod
    def record_id(caller: str, collection: str, key: str) -> str:
        return _hash(caller, collection, key)

    async def claim(self, record_id: str, fingerprint: str, *, now: datetime) -> Replay | None:
        """Claim the key for this request, or return the first response to replay.

        Raises IdempotencyKeyReused for another body, Conflict while the first runs.
        """
        try:
            await self.collection.insert_one(
                {
                    "_id": record_id,
                    "request_hash": fingerprint,
                    "status": None,
                    "expires_at": now + self.ttl,
                }
            )
            return None
        except DuplicateKeyError:
            pass
        raw = await self.collection.find_one({"_id": record_id})
        if raw is None:  # expired between the two calls: try once more
            return await self.claim(record_id, fingerprint, now=now)
        if raw["request_hash"] != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request body; use a new key"
            )
        if not raw.get("done") and raw.get("status") is None:  # status: records of <= 0.1
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly",
                code=ErrorCode.DUPLICATE_KEY,
            )
        return Replay(body=raw["body"])

    async def complete(self, record_id: str, *, body: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": record_id}, {"$set": {"done": True, "body": body}})

    async def release(self, record_id: str) -> None:
        """Forget a claim whose request failed, so the client can retry with the same key."""
        await self.collection.delete_one({"_id": record_id, "done": {"$ne": True}, "status": None})

"""The mail outbox: every message waits in MongoDB until it is delivered.

A message is claimed with one atomic update that takes a lease (so of several server
processes exactly one holds it), then marked sent, or put back with a later due time
(exponential backoff) when delivery fails, or given up after MAX_ATTEMPTS. A process
that dies holding a lease only delays the message: the lease runs out and another
process claims it. Sent messages are kept a week (TTL index) for support questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument

from app.db.client import Db
from app.tasks import backoff

COLLECTION = "mail_outbox"
MAX_ATTEMPTS = 12
STATUSES = ("pending", "sent", "failed", "dropped")
KEEP_SENT = timedelta(days=7)


@dataclass(frozen=True)
class OutboxMessage:
    id: ObjectId
    kind: str
    to: str
    params: dict[str, Any]
    attempts: int


class Outbox:
    def __init__(self, db: Db, *, retry_seconds: float = 5.0, max_time_ms: int = 5000) -> None:
        self.collection = db[COLLECTION]
        self.retry_seconds = retry_seconds
        self.max_time_ms = max_time_ms

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("status", ASCENDING), ("due_at", ASCENDING)], name="due"),
                # The admins' listing: newest first, by status or not.
                IndexModel([("status", ASCENDING), ("_id", DESCENDING)], name="by_status"),
                IndexModel(
                    [("sent_at", ASCENDING)],
                    name="sent_ttl",
                    expireAfterSeconds=int(KEEP_SENT.total_seconds()),
                ),
            ]
        )

    async def enqueue(self, kind: str, to: str, params: dict[str, Any], *, now: datetime) -> None:
        await self.collection.insert_one(
            {
                "kind": kind,
                "to": to,
                "params": params,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "due_at": now,
                "lease_until": now,
            }
        )

    async def claim(self, worker: str, *, now: datetime, lease: timedelta) -> OutboxMessage | None:
        raw = await self.collection.find_one_and_update(
            {"status": "pending", "due_at": {"$lte": now}, "lease_until": {"$lte": now}},
            {
                "$set": {"lease_until": now + lease, "leased_by": worker},
                "$inc": {"attempts": 1},
            },
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            return None
        return OutboxMessage(
            raw["_id"], raw["kind"], raw["to"], raw.get("params", {}), raw["attempts"]
        )

    async def _finish(self, message: OutboxMessage, worker: str, update: dict[str, Any]) -> None:
        # Only the lease holder settles a message (a stale worker's late answer is ignored).
        await self.collection.update_one({"_id": message.id, "leased_by": worker}, update)

    async def sent(self, message: OutboxMessage, worker: str, *, now: datetime) -> None:
        await self._finish(
            message, worker, {"$set": {"status": "sent", "sent_at": now}, "$unset": {"params": ""}}
        )

    async def dropped(
        self, message: OutboxMessage, worker: str, *, now: datetime, why: str
    ) -> None:
        await self._finish(
            message,
            worker,
            {
                "$set": {"status": "dropped", "sent_at": now, "last_error": why},
                "$unset": {"params": ""},
            },
        )

    async def failed(
        self, message: OutboxMessage, worker: str, *, now: datetime, error: str
    ) -> datetime | None:
        """Put the message back for later and return when it is due again; None when it
        has had its last attempt."""
        if message.attempts >= MAX_ATTEMPTS:
            await self._finish(message, worker, {"$set": {"status": "failed", "last_error": error}})
            return None
        due = now + backoff(message.attempts, self.retry_seconds)
        await self._finish(
            message,
            worker,
            {"$set": {"due_at": due, "lease_until": due, "last_error": error}},
        )
        return due

    async def pending(self) -> int:
        return await self.collection.count_documents({"status": "pending"})

    # -- what admins see (the console's mail page) ----------------------------------------

    async def page(
        self, *, status: str | None, before: ObjectId | None, limit: int
    ) -> list[dict[str, Any]]:
        """The newest messages first (older than `before`), without their parameters
        (account ids and the details of a notice; links are minted only when a message is
        sent, so the outbox never holds one)."""
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = (
            self.collection.find(query, projection={"params": False}, max_time_ms=self.max_time_ms)
            .sort("_id", -1)
            .limit(limit)
        )
        return [raw async for raw in cursor]

    async def counts(self) -> dict[str, int]:
        """How many messages are in each status (each count answered by an index)."""
        return {
            status: await self.collection.count_documents(
                {"status": status}, maxTimeMS=self.max_time_ms
            )
            for status in STATUSES
        }

    async def retry(self, message_id: ObjectId, *, now: datetime) -> dict[str, Any] | None:
        """Put a message that gave up back in the queue for a fresh round of attempts; None
        unless it exists and has failed (sent and dropped messages no longer hold what
        they would need to be sent again)."""
        return await self.collection.find_one_and_update(
            {"_id": message_id, "status": "failed"},
            {
                "$set": {"status": "pending", "attempts": 0, "due_at": now, "lease_until": now},
                "$unset": {"leased_by": ""},
            },
            projection={"params": False},
            return_document=ReturnDocument.AFTER,
        )

    async def find(self, message_id: ObjectId) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": message_id}, projection={"params": False})

"""Tamper evidence for the audit log: a hash chain over its records.

Records are sealed in id order by the process leading the change pump (with its chores,
every minute), once SEAL_AFTER old: each gets an entry in `audit_chain`,
`{_id: seq, record: <its id>, at, hash}`, where `hash` is SHA-256 of the previous entry's
hash and the record's canonical JSON. A record changed, removed or slipped in among the
sealed ones breaks the chain there, which `make audit-verify` (scripts/audit_verify.py)
finds. Whoever can write the database could rebuild the chain after a change too: each
seal logs the head (`audit chain sealed`, its seq and hash), so keep the logs elsewhere,
or the verifier's output, and compare.

Sealing is idempotent and safe with a stale leader: the entries for the same records
come out the same, and a seq taken already fails on the unique `_id`. A record whose id
is older than the chain's head when it arrives (a host clock more than SEAL_AFTER behind)
is never sealed; the verifier counts such records. Entries expire with their records
(AUDIT_RETENTION_DAYS, on `at`): verification starts at the oldest left.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError

from app.clock import Clock, rfc3339
from app.db.client import Db, ensure_ttl

log = logging.getLogger("docstore.audit")

CHAIN = "audit_chain"
SEAL_AFTER = timedelta(seconds=30)
BATCH = 1000
BATCHES_A_CHORE = 10
GENESIS = "0" * 64
# Records expire a little before their entries or after: missing ones this close to the
# end of their retention are the TTL's, not tampering.
_EXPIRY_SLACK = timedelta(minutes=5)


def _plain(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    # Anything else (a record written around the API): its type and repr, the same on
    # every read, so one odd record never stops the sealing (or the pump's chores).
    return f"{type(value).__name__}:{value!r}"


def link(previous: str, record: dict[str, Any]) -> str:
    """The chain's hash after `record`, given the one before it."""
    body = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )
    return hashlib.sha256(previous.encode() + b"\n" + body.encode()).hexdigest()


@dataclass
class Verdict:
    """What the verifier found: how much is sound, and every break in the chain."""

    entries: int = 0
    first: int | None = None
    head: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    unsealed: int = 0  # records older than the head that no entry names

    @property
    def sound(self) -> bool:
        return not self.problems


class AuditChain:
    def __init__(self, db: Db, *, clock: Clock, retention_days: int) -> None:
        self.records = db["audit_log"]
        self.chain = db[CHAIN]
        self.clock = clock
        self.retention = timedelta(days=retention_days)

    async def ensure_indexes(self) -> None:
        await self.chain.create_indexes(
            [IndexModel([("record", ASCENDING)], name="record", unique=True)]
        )
        await ensure_ttl(self.chain, "retention", "at", int(self.retention.total_seconds()))

    async def head(self) -> dict[str, Any] | None:
        return await self.chain.find_one(sort=[("_id", -1)])

    async def seal(self, *, batches: int | None = BATCHES_A_CHORE) -> int:
        """Chain the records SEAL_AFTER old that follow the head, at most `batches` of
        BATCH (None: all); how many. (A chore seals a bounded share: the pump's lease and
        stream wait while it runs.)"""
        sealed = 0
        while batches is None or sealed < batches * BATCH:
            head = await self.head()
            cutoff = ObjectId.from_datetime(self.clock() - SEAL_AFTER)
            ids: dict[str, Any] = {"$lt": cutoff}
            if head is not None:
                ids["$gt"] = head["record"]
            records = await self.records.find({"_id": ids}).sort("_id", ASCENDING).to_list(BATCH)
            if not records:
                return sealed
            seq, previous = (head["_id"], head["hash"]) if head is not None else (0, GENESIS)
            at = head["at"] if head is not None else None
            entries = []
            for record in records:
                seq, previous = seq + 1, link(previous, record)
                # Never earlier than the entry before: entries then expire (TTL) in their
                # order, as a prefix, though ids of one second are not in time order.
                at = record["at"] if at is None else max(at, record["at"])
                entries.append({"_id": seq, "record": record["_id"], "at": at, "hash": previous})
            try:
                await self.chain.insert_many(entries, ordered=True)
            except BulkWriteError:
                return sealed  # another sealer (a leader that lost its lease) got there
            sealed += len(entries)
            log.info(
                "audit chain sealed",
                extra={"records": len(entries), "head_seq": seq, "head_hash": previous},
            )
            if len(records) < BATCH:
                return sealed
        return sealed

    async def verify(self, *, progress: Any = None) -> Verdict:
        """Walk the chain from its oldest entry left, recomputing every hash."""
        verdict = Verdict()
        previous: dict[str, Any] | None = None
        after = 0
        expiring = self.clock() - self.retention + _EXPIRY_SLACK
        while True:
            entries = (
                await self.chain.find({"_id": {"$gt": after}}).sort("_id", ASCENDING).to_list(BATCH)
            )
            if not entries:
                break
            found = {
                r["_id"]: r
                async for r in self.records.find({"_id": {"$in": [e["record"] for e in entries]}})
            }
            for entry in entries:
                seq = entry["_id"]
                if previous is not None and seq != previous["_id"] + 1:
                    if entry["at"] > expiring:  # (else the TTL is removing them now)
                        verdict.problems.append(
                            f"entries {previous['_id'] + 1} to {seq - 1} are missing from the chain"
                        )
                    previous = None  # this entry's hash needs the one before: an anchor
                record = found.get(entry["record"])
                if record is None:
                    if entry["at"] > expiring:
                        verdict.problems.append(
                            f"record {entry['record']} (entry {seq}) was removed"
                        )
                elif previous is not None or seq == 1:
                    before = previous["hash"] if previous is not None else GENESIS
                    if link(before, record) != entry["hash"]:
                        verdict.problems.append(
                            f"record {entry['record']} (entry {seq}) differs from what was "
                            "sealed, or the chain was rewritten there"
                        )
                verdict.first = seq if verdict.first is None else verdict.first
                verdict.entries += 1
                previous = entry
            after = entries[-1]["_id"]
            if progress is not None:
                progress.update(len(entries))
        verdict.head = previous
        if previous is not None:
            sealed = await self.chain.count_documents({})
            older = await self.records.count_documents({"_id": {"$lte": previous["record"]}})
            verdict.unsealed = max(0, older - sealed)
        return verdict

"""The change pump: committed changes, turned into webhook deliveries and document history.

One server process at a time leads (a lease in `change_pump`, renewed as it goes); the
others stand by and take over when the lease runs out. The leader follows the database's
change stream from the last checkpoint (a resume token saved after each batch was
recorded), so a restart, a crash or a new leader carries on where the last one stopped:
nothing committed is skipped. What a batch records is keyed by the change (deliveries by
webhook and event, versions by document and version), so a batch recorded twice (a
crash between recording and checkpoint) records nothing new the second time.

Consumers say which storage collections they care about; the stream asks the database
only for those (plus the consumers' own configuration collections), so a server with no
webhooks and no history pays nothing per write. A change to a configuration collection
arrives in the stream in commit order with the writes: the consumers reload it there, and
the stream is reopened right after it with the new interest, so a webhook registered
before a write always sees that write.

Needs change streams (a replica set), as realtime does. When the database has lost the
checkpoint's history (the oplog moved past it), the pump logs an error, counts it in
`docstore_change_pump_gaps_total` and starts from the present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from app.clock import Clock
from app.db.client import Db
from app.db.leases import take_lease
from app.observability.metrics import (
    CHANGE_PUMP_CHECKPOINT,
    CHANGE_PUMP_GAPS,
    CHANGE_PUMP_LEADING,
)
from app.tasks import cancel_and_wait

log = logging.getLogger("docstore.changes")

STATE = "change_pump"
_KINDS = {"insert": "created", "update": "updated", "replace": "updated", "delete": "deleted"}
# Resume tokens the database no longer has (or does not know): start from the present.
_LOST = {9, 260, 280, 286}


@dataclass(slots=True)
class Committed:
    """One committed change of one document, as the pump hands it to consumers."""

    # The resume token's text: unique per change, the key of what it records.
    event: str
    namespace: str
    kind: str  # created | updated | deleted
    doc_id: Any
    at: datetime
    # The document after the change (created/updated; a lookup on databases without
    # post-images) and before it (updated/deleted), when the database kept them.
    after: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    # Top-level fields an update set or removed; None for inserts, replaces and deletes.
    fields: frozenset[str] | None = None


class Consumer(Protocol):
    # Collections whose writes change what the consumer wants (its configuration).
    config: frozenset[str]

    async def reload(self) -> None: ...

    def match(self) -> dict[str, Any] | None:
        """The `$match` on `ns.coll` for the changes wanted now; None: none."""

    async def take(self, changes: list[Committed]) -> None:
        """Record `changes` (idempotently: the same batch may come twice)."""


class LostLease(Exception):
    pass


# running: a process holds the lease (or let it lapse less than a lease ago, which a
# standby takes over within a third of); stopped: nobody has for longer (no process runs
# background jobs any more, or the leader stalls); never_ran: no process ever led.
PumpState = Literal["running", "stopped", "never_ran"]


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """Whether some process records committed changes (webhooks, history) now, as the
    lease shows it to any process."""

    state: PumpState
    # host:pid:… of the process that holds or last held the lease.
    leader: str | None
    lease_until: datetime | None


@dataclass
class ChangePump:
    db: Db
    consumers: list[Consumer]
    clock: Clock
    lease_seconds: float = 10.0
    # A getMore returns as soon as a change arrives; this is how long an idle one waits.
    poll_ms: int = 250
    # After a getMore that brought nothing it wants, the next waits this long: a database
    # may answer early whenever anything is written (SecantusDB does), and the writes the
    # pump ignores would otherwise cost it and the database a round trip each. Changes
    # it wants then arrive together, at most this much later.
    idle_pause_seconds: float = 0.1
    batch: int = 200
    retry_seconds: float = 1.0
    # Run by the leader every `chores_seconds` (trash purges).
    chores: list[Callable[[], Any]] = field(default_factory=list)
    chores_seconds: float = 60.0
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def __post_init__(self) -> None:
        self.owner = f"{self.owner}:{id(self):x}"
        self.state = self.db[STATE]
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.leading = False
        # Batches recorded (tests wait on this count, not on time).
        self.recorded = 0
        # Reads that found nothing more (settled() waits on this count).
        self.idle_reads = 0
        self._progress = asyncio.Condition()
        self._last_chores = 0.0
        self._renewed = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="change-pump")

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)
        self._task = None
        if self.leading:
            self.leading = False
            # Hand over at once rather than when the lease runs out.
            with contextlib.suppress(PyMongoError):
                await self.state.update_one(
                    {"_id": "pump", "owner": self.owner}, {"$set": {"lease_until": self.clock()}}
                )

    async def status(self) -> PumpStatus:
        raw = await self.state.find_one(
            {"_id": "pump"}, projection={"owner": True, "lease_until": True}
        )
        leader: str | None = (raw or {}).get("owner")
        if raw is None or leader is None:  # only mark_start's checkpoint, if that
            return PumpStatus("never_ran", None, None)
        until: datetime = raw["lease_until"]
        lapsed = until < self.clock() - timedelta(seconds=self.lease_seconds)
        return PumpStatus("stopped" if lapsed else "running", leader, until)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self._progress:
            await self._progress.wait_for(predicate)

    async def settled(self) -> None:
        """Return once this process, leading, has recorded every change committed before
        the call: two reads that found nothing more, the second begun after the call
        (TimeoutError when it does not lead, the stream is down or never quiet)."""
        start = self.idle_reads
        async with asyncio.timeout(30):
            await self.wait_for(lambda: self.idle_reads >= start + 2)

    async def _progressed(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if await self._acquire():
                    self.leading = True
                    CHANGE_PUMP_LEADING.inc()
                    try:
                        await self._lead()
                    finally:
                        CHANGE_PUMP_LEADING.dec()
            except (LostLease, PyMongoError) as exc:
                if not isinstance(exc, LostLease):
                    log.warning("change pump interrupted; retrying", extra={"error": str(exc)})
            except Exception:
                log.exception("change pump failed; retrying")
            led, self.leading = self.leading, False
            await self._progressed()
            if self._stopping:
                break
            await asyncio.sleep(self.retry_seconds if led else self.lease_seconds / 3)

    # -- the lease -------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        now = self.clock()
        if not await take_lease(self.state, "pump", self.owner, now=now, until=self._until(now)):
            return False  # held by another process
        self._renewed = time.monotonic()
        CHANGE_PUMP_CHECKPOINT.set(time.time())
        return True

    async def _keep_lease(self, token: Mapping[str, Any] | None = None) -> None:
        """Renew the lease if a third of it has passed (long batches, chores), saving
        `token` with it when given."""
        if time.monotonic() - self._renewed > self.lease_seconds / 3:
            await self._checkpoint(token)

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)

    async def _checkpoint(self, token: Mapping[str, Any] | None) -> None:
        """Save where the stream stands and renew the lease; LostLease when another
        process has taken it (this one stalled past its lease)."""
        update: dict[str, Any] = {"lease_until": self._until(self.clock())}
        if token is not None:
            update["token"] = token
        result = await self.state.update_one({"_id": "pump", "owner": self.owner}, {"$set": update})
        if result.matched_count == 0:
            raise LostLease
        self._renewed = time.monotonic()
        CHANGE_PUMP_CHECKPOINT.set(time.time())

    async def mark_start(self) -> None:
        """Where no pump has ever run on this database, save the present as its first
        checkpoint: a pump that starts later (a worker process beside API processes that
        run no jobs) then begins here, not at its own start, and records the changes
        made meanwhile."""
        marked = {"_id": "pump", "token": {"$ne": None}}
        if await self.state.find_one(marked, projection={"_id": True}) is not None:
            return
        async with await self.db.watch([{"$match": {"_id": None}}]) as stream:
            token = stream.resume_token
        if token is None:
            return
        with contextlib.suppress(DuplicateKeyError):  # another process did it meanwhile
            await self.state.update_one(
                {"_id": "pump", "token": None},  # none yet, or one without a token
                {
                    "$set": {"token": token},
                    "$setOnInsert": {"lease_until": datetime.fromtimestamp(0, UTC)},
                },
                upsert=True,
            )

    # -- leading ---------------------------------------------------------------------------

    async def _lead(self) -> None:
        raw = await self.state.find_one({"_id": "pump"}, projection={"token": True})
        token: Mapping[str, Any] | None = (raw or {}).get("token")
        for consumer in self.consumers:
            await consumer.reload()
        while not self._stopping:
            token = await self._follow(token)

    def _pipeline(self) -> tuple[list[dict[str, Any]], frozenset[str]]:
        config = frozenset().union(*(c.config for c in self.consumers))
        wanted: list[dict[str, Any]] = [{"ns.coll": {"$in": sorted(config)}}]
        wanted += [m for c in self.consumers if (m := c.match()) is not None]
        before_wanted = {"$in": ["$operationType", ["update", "replace", "delete"]]}
        return [
            {"$match": {"$or": wanted}},
            # Inserts have no image before them; keep the events small.
            {
                "$addFields": {
                    "fullDocumentBeforeChange": {
                        "$cond": [before_wanted, "$fullDocumentBeforeChange", "$$REMOVE"]
                    }
                }
            },
        ], config

    async def _follow(self, token: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Follow the stream from `token` until the consumers' interest changes; returns
        where it stopped."""
        pipeline, config = self._pipeline()
        try:
            # Images only when some consumer wants changes (a database may look them up
            # for every change before matching).
            images: dict[str, Any] = (
                {"full_document": "whenAvailable", "full_document_before_change": "whenAvailable"}
                if len(pipeline[0]["$match"]["$or"]) > 1
                else {}
            )
            stream = await self.db.watch(
                pipeline if images else pipeline[:1],
                resume_after=token,
                max_await_time_ms=self.poll_ms,
                **images,
            )
        except OperationFailure as exc:
            if token is None or exc.code not in _LOST:
                raise
            CHANGE_PUMP_GAPS.inc()
            log.error(
                "change pump: the database no longer has the changes since the last "
                "checkpoint (oplog too short for the time the pump was down?); starting "
                "from now: webhooks and history miss what happened meanwhile",
                extra={"error": str(exc)},
            )
            return None
        pending: list[Committed] = []
        first = 0.0  # when the oldest pending change arrived
        # The first configuration change not yet reloaded: reloads wait for the next
        # change or a quiet moment (one per run of them, not one each), and the stream is
        # reopened from there when the interest changed.
        dirty: Mapping[str, Any] | None = None
        async with stream:
            if token is None:
                token = stream.resume_token
                await self._checkpoint(token)
            while stream.alive and not self._stopping:
                raw = await stream.try_next()
                namespace = "" if raw is None else raw.get("ns", {}).get("coll", "")
                if raw is not None and namespace in config:
                    if dirty is None:
                        await self._record(pending, token)
                        pending = []
                        dirty = raw["_id"]
                    continue
                if dirty is not None:
                    for consumer in self.consumers:
                        await consumer.reload()
                    if self._pipeline()[0] != pipeline:
                        # Changes after it may match the new interest only: again from it.
                        await self._record(pending, token)
                        await self._checkpoint(dirty)
                        return dirty
                    dirty = None
                if raw is None:  # nothing more for now
                    if pending:
                        await self._record(pending, token)
                        pending = []
                    else:
                        token = stream.resume_token or token
                        # Idle: the resume point moves with the lease's renewal (a write
                        # each lease/3, not each second: each is an oplog entry, and
                        # on the embedded database it wakes every change stream).
                        await self._keep_lease(token)
                    await self._chores()
                    self.idle_reads += 1
                    await self._progressed()
                    await asyncio.sleep(self.idle_pause_seconds)
                    continue
                change = _committed(raw, self.clock)
                token = raw["_id"]
                if change is None:
                    continue
                if not pending:
                    first = time.monotonic()
                pending.append(change)
                if len(pending) >= self.batch or time.monotonic() - first > 0.25:
                    await self._record(pending, token)
                    pending = []
                    await self._chores()  # under steady writes the stream never idles
            await self._record(pending, token)
        return token

    async def _record(self, changes: list[Committed], token: Mapping[str, Any] | None) -> None:
        """Hand `changes` to every consumer, then save `token` (the last change's)."""
        if not changes:
            return
        for consumer in self.consumers:
            await consumer.take(changes)
            await self._keep_lease()
        await self._checkpoint(token)
        self.recorded += 1
        await self._progressed()

    async def _chores(self) -> None:
        if time.monotonic() - self._last_chores < self.chores_seconds:
            return
        self._last_chores = time.monotonic()
        for chore in self.chores:
            await self._keep_lease()  # (LostLease ends the leading, as it should)
            try:
                await chore()
            except Exception:  # one chore's bug never stops the stream or the others
                log.exception("change pump chore failed", extra={"chore": repr(chore)})


def _committed(raw: dict[str, Any], clock: Clock) -> Committed | None:
    kind = _KINDS.get(raw.get("operationType", ""))
    if kind is None:
        return None
    description = raw.get("updateDescription")
    fields = None
    if description is not None:
        names = [*description.get("updatedFields", {}), *description.get("removedFields", [])]
        fields = frozenset(name.split(".", 1)[0] for name in names)
    wall = raw.get("wallTime")
    return Committed(
        event=str(raw["_id"].get("_data", "")),
        namespace=raw["ns"]["coll"],
        kind=kind,
        doc_id=raw.get("documentKey", {}).get("_id"),
        at=wall if isinstance(wall, datetime) else clock(),
        after=raw.get("fullDocument"),
        before=raw.get("fullDocumentBeforeChange"),
        fields=fields,
    )

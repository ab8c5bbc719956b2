"""In-memory copies of read-mostly records, kept honest by a MongoDB change stream.

Every request needs its caller's account state (role, disabled, token version) and its
collection's declaration. Both change rarely, so reading them from MongoDB on every
request is most of the work of a GET. A `ReadCache` holds them in memory, but only
while a `ChangeFeed` proves it current:

- A write made by this process drops the entry as soon as the write returns, so in a
  single process a revocation is seen by the very next request.
- A write made by any other process (another worker, a script, mongosh) reaches this
  process through the change stream, a few milliseconds later (up to 50 ms more after a
  quiet moment: see `idle_pause_seconds`), and drops the entry.
- The cache is trusted only while the stream answers: every poll renews a short lease.
  If the stream fails or is unsupported (a standalone mongod has no change streams), the
  cache is emptied and every request reads MongoDB again until the stream is back: it
  fails closed. A stream that stalls without an error is trusted until its lease runs
  out.
- A read that overlaps an invalidation (it may have seen the old state) is not stored:
  each invalidation moves an epoch, and a load stores its result only if the epoch it
  started with is still current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from app.bounded import put_bounded
from app.db.client import Db
from app.observability.metrics import CHANGE_STREAM_FAILURES, READ_CACHE_ON
from app.tasks import cancel_and_wait

log = logging.getLogger("docstore.cache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    """A bounded map of loaded values, used only while its feed trusts it."""

    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[K, V] = {}
        self._epoch = 0
        self._trusted: Callable[[], bool] = lambda: False

    def follow(self, trusted: Callable[[], bool]) -> None:
        self._trusted = trusted

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    async def load(self, key: K, loader: Callable[[], Awaitable[V]]) -> V:
        """The value for `key`: from memory when the cache is trusted, else `loader()`."""
        trusted = self._trusted()
        if trusted and key in self._entries:
            return self._entries[key]
        epoch = self._epoch
        value = await loader()
        if trusted and epoch == self._epoch and self._trusted():
            put_bounded(self._entries, key, value, self.max_entries)
        return value

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
        self._epoch += 1

    @property
    def epoch(self) -> int:
        """Bumped by every invalidation: a value derived from all entries is current while
        the cache is trusted and the epoch it was made at has not moved."""
        return self._epoch

    def trusted(self) -> bool:
        return self._trusted()

    def clear(self) -> None:
        self._entries.clear()
        self._epoch += 1


class ChangeFeed:
    """Follows one database's change stream and invalidates the caches of its collections.

    `caches` maps a MongoDB collection name to the cache of its documents, keyed by
    `str(_id)` (an ObjectId's lower-case hex, a declaration's name).
    """

    def __init__(
        self,
        db: Db,
        caches: dict[str, ReadCache[str, Any]],
        *,
        poll_ms: int = 500,
        idle_pause_seconds: float = 0.05,
        lease_seconds: float = 2.0,
        retry_seconds: float = 1.0,
        keys: dict[str, Callable[[str], str | None]] | None = None,
    ) -> None:
        # A collection whose documents are not keyed as its cache is: `keys[name]` maps a
        # changed document's key to the cache's (None: forget everything).
        self.keys = keys or {}
        self._stopping = False
        self.db = db
        self.caches = caches
        self.poll_ms = poll_ms
        # After a getMore that brought nothing, the next waits this long: a database may
        # answer early whenever anything is written (SecantusDB does), and each write to
        # a collection no cache holds would otherwise cost a round trip. Another
        # process's change reaches this one's caches at most this much later.
        self.idle_pause_seconds = idle_pause_seconds
        self.lease_seconds = lease_seconds
        self.retry_seconds = retry_seconds
        self._trusted_until = 0.0
        self._task: asyncio.Task[None] | None = None
        # Set each time the stream opens; tests and callers can wait for it.
        self.opened = asyncio.Event()
        # Set once the first attempt to open the stream has succeeded or failed.
        self._settled = asyncio.Event()
        # Times the stream opened and events applied so far; wait_for() waits on them
        # (tests wait for a count rather than for time).
        self.opens = 0
        self.applied = 0
        # Reads that found nothing more (settled() waits on this count).
        self.idle_reads = 0
        self._progress = asyncio.Condition()
        # Told (collection, key or None for "anything") after each invalidation, e.g. so
        # realtime streams re-check their caller once the caches have forgotten it.
        self.listeners: list[Callable[[str, str | None], Awaitable[None]]] = []
        for cache in caches.values():
            cache.follow(self.trusted)

    def trusted(self) -> bool:
        return time.monotonic() < self._trusted_until

    async def start(self) -> None:
        """Follow the stream in the background, once the first attempt to open it is over
        (so an app serves its first request with the cache on, or knowingly off)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="change-feed")
        await self._settled.wait()

    async def stop(self) -> None:
        # The flag ends the loop even if a cancellation is swallowed inside the driver
        # (seen when the database vanished mid-call): shutdown never waits on it.
        self._stopping = True
        await cancel_and_wait(self._task)
        self._task = None
        self._distrust()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds, checked whenever the stream opens, fails or
        applies an event."""
        async with self._progress:
            await self._progress.wait_for(predicate)

    async def settled(self) -> None:
        """Return once every change committed before the call is applied: two reads
        that found nothing more, the second begun after the call (TimeoutError when the
        stream is down or never quiet)."""
        start = self.idle_reads
        async with asyncio.timeout(30):
            await self.wait_for(lambda: self.idle_reads >= start + 2)

    async def _progressed(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    def _distrust(self) -> None:
        self._trusted_until = 0.0
        if self.opened.is_set():
            READ_CACHE_ON.dec()
        self.opened.clear()
        for cache in self.caches.values():
            cache.clear()

    def _renew(self) -> None:
        self._trusted_until = time.monotonic() + self.lease_seconds

    async def _run(self) -> None:
        warned = False
        while not self._stopping:
            try:
                await self._follow()
                warned = False
            except Exception as exc:  # whatever broke the stream: fail closed, retry
                self._settled.set()
                if not warned:
                    log.warning(
                        "read cache off until the change stream is back; every request "
                        "reads MongoDB meanwhile (a standalone mongod has no change "
                        "streams: run a replica set)",
                        extra={"error": str(exc)},
                    )
                    warned = True
            CHANGE_STREAM_FAILURES.inc()
            self._distrust()
            await self._progressed()
            if self._stopping:
                break
            await asyncio.sleep(self.retry_seconds)

    async def _follow(self) -> None:
        names = list(self.caches)
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "$or": [
                        {"ns.coll": {"$in": names}},
                        # A rename reports its source in ns, its target in to.
                        {"to.coll": {"$in": names}},
                        {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
                    ]
                }
            },
            {"$project": {"operationType": 1, "ns": 1, "to": 1, "documentKey": 1}},
        ]
        # No asyncio.wait_for around the driver's calls: cancelling one mid-read (stop())
        # could hang the driver's cleanup. A stalled stream is bounded by the lease.
        stream = await self.db.watch(pipeline, max_await_time_ms=self.poll_ms)
        async with stream:
            # Entries loaded before this moment may predate changes the stream will never
            # report: start empty.
            self._distrust()
            self._renew()
            self.opened.set()
            READ_CACHE_ON.inc()
            self._settled.set()
            self.opens += 1
            await self._progressed()
            log.info("read cache on", extra={"collections": sorted(self.caches)})
            while stream.alive and not self._stopping:
                change = await stream.try_next()
                if change is not None:
                    await self._apply(change)
                else:
                    self.idle_reads += 1
                    await self._progressed()
                    await asyncio.sleep(self.idle_pause_seconds)
                self._renew()

    async def _apply(self, change: dict[str, Any]) -> None:
        entry = self.caches.get(change.get("ns", {}).get("coll", ""))
        key = change.get("documentKey", {}).get("_id")
        if entry is None or key is None or "to" in change:
            # drop, rename, invalidate...: anything may have changed.
            for cache in self.caches.values():
                cache.clear()
        else:
            mapped = self.keys.get(change["ns"]["coll"], str)(str(key))
            if mapped is None:
                entry.clear()
            else:
                entry.invalidate(mapped)
        for listener in self.listeners:
            try:
                await listener(
                    change.get("ns", {}).get("coll", ""), None if key is None else str(key)
                )
            except Exception:  # a listener's failure must not stop the caches' feed
                log.exception("a change listener failed")
        self.applied += 1
        await self._progressed()

"""One change stream per process, fanned out to every event stream it serves.

The hub follows a single database-wide change stream over the document collections
(`docs_*`) and hands each change to the subscribers of that collection, each through a
bounded buffer: a subscriber that does not keep up is ended (`slow_consumer`), never
waited for. A write through any process reaches every process, since each follows the
same change stream.

Resuming (`Last-Event-ID`) opens a short-lived private stream from the client's resume
token, after registering the subscriber, so nothing falls between the two: the private
stream replays until it meets a change the shared stream has already buffered (or
until it has nothing more), then the buffer takes over, minus what was replayed.

The shared stream runs only while someone listens: with no subscriber for
IDLE_CLOSE_SECONDS it closes, and the next subscriber opens it again (and waits for it:
its `ready` id is where the new stream starts). A process serving no event streams asks
the database for nothing, and decodes no document changes (each change would otherwise
cost every process its images: make bench's background CPU per write).

Deleted documents come with their pre-image (MongoDB's changeStreamPreAndPostImages,
enabled on every document collection), which names the owner, so an owner-read
collection tells a deletion only to its owner and admins. Without an image the stream
sends `reset` rather than guess.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from app.accounts.principal import Principal
from app.collections.models import STORAGE_PREFIX
from app.db.client import Db
from app.errors import AppError, ErrorCode
from app.observability.metrics import REALTIME_ENDED, REALTIME_FEED_FAILURES, REALTIME_STREAMS
from app.tasks import cancel_and_wait

log = logging.getLogger("docstore.realtime")

_KINDS = {"insert": "created", "update": "updated", "replace": "updated", "delete": "deleted"}
# The whole collection is gone (or renamed away): its streams end.
_GONE = {"drop", "rename", "dropDatabase", "invalidate"}
# The shared stream closes after this long without subscribers (not at once: a client
# that reconnects would otherwise reopen it every time).
IDLE_CLOSE_SECONDS = 30.0
# How long a subscriber waits for the shared stream to open before a 503.
OPEN_TIMEOUT_SECONDS = 10.0


class RealtimeUnavailable(AppError):
    code, status = ErrorCode.REALTIME_UNAVAILABLE, 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=5)


class TooManyStreams(AppError):
    code = ErrorCode.TOO_MANY_STREAMS

    def __init__(self, detail: str, *, status: int) -> None:
        super().__init__(detail, status=status, retry_after=10)


@dataclass(slots=True)
class Change:
    """One change of one document collection, as the change stream reported it."""

    token: dict[str, Any]
    collection: str
    # created | updated | deleted | gone (the collection was dropped)
    kind: str
    doc_id: Any = None
    # The stored document after the change (created/updated) or before it (deleted);
    # None when the database kept no image.
    image: dict[str, Any] | None = None
    # The document before the change (updates and deletes), when the database kept it.
    before: dict[str, Any] | None = None
    # Filter verdicts for this change, shared by subscribers with the same filter.
    verdicts: dict[str, asyncio.Future[bool | None]] = field(default_factory=dict)
    # Kind "reset" (no document changed; the client should list again): why.
    reason: str | None = None


def parse_change(raw: dict[str, Any]) -> Change | None:
    op = raw.get("operationType", "")
    coll = raw.get("ns", {}).get("coll", "")
    name = coll[len(STORAGE_PREFIX) :] if coll.startswith(STORAGE_PREFIX) else ""
    if op in _KINDS and name:
        before = raw.get("fullDocumentBeforeChange")
        image = before if op == "delete" else raw.get("fullDocument")
        return Change(raw["_id"], name, _KINDS[op], raw["documentKey"].get("_id"), image, before)
    if op in _GONE:
        return Change(raw["_id"], name, "gone")  # name "" : every collection
    return None


def network_of(address: str) -> str:
    """The client network an anonymous stream counts against: the address for IPv4, its
    /64 for IPv6 (one subscriber line holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Subscriber:
    """One open event stream: its caller, collection and buffer of pending changes."""

    def __init__(
        self,
        collection: str,
        caller: Principal | None,
        *,
        buffer: int,
        start: Mapping[str, Any] | None = None,
        key: str = "",
    ) -> None:
        self.collection = collection
        self.caller = caller
        # What it counts against: its user's id, or `@network` for an anonymous stream.
        self.key = key
        self.capacity = buffer
        # Where the shared stream stood when this one registered: every later change
        # reaches `pending`, so a fresh stream's `ready` id is this position.
        self.start = start
        self.pending: deque[Change] = deque()
        # Changes a resume replayed that the shared stream may still hand over.
        self.replayed: set[str] = set()
        self.end_reason: str | None = None
        self._wake = asyncio.Event()

    def push(self, change: Change) -> None:
        if self.end_reason is not None:
            return
        if len(self.pending) >= self.capacity:
            self.pending.clear()
            self.end("slow_consumer")
            return
        self.pending.append(change)
        self._wake.set()

    def end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
            REALTIME_ENDED.labels(reason).inc()
        self._wake.set()

    async def next(self, idle_seconds: float) -> Change | None:
        """The next change; None when the stream has ended or was idle `idle_seconds`."""
        while True:
            while not self.pending and self.end_reason is None:
                self._wake.clear()
                try:
                    async with asyncio.timeout(idle_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    return None
            if self.end_reason is not None:
                return None
            change = self.pending.popleft()
            if not self.replayed or change.kind == "reset":
                return change
            if change.token.get("_data") not in self.replayed:
                # Changes arrive in order: once one is new, so is everything after it.
                self.replayed.clear()
                return change
            # Already sent by the replay: skip it.


class RealtimeHub:
    def __init__(
        self,
        db: Db,
        *,
        max_streams: int,
        max_per_user: int,
        max_per_address: int,
        buffer: int,
        poll_ms: int = 500,
        retry_seconds: float = 1.0,
        idle_close_seconds: float = IDLE_CLOSE_SECONDS,
    ) -> None:
        self.db = db
        self.max_streams = max_streams
        self.max_per_user = max_per_user
        self.max_per_address = max_per_address
        self.buffer = buffer
        self.poll_ms = poll_ms
        self.retry_seconds = retry_seconds
        self.idle_close_seconds = idle_close_seconds
        # False once the shared stream failed to open or broke (until it opens again).
        self.available = False
        # Whether the shared stream is open now (it closes while nobody subscribes).
        self.streaming = False
        # Set while the stream should be open (subscribers, or the start-up probe).
        self._wanted = asyncio.Event()
        self._idle_since = 0.0
        # Where the shared stream stands: the resume token after the last change it
        # handed out (a new subscriber's starting point).
        self.position: Mapping[str, Any] | None = None
        self.unavailable_reason = "the change stream has not opened yet"
        self._by_collection: dict[str, set[Subscriber]] = {}
        self._by_user: dict[str, set[Subscriber]] = {}
        self._count = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        # Tests wait on these counts rather than on time.
        self.opens = 0
        self.failures = 0
        self.dispatched = 0
        self._progress = asyncio.Condition()

    # -- subscribers -----------------------------------------------------------------------

    async def subscribe(
        self, collection: str, caller: Principal | None, *, address: str = ""
    ) -> Subscriber:
        """Register a stream, opening the shared stream first when it is closed."""
        if not self.available or self._stopping or self._task is None:
            raise RealtimeUnavailable(f"Realtime events are unavailable: {self.unavailable_reason}")
        if self._count >= self.max_streams:
            raise TooManyStreams(
                "This server has as many event streams open as it allows; retry later "
                "(or on another server process)",
                status=503,
            )
        # Signed-in streams count per user; anonymous ones per client network, so that
        # anonymous clients cannot take every place of the process-wide cap.
        key = caller.id if caller is not None else f"@{network_of(address)}"
        mine = self._by_user.setdefault(key, set())
        if caller is not None and len(mine) >= self.max_per_user:
            raise TooManyStreams(
                f"You have {len(mine)} event streams open on this server, the most it "
                "allows; close one (EventSource.close()) and retry",
                status=429,
            )
        if caller is None and len(mine) >= self.max_per_address:
            raise TooManyStreams(
                f"Your address has {len(mine)} anonymous event streams open on this server, "
                "the most it allows; close one, or sign in (signed-in streams count per user)",
                status=429,
            )
        start = self.position if self.streaming else None
        sub = Subscriber(collection, caller, buffer=self.buffer, start=start, key=key)
        mine.add(sub)
        self._by_collection.setdefault(collection, set()).add(sub)
        self._count += 1
        REALTIME_STREAMS.inc()
        if not self.streaming:
            # Registered first, so the stream opening for it stays open and hands it
            # every change from its first position on (set as `start` when it opens).
            failures = self.failures
            self._wanted.set()
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                    await self.wait_for(
                        lambda: self.streaming or self.failures > failures or self._stopping
                    )
            except TimeoutError:
                self.unsubscribe(sub)
                raise RealtimeUnavailable(
                    "Realtime events are unavailable: the change stream did not open within "
                    f"{OPEN_TIMEOUT_SECONDS:g} s"
                ) from None
            except BaseException:  # the request went away meanwhile: free its place
                self.unsubscribe(sub)
                raise
            if not self.streaming and (self.failures > failures or self._stopping):
                self.unsubscribe(sub)
                raise RealtimeUnavailable(
                    f"Realtime events are unavailable: {self.unavailable_reason}"
                )
            # Otherwise open (or ended for reasons of its own, which its `end` event tells).
        return sub

    @property
    def count(self) -> int:
        return self._count

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._by_collection.get(sub.collection)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._by_collection[sub.collection]
        mine = self._by_user.get(sub.key, set())
        mine.discard(sub)
        if not mine:
            self._by_user.pop(sub.key, None)
        self._count -= 1
        REALTIME_STREAMS.dec()
        if not self._count:
            self._idle_since = asyncio.get_running_loop().time()

    def tell_reset(self, sub: Subscriber, reason: str) -> None:
        """Queue a `reset` for `sub` after the changes it has been handed so far (what
        it may see changed without any document changing: list again)."""
        if self.position is not None:
            sub.push(Change(dict(self.position), sub.collection, "reset", reason=reason))

    def subscribers(
        self, predicate: Callable[[Subscriber], bool] | None = None
    ) -> list[Subscriber]:
        every = [s for subs in self._by_collection.values() for s in subs]
        return every if predicate is None else [s for s in every if predicate(s)]

    def of_user(self, user_id: str) -> list[Subscriber]:
        return list(self._by_user.get(user_id, ()))

    def _end_all(self, reason: str) -> None:
        for sub in self.subscribers():
            sub.end(reason)

    # -- replay ----------------------------------------------------------------------------

    async def replay(self, sub: Subscriber, token: dict[str, Any]) -> AsyncIterator[Change]:
        """The collection's changes after `token` that `sub`'s buffer does not hold.

        Raises PyMongoError when the database cannot resume there (history lost, a
        token from elsewhere): the caller sends `reset`.
        """
        storage = STORAGE_PREFIX + sub.collection
        # This collection's changes (its drop and rename included) and the database's end;
        # another collection's drop is no business of this stream.
        gone = ["dropDatabase", "invalidate"]
        stream = await self.db.watch(
            [{"$match": {"$or": [{"ns.coll": storage}, {"operationType": {"$in": gone}}]}}],
            resume_after=token,
            full_document="whenAvailable",
            full_document_before_change="whenAvailable",
            max_await_time_ms=50,
        )
        replayed: deque[str] = deque(maxlen=self.buffer + 1)
        async with stream:
            while sub.end_reason is None:
                raw = await stream.try_next()
                if raw is None:
                    break  # caught up with the present: the buffer has the rest
                data = raw["_id"].get("_data")
                if any(c.token.get("_data") == data for c in sub.pending):
                    break  # the shared stream has it from here on
                change = parse_change(raw)
                if change is None or change.collection not in ("", sub.collection):
                    continue
                replayed.append(data)
                yield change
        # The shared stream may hand over some of these still (it can lag the private
        # one): the subscriber skips them as they come.
        sub.replayed = set(replayed)

    # -- the shared stream -----------------------------------------------------------------

    async def start(self) -> None:
        """Open the shared stream once (does this database have change streams?); it
        closes again when nobody subscribes."""
        self._stopping = False
        self._wanted.set()
        self._task = asyncio.create_task(self._run(), name="realtime-hub")
        await self._settled.wait()

    async def stop(self) -> None:
        self._stopping = True
        self._end_all("shutdown")
        await self._progressed()  # a subscriber waiting for the stream to open: 503 now
        await cancel_and_wait(self._task)
        self._task = None
        self.available = False
        self.streaming = False

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self._progress:
            await self._progress.wait_for(predicate)

    async def _progressed(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def _run(self) -> None:
        warned = False
        while not self._stopping:
            await self._wanted.wait()
            try:
                if await self._follow():
                    continue  # closed for want of subscribers
                warned = False
            except Exception as exc:  # the hub outlives any one failure
                self._settled.set()
                self.unavailable_reason = (
                    "the database has no change streams (a standalone mongod: run a replica set)"
                    if getattr(exc, "code", None) == 40573
                    else "the change stream failed; retry shortly"
                )
                if not isinstance(exc, PyMongoError):
                    log.exception("realtime hub failed; restarting its change stream")
                elif not warned:
                    log.warning(
                        "realtime events off until the change stream is back",
                        extra={"error": str(exc)},
                    )
                    warned = True
            REALTIME_FEED_FAILURES.inc()
            self.available = self.streaming = False
            self.failures += 1
            self._wanted.set()  # retry until it opens again, subscribers or not
            # Changes may be lost between the old stream and a new one: end the streams
            # so their clients resume from their last event id, which loses nothing.
            self._end_all("server_unavailable" if not self._stopping else "shutdown")
            await self._progressed()
            if self._stopping:
                break
            await asyncio.sleep(self.retry_seconds)

    async def _follow(self) -> bool:
        """Follow the shared stream; True when it closed for want of subscribers."""
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "$or": [
                        {"ns.coll": {"$regex": f"^{STORAGE_PREFIX}"}},
                        {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
                    ]
                }
            }
        ]
        stream = await self.db.watch(
            pipeline,
            full_document="whenAvailable",
            full_document_before_change="whenAvailable",
            max_await_time_ms=self.poll_ms,
        )
        loop = asyncio.get_running_loop()
        async with stream:
            self.position = stream.resume_token
            for sub in self.subscribers(lambda s: s.start is None):
                sub.start = self.position  # registered while the stream was closed
            self.available = self.streaming = True
            # Opened with nobody waiting (the start-up probe, a retry): close at once
            # unless someone subscribes meanwhile.
            self._idle_since = loop.time() if self._count else -self.idle_close_seconds
            self.opens += 1
            self._settled.set()
            await self._progressed()
            while stream.alive and not self._stopping:
                if not self._count and loop.time() - self._idle_since >= self.idle_close_seconds:
                    # Nobody listens: close (a subscriber arriving from here on opens it
                    # again and waits for that).
                    self.streaming = False
                    self._wanted.clear()
                    await self._progressed()
                    return True
                raw = await stream.try_next()
                if raw is not None:
                    change = parse_change(raw)
                    if change is not None:
                        self._dispatch(change)
                # After the change is in every buffer: a subscriber registered from here
                # on starts after it.
                self.position = stream.resume_token
                if raw is not None:
                    self.dispatched += 1
                    await self._progressed()
        return False  # the stream ended (the database closed it)

    def _dispatch(self, change: Change) -> None:
        if change.kind == "gone":
            targets = (
                self.subscribers()
                if not change.collection
                else list(self._by_collection.get(change.collection, ()))
            )
            for sub in targets:
                sub.end("collection_deleted")
            return
        for sub in self._by_collection.get(change.collection, ()):
            sub.push(change)

"""Event streams for callers: tickets, resume, access rules and filters on each change.

A stream is a generator of `StreamEvent`s over one `Subscriber` of the hub (the router
frames them as server-sent events):
`ready` (its id marks where the stream starts), then `created` / `updated` / `deleted`
for the documents the caller may read (created/updated only when they match the
filter), `reset` when the stream cannot tell what happened (resume point too old, no
image of a change), and finally `end` with a reason. Each event id is the change
stream's resume token, signed and bound to the collection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, IndexModel
from pymongo.errors import PyMongoError

from app.accounts.api_keys import COLLECTION as API_KEYS
from app.accounts.auth_service import AuthService
from app.accounts.models import Role, Session, User
from app.accounts.principal import Principal
from app.clock import Clock
from app.collections.models import CollectionSpec
from app.collections.service import CollectionService
from app.db.client import Db
from app.documents.access import Gate
from app.documents.core import limited_query, parse_filter
from app.documents.models import StoredDocument
from app.errors import AppError, ErrorCode, Unauthorized
from app.pagination import CursorCodec, InvalidCursor
from app.realtime.hub import Change, RealtimeHub, Subscriber
from app.teams.repository import MEMBERS as TEAM_MEMBERS

log = logging.getLogger("docstore.realtime")

USERS = User.Settings.name
SESSIONS = Session.Settings.name

TICKET_TTL = timedelta(seconds=30)
# Stands in for the caller of an anonymous stream where a Principal is compared.
ANONYMOUS = Principal(id="", role=Role.USER, disabled=False, token_version=0)
TICKETS = "realtime_tickets"


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class TicketRepository:
    """Single-use tickets: only their SHA-256 is stored; redeeming deletes atomically."""

    def __init__(self, db: Db) -> None:
        self.collection = db[TICKETS]

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [IndexModel([("expires_at", ASCENDING)], name="expiry", expireAfterSeconds=0)]
        )

    async def issue(self, caller: Principal, *, now: datetime) -> str:
        ticket = "rt_" + secrets.token_urlsafe(32)
        await self.collection.insert_one(
            {
                "_id": _hash(ticket),
                "user_id": caller.id,
                "token_version": caller.token_version,
                "session_id": caller.session_id,
                "api_key_id": caller.api_key_id,
                # ADMIN_MFA_REQUIRED: an admin without the second factor stays a user.
                "elevated": caller.elevated,
                "expires_at": now + TICKET_TTL,
            }
        )
        return ticket

    async def redeem(self, ticket: str, *, now: datetime) -> dict[str, Any] | None:
        return await self.collection.find_one_and_delete(
            {"_id": _hash(ticket), "expires_at": {"$gt": now}}
        )


@dataclass(frozen=True, slots=True)
class StreamRequest:
    collection: str
    caller: Principal | None
    # The client's filter compiled (and its key, shared by streams with the same filter).
    query: dict[str, Any] | None
    query_key: str
    resume: dict[str, Any] | None
    # Last-Event-ID was given but is not one of ours for this collection.
    resume_refused: bool


EventKind = Literal["ready", "created", "updated", "deleted", "reset", "end"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a stream: `document` for created/updated, `id` of the deleted document,
    `reason` for reset and end; `event_id` is the resume point it carries, if any."""

    kind: EventKind
    event_id: str | None = None
    document: StoredDocument | None = None
    doc_id: str | None = None
    reason: str | None = None


def _caller(sub: Subscriber) -> Principal:
    return sub.caller or ANONYMOUS


def _reset(reason: str, event_id: str | None) -> StreamEvent:
    return StreamEvent("reset", event_id, reason=reason)


def _deleted(doc_id: str, event_id: str | None) -> StreamEvent:
    return StreamEvent("deleted", event_id, doc_id=doc_id)


class RealtimeService:
    def __init__(
        self,
        *,
        db: Db,
        hub: RealtimeHub,
        auth: AuthService,
        collections: CollectionService,
        tickets: TicketRepository,
        codec: CursorCodec,
        heartbeat_seconds: float,
        max_stream_seconds: float,
        clock: Clock,
        gates: Callable[[CollectionSpec, Principal | None], Awaitable[Gate]],
    ) -> None:
        # A caller in front of a collection (DocumentService.gate): its rules per event.
        self.gates = gates
        self.max_stream_seconds = max_stream_seconds
        self.db = db
        self.hub = hub
        self.auth = auth
        self.collections = collections
        self.tickets = tickets
        self.codec = codec
        self.heartbeat_seconds = heartbeat_seconds
        self.clock = clock

    # -- tickets ---------------------------------------------------------------------------

    async def issue_ticket(self, caller: Principal) -> str:
        return await self.tickets.issue(caller, now=self.clock())

    async def redeem_ticket(self, ticket: str) -> Principal:
        record = await self.tickets.redeem(ticket, now=self.clock())
        refused = Unauthorized(
            "The ticket is not valid (unknown, used or older than 30 s); get a new one "
            "from POST /v1/realtime/tickets",
            code=ErrorCode.INVALID_TICKET,
        )
        if record is None:
            raise refused
        caller = Principal(
            id=record["user_id"],
            role=await self._role(record["user_id"]),
            disabled=False,
            token_version=record["token_version"],
            session_id=record.get("session_id"),
            api_key_id=record.get("api_key_id"),
            elevated=record.get("elevated") is True,
        )
        if await self.auth.signed_out_reason(caller) is not None:
            raise refused
        return caller

    async def _role(self, user_id: str) -> Any:
        principal = await self.auth.users.get_principal(user_id)
        if principal is None:
            raise Unauthorized(
                "The ticket's account no longer exists", code=ErrorCode.INVALID_TICKET
            )
        return principal.role

    # -- opening ---------------------------------------------------------------------------

    async def prepare(
        self,
        name: str,
        caller: Principal | None,
        *,
        filter_raw: str | None,
        last_event_id: str | None,
    ) -> StreamRequest:
        """Check everything a stream needs before its response starts (errors are 4xx)."""
        spec = await self.collections.get(name)
        # 401 for anonymous callers of a collection that shows them nothing.
        gate = await self.gates(spec, caller)
        gate.read_scope("list")
        # A filter on a field some documents hide from the caller would tell its values
        # by which changes arrive: refused, as for lists.
        query = limited_query(gate, parse_filter(filter_raw), {}) if filter_raw else None
        resume = None
        refused = False
        if last_event_id:
            try:
                resume = self.codec.decode(last_event_id, scope=f"events:{name}")
            except InvalidCursor:
                refused = True
            if not isinstance(resume, dict):
                resume, refused = None, True
        # Key order kept: MongoDB compares embedded documents key by key, in order, so
        # {"a":1,"b":2} and {"b":2,"a":1} are different filters.
        key = json.dumps(query, default=str) if query else ""
        return StreamRequest(name, caller, query, key, resume, refused)

    async def open(self, request: StreamRequest, address: str) -> Subscriber:
        """Register the stream (429/503 past the caps, 503 without change streams);
        `address` is the client's, which anonymous streams count against."""
        return await self.hub.subscribe(request.collection, request.caller, address=address)

    async def events(
        self, request: StreamRequest, sub: Subscriber, shutdown: asyncio.Event | Any
    ) -> AsyncGenerator[StreamEvent]:
        watcher = asyncio.create_task(self._end_on(shutdown, sub))
        start = self._event_id(request.collection, sub.start)
        try:
            if request.resume is not None:
                # No id: the client's own stays its resume point until the replay moves it
                # (an id here would skip what the replay has yet to send).
                yield StreamEvent("ready")
                try:
                    async for change in self.hub.replay(sub, request.resume):
                        event = await self._event(request, sub, change)
                        if event is not None:
                            yield event
                except PyMongoError as exc:
                    log.info("cannot resume a stream", extra={"error": str(exc)})
                    yield _reset("history_lost", start)
            else:
                yield StreamEvent("ready", start)
                if request.resume_refused:
                    yield _reset("unknown_event_id", start)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_stream_seconds
            check_at = loop.time() + self.heartbeat_seconds
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    sub.end("expired")
                pending = await sub.next(min(self.heartbeat_seconds, max(left, 0)))
                if pending is not None:
                    event = await self._event(request, sub, pending)
                    if event is not None:
                        yield event
                if sub.end_reason is None and loop.time() >= check_at:
                    # Every heartbeat, busy or idle: does the sign-in behind it still hold?
                    # (The read cache's change feed ends streams at once; this is for
                    # when it is off.)
                    check_at = loop.time() + self.heartbeat_seconds
                    reason = await self._signed_out(sub.caller)
                    if reason is not None:
                        sub.end(reason)
                if sub.end_reason is not None:
                    yield StreamEvent("end", reason=sub.end_reason)
                    return
        finally:
            watcher.cancel()
            self.hub.unsubscribe(sub)

    @staticmethod
    async def _end_on(shutdown: Any, sub: Subscriber) -> None:
        await shutdown.wait()
        sub.end("shutdown")

    async def _signed_out(self, caller: Principal | None) -> str | None:
        if caller is None:
            return None
        return await self.auth.signed_out_reason(caller)

    async def on_account_change(self, collection: str, key: str | None) -> None:
        """End the streams whose sign-in a change to users, sessions or API keys undid,
        and tell a member's streams to list again when their teams change (called by the
        read cache's change feed once it has forgotten the old state)."""
        if not self.hub.count:
            return
        if key is None:
            subs = self.hub.subscribers()
        elif collection == USERS:
            subs = self.hub.of_user(key)
        elif collection == SESSIONS:
            subs = self.hub.subscribers(lambda s: _caller(s).session_id == key)
        elif collection == API_KEYS:
            subs = self.hub.subscribers(lambda s: _caller(s).api_key_id is not None)
        elif collection == TEAM_MEMBERS:
            # Joining or leaving a team (or a new role in it) changes which documents
            # the member may read without any document changing: their streams say
            # `reset` (list again), and judge later changes by the new membership.
            for sub in self.hub.of_user(key.partition(":")[2]):
                self.hub.tell_reset(sub, "membership_changed")
            return
        else:
            return
        for sub in subs:
            reason = await self._signed_out(sub.caller)
            if reason is not None:
                sub.end(reason)

    def _event_id(self, collection: str, token: Mapping[str, Any] | None) -> str | None:
        if token is None:
            return None
        return self.codec.encode(token, scope=f"events:{collection}")

    async def _event(
        self, request: StreamRequest, sub: Subscriber, change: Change
    ) -> StreamEvent | None:
        if change.kind == "gone":
            sub.end("collection_deleted")
            return None
        if change.kind == "reset":
            event_id = self._event_id(request.collection, change.token)
            return _reset(change.reason or "reset", event_id)
        try:
            spec = await self.collections.get(request.collection)
            gate = await self.gates(spec, request.caller)
            gate.read_scope()
        except AppError:
            sub.end("forbidden")  # the collection went away or its read rule changed
            return None
        event_id = self._event_id(request.collection, change.token)
        if change.image is None:
            if change.before is not None and not gate.can_list(change.before):
                return None  # not the caller's, whatever the change did
            return self._without_image(gate, change, event_id)
        doc = StoredDocument.from_mongo(change.image)
        if change.kind == "deleted":
            return _deleted(doc.id, event_id) if gate.can_list(doc) else None
        # Sharing, revoking, a field a rule reads: an update may move the document into
        # or out of the caller's sight, which they see as a creation or a deletion.
        was_visible = None
        if change.kind == "updated" and change.before is not None:
            was_visible = gate.can_list(change.before)
        if not gate.can_list(doc):
            return _deleted(doc.id, event_id) if was_visible else None
        if request.query is not None:
            verdict = await self._matches(change, request.query_key, request.query)
            if verdict is None:
                return _reset("filter_unavailable", event_id)
            if not verdict:
                return None
        appeared = change.kind == "created" or was_visible is False
        kind: EventKind = "created" if appeared else "updated"
        return StreamEvent(kind, event_id, document=gate.shown(doc))

    @staticmethod
    def _without_image(gate: Gate, change: Change, event_id: str | None) -> StreamEvent:
        """No image of the document (images off for the collection; on SecantusDB, an
        update whose document was deleted before the stream read it): a deletion everyone
        may read is still told; anything else resets rather than leak or lose."""
        if change.kind == "deleted" and not gate.filter("read"):
            return _deleted(change.doc_id, event_id)
        return _reset("no_image", event_id)

    async def _matches(self, change: Change, key: str, query: dict[str, Any]) -> bool | None:
        """Whether the change's document matches the filter, evaluated by the database
        itself (`$documents`), so the language is exactly the listing's; once per change
        and distinct filter however many streams share it. None: it could not tell."""
        verdict = change.verdicts.get(key)
        if verdict is None:
            # A task of its own, awaited through a shield: a stream whose client leaves
            # mid-check cancels its wait, never the verdict the other streams wait on.
            verdict = change.verdicts[key] = asyncio.ensure_future(
                self._evaluate(change.image, query)
            )
        return await asyncio.shield(verdict)

    async def _evaluate(self, image: dict[str, Any] | None, query: dict[str, Any]) -> bool | None:
        try:
            cursor = await self.db.aggregate(
                [{"$documents": [image]}, {"$match": query}, {"$project": {"_id": 1}}]
            )
            return bool(await cursor.to_list())
        except Exception as exc:  # None: the stream sends `reset`
            log.warning("cannot evaluate a stream's filter", extra={"error": str(exc)})
            return None

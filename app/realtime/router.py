"""Realtime endpoints: the event stream of a collection and tickets for EventSource."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, status
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from app.http.deps import ClientDep, CurrentUser, OptionalUser, RealtimeServiceDep, no_store
from app.http.encoding import encode_document
from app.http.problems import problem_responses
from app.observability.metrics import REALTIME_EVENTS
from app.realtime.service import TICKET_TTL, StreamEvent

router = APIRouter(tags=["realtime"])

# The payload of each event type, for the contract (components/schemas).
EVENT_TYPES = {
    "ready": "The stream is open; its id marks where it starts (resume from it).",
    "created": "A document was created (data: the document, as GET returns it).",
    "updated": "A document was changed (data: the document after the change).",
    "deleted": 'A document was deleted (data: {"id": ...}).',
    "reset": "Re-list: events may have been missed (resume point too old or unknown), or "
    "what the caller may read changed without a document changing (membership_changed).",
    "end": 'The server ended the stream (data: {"reason": ...}); do not reconnect blindly.',
}
STREAM_DESCRIPTION = (
    "Server-Sent Events. Each event is one of: "
    + "; ".join(f"`{name}`: {text}" for name, text in EVENT_TYPES.items())
    + " Every change event has an `id:`; reconnect with `Last-Event-ID` (or "
    "`last_event_id=`) to resume with nothing lost or repeated. Comment lines are "
    "heartbeats. `end` reasons: signed_out, session_ended, revoked, user_disabled, "
    "user_deleted, access_changed, forbidden, collection_deleted, slow_consumer, "
    "server_unavailable, shutdown, expired (after REALTIME_MAX_STREAM_SECONDS: resume)."
)


class Ticket(BaseModel):
    ticket: str = Field(description="Single use; put it in `?ticket=` of the event stream URL")
    expires_in: int = Field(description="Seconds until the ticket expires")


class DeletedEvent(BaseModel):
    """The data of a `deleted` event."""

    id: str


class EndEvent(BaseModel):
    """The data of an `end` (and `reset`) event."""

    reason: str


@router.post(
    "/v1/realtime/tickets",
    status_code=status.HTTP_201_CREATED,
    operation_id="realtime_ticket",
    summary="A single-use, 30-second ticket to open an event stream from a browser",
    dependencies=[Depends(no_store)],
    responses=problem_responses(401),
)
async def create_ticket(caller: CurrentUser, realtime: RealtimeServiceDep) -> Ticket:
    ticket = await realtime.issue_ticket(caller)
    return Ticket(ticket=ticket, expires_in=int(TICKET_TTL.total_seconds()))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# Each event type's `data:` (JSON), for generated clients and readers of the contract.
EVENT_PAYLOADS = {
    "ready": {"type": "object"},
    "created": _ref("DocumentOut"),
    "updated": _ref("DocumentOut"),
    "deleted": _ref("DeletedEvent"),
    "reset": _ref("EndEvent"),
    "end": _ref("EndEvent"),
}


def event_schemas() -> dict[str, Any]:
    """The payload components the stream's contract refers to."""
    return {
        model.__name__: model.model_json_schema(ref_template="#/components/schemas/{model}")
        for model in (DeletedEvent, EndEvent)
    }


_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": STREAM_DESCRIPTION,
        "content": {
            "text/event-stream": {
                "schema": {"type": "string", "description": "event: <type>, id: <id>, data: JSON"}
            }
        },
        "x-sse-events": EVENT_PAYLOADS,
    },
    **problem_responses(400, 401, 403, 404, 429, 503),
}


def _frame(collection: str, event: StreamEvent) -> ServerSentEvent:
    REALTIME_EVENTS.labels(event.kind).inc()
    if event.kind in ("created", "updated") and event.document is not None:
        data = encode_document(collection, event.document).decode()
    elif event.kind == "deleted":
        data = json.dumps({"id": event.doc_id})
    elif event.kind in ("reset", "end"):
        data = json.dumps({"reason": event.reason})
    else:
        data = "{}"
    return ServerSentEvent(data=data, event=event.kind, id=event.event_id)


async def _framed(
    collection: str, events: AsyncGenerator[StreamEvent]
) -> AsyncGenerator[ServerSentEvent]:
    try:
        async for event in events:
            yield _frame(collection, event)
    finally:
        await events.aclose()  # its `finally` frees the stream's slot now, not at GC


@router.get(
    "/v1/collections/{name}/events",
    operation_id="documents_events",
    summary="Follow changes to the collection's documents (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses=_STREAM_RESPONSES,
)
async def stream_events(
    name: str,
    caller: OptionalUser,
    realtime: RealtimeServiceDep,
    client: ClientDep,
    filter: Annotated[
        str | None,
        Query(max_length=8000, description="Only created/updated documents matching it (JSON)"),
    ] = None,
    ticket: Annotated[
        str | None,
        Query(max_length=200, description="From POST /v1/realtime/tickets, for EventSource"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=2000, description="Resume after this event (as Last-Event-ID)"),
    ] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=2000)
    ] = None,
) -> EventSourceResponse:
    if caller is None and ticket is not None:
        caller = await realtime.redeem_ticket(ticket)
    stream = await realtime.prepare(
        name, caller, filter_raw=filter, last_event_id=last_event_id_header or last_event_id
    )
    sub = await realtime.open(stream, client.address)
    shutdown = anyio.Event()
    return EventSourceResponse(
        _framed(name, realtime.events(stream, sub, shutdown)),
        ping=realtime.heartbeat_seconds,
        shutdown_event=shutdown,
        shutdown_grace_period=1.0,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Frees the stream's slot even if the response ends before its generator starts.
        background=BackgroundTask(realtime.hub.unsubscribe, sub),
    )

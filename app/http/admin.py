"""/v1/admin: what the server is doing (metrics at a glance) and the mail outbox.

Public, admin-only API like the rest: the console at /admin uses these routes through the
SDK, and a script can do all it does.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from app.clock import Timestamp
from app.db.change_pump import PumpState
from app.db.ids import parse_object_id
from app.errors import Conflict, ErrorCode, NotFound
from app.http.deps import AdminUser, ContainerDep, LifecycleDep
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute
from app.observability.stats import collect
from app.pagination import id_cursor

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=StrictJSONRoute)

MailStatus = Literal["pending", "sent", "failed", "dropped"]
BUSIEST_ROUTES = 10


class RouteCount(BaseModel):
    route: str = Field(description="Method and route template, e.g. `GET /v1/users/me`")
    requests: int


class ChangePumpOut(BaseModel):
    """Whether webhook messages and document history are being recorded."""

    state: PumpState = Field(
        description="`running`: a process records committed changes. `stopped`: none has "
        "for longer than its lease (10 s): no process runs background jobs now "
        "(BACKGROUND_JOBS=false everywhere and no `python -m app.worker`), or the leader "
        "stalls; changes wait in the database's oplog and are recorded when one starts, "
        "as long as the oplog still holds them. `never_ran`: no process ever has"
    )
    leader: str | None = Field(description="`host:pid:…` of the process that leads or led")
    lease_until: Timestamp | None = Field(description="Until when that process holds the lead")


class WebhookQueueOut(BaseModel):
    pending: int = Field(description="Messages waiting to be sent (or retried)")
    failed: int = Field(description="Messages that gave up (redeliver them per webhook)")
    held_webhooks: int = Field(
        description="Webhooks whose endpoint stopped answering: their messages wait"
    )


class StatsOut(BaseModel):
    requests: int = Field(description="Requests handled since the server started")
    client_errors: int = Field(description="Of those, answered 4xx")
    server_errors: int = Field(description="Of those, answered 5xx")
    latency_p50_ms: float | None = Field(description="Estimated from the latency histogram")
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    in_progress: int = Field(description="Requests being handled now (this one included)")
    realtime_streams: int = Field(description="Event streams open now")
    database_errors: int
    mail: dict[MailStatus, int] = Field(description="Outbox messages by status")
    busiest: list[RouteCount] = Field(description=f"The {BUSIEST_ROUTES} busiest routes")
    change_pump: ChangePumpOut = Field(description="The recording of committed changes")
    webhooks: WebhookQueueOut = Field(description="The webhook messages' queue")


class MailMessageOut(BaseModel):
    id: str
    kind: str = Field(description="The template: verify_email, password_reset, magic_link, ...")
    to: str
    status: MailStatus
    attempts: int
    created_at: Timestamp
    due_at: Timestamp | None = Field(description="When a pending message is tried next")
    sent_at: Timestamp | None = Field(description="When it was sent, or dropped")
    last_error: str | None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> MailMessageOut:
        pending = raw["status"] == "pending"
        due: datetime | None = raw.get("due_at") if pending else None
        return cls(
            id=str(raw["_id"]),
            kind=raw["kind"],
            to=raw["to"],
            status=raw["status"],
            attempts=raw.get("attempts", 0),
            created_at=raw["created_at"],
            due_at=due,
            sent_at=raw.get("sent_at"),
            last_error=raw.get("last_error"),
        )


class MailPage(BaseModel):
    items: list[MailMessageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


@router.get(
    "/stats",
    operation_id="admin_stats",
    summary="Metrics at a glance: requests, errors, latency, streams, mail, webhooks (admin)",
    description="The numbers /metrics exposes to Prometheus, summed for people. Counts are "
    "since the server process started (all processes with PROMETHEUS_MULTIPROC_DIR). "
    "`change_pump`, `mail` and `webhooks` are read from the database: the same in "
    "every process.",
    responses=problem_responses(401, 403),
)
async def stats(_: AdminUser, lifecycle: LifecycleDep, container: ContainerDep) -> StatsOut:
    # Off the event loop: with PROMETHEUS_MULTIPROC_DIR it reads every process's file.
    found = await run_in_threadpool(collect)
    busiest = sorted(found.requests.by_route.items(), key=lambda kv: -kv[1])[:BUSIEST_ROUTES]
    pump = await container.pump.status()
    hooks = container.webhooks.repository
    pending, failed, held = await hooks.queue_counts(now=container.webhooks.clock())
    return StatsOut(
        requests=found.requests.total,
        client_errors=found.requests.client_errors,
        server_errors=found.requests.server_errors,
        latency_p50_ms=found.latency_p50_ms,
        latency_p95_ms=found.latency_p95_ms,
        latency_p99_ms=found.latency_p99_ms,
        in_progress=found.in_progress,
        realtime_streams=found.realtime_streams,
        database_errors=found.database_errors,
        mail=await lifecycle.outbox.counts(),
        busiest=[RouteCount(route=r, requests=n) for r, n in busiest],
        change_pump=ChangePumpOut(**asdict(pump)),
        webhooks=WebhookQueueOut(pending=pending, failed=failed, held_webhooks=held),
    )


def _no_message(message_id: str) -> NotFound:
    return NotFound(f"There is no mail message {message_id}", code=ErrorCode.MAIL_NOT_FOUND)


@router.get(
    "/mail",
    operation_id="admin_mail_list",
    summary="The mail outbox, newest first (admin)",
    description="Without the messages' parameters. Links are minted when a message is "
    "sent, so the outbox holds none.",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_mail(
    _: AdminUser,
    lifecycle: LifecycleDep,
    status: Annotated[MailStatus | None, Query(description="Only messages in this state")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100")] = 20,
) -> MailPage:
    before = id_cursor(cursor)
    rows = await lifecycle.outbox.page(status=status, before=before, limit=limit + 1)
    items = [MailMessageOut.of(raw) for raw in rows[:limit]]
    return MailPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


@router.post(
    "/mail/{message_id}/retry",
    operation_id="admin_mail_retry",
    summary="Send a message that gave up again, from a fresh round of attempts (admin)",
    description="Only `failed` messages (sent and dropped ones no longer hold their "
    "parameters). A link in it is minted afresh when it is sent.",
    responses=problem_responses(401, 403, 404, 409),
)
async def retry_mail(
    message_id: Annotated[str, Path(max_length=64)], _: AdminUser, lifecycle: LifecycleDep
) -> MailMessageOut:
    oid = parse_object_id(message_id)
    if oid is None:
        raise _no_message(message_id)
    outbox = lifecycle.outbox
    retried = await outbox.retry(oid, now=lifecycle.clock())
    if retried is not None:
        return MailMessageOut.of(retried)
    found = await outbox.find(oid)
    if found is None:
        raise _no_message(message_id)
    raise Conflict(
        f"The message is {found['status']}; only failed messages can be sent again",
        code=ErrorCode.MAIL_NOT_RETRYABLE,
    )

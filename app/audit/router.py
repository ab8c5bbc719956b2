"""HTTP endpoints of /v1/admin/audit: query the audit log, export it (admins)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.audit.log import Action, AuditLog, Outcome
from app.clock import Moment, Timestamp, rfc3339
from app.http.deps import AdminPerson
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute
from app.pagination import id_cursor

router = APIRouter(prefix="/v1/admin/audit", tags=["admin"], route_class=StrictJSONRoute)

ActionFilter = Annotated[Action | None, Query(description="Only this action")]
ActorFilter = Annotated[str | None, Query(max_length=64, description="Only this account's")]
OutcomeFilter = Annotated[Outcome | None, Query(description="Only successes or failures")]
Since = Annotated[Moment | None, Query(description="From this time (RFC 3339)")]
Until = Annotated[Moment | None, Query(description="Before this time (RFC 3339)")]


class Actor(BaseModel):
    id: str | None = Field(description="The account; null: nobody signed in (a failed sign-in)")
    via: str | None = Field(description="session or api_key; null when not signed in")


class AuditRecord(BaseModel):
    id: str
    at: Timestamp
    action: Action
    outcome: Outcome
    status: int | None = Field(description="The HTTP status answered")
    actor: Actor
    subject: str | None = Field(description="What it was about: an account, a collection, an email")
    address: str | None = Field(description="The client's address")
    request_id: str | None = Field(description="As in the access log and problem bodies")
    route: str | None
    details: dict[str, str]

    @classmethod
    def of(cls, raw: dict[str, Any]) -> AuditRecord:
        return cls(
            id=str(raw["_id"]),
            at=raw["at"],
            action=raw["action"],
            outcome=raw["outcome"],
            status=raw.get("status"),
            actor=Actor(**raw.get("actor", {})),
            subject=raw.get("subject"),
            address=raw.get("address"),
            request_id=raw.get("request_id"),
            route=raw.get("route"),
            details=raw.get("details") or {},
        )


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


def _log(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.container.audit
    return audit


@router.get(
    "",
    operation_id="admin_audit_list",
    summary="The audit log, newest first (admins signed in as people)",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_audit(
    request: Request,
    _: AdminPerson,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    outcome: OutcomeFilter = None,
    since: Since = None,
    until: Until = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size, 1 to 200")] = 50,
) -> AuditPage:
    before = id_cursor(cursor)
    rows = await _log(request).page(
        before=before,
        limit=limit + 1,
        action=action,
        actor=actor,
        outcome=outcome,
        since=since,
        until=until,
    )
    items = [AuditRecord.of(raw) for raw in rows[:limit]]
    return AuditPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


@router.get(
    "/export",
    operation_id="admin_audit_export",
    summary="The audit log as NDJSON, oldest first (admins signed in as people)",
    description="Every matching record, a JSON object a line (the shape of AuditRecord), "
    "streamed. The export itself is recorded (audit_exported).",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "One record a line"},
        **problem_responses(401, 403, 422),
    },
)
async def export_audit(
    request: Request,
    _: AdminPerson,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    outcome: OutcomeFilter = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    found = _log(request).stream(
        action=action, actor=actor, outcome=outcome, since=since, until=until
    )

    async def lines() -> AsyncIterator[bytes]:
        async for raw in found:
            body = AuditRecord.of(raw).model_dump(mode="json")
            yield (json.dumps(body, separators=(",", ":")) + "\n").encode()

    stamp = rfc3339(datetime.now().astimezone()).replace(":", "")
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.ndjson"'},
    )

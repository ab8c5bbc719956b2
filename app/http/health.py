"""Liveness and readiness probes."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from pymongo.errors import PyMongoError

from app.config import Settings
from app.errors import DatabaseUnavailable, ErrorCode, Unauthorized
from app.http.deps import ContainerDep, SettingsDep
from app.http.problems import problem_responses
from app.observability.metrics import render

router = APIRouter(tags=["ops"])


class Status(BaseModel):
    status: str


@router.get("/healthz", operation_id="ops_health", summary="The process is alive")
async def healthz() -> Status:
    return Status(status="ok")


@router.get(
    "/readyz",
    operation_id="ops_ready",
    summary="The database answers",
    responses=problem_responses(503),
)
async def readyz(container: ContainerDep) -> Status:
    try:
        await container.db.command("ping")
    except PyMongoError as exc:
        raise DatabaseUnavailable("The database does not answer") from exc
    return Status(status="ready")


def _check_metrics_token(request: Request, settings: Settings) -> None:
    expected = settings.metrics_token
    if expected is None:
        return  # open, as Prometheus scrapes it by default
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.get_secret_value().encode()
    ):
        raise Unauthorized(
            "Send 'Authorization: Bearer <METRICS_TOKEN>' for the metrics",
            code=ErrorCode.NOT_AUTHENTICATED,
        )


@router.get(
    "/metrics",
    operation_id="ops_metrics",
    summary="Prometheus metrics",
    description="Open unless the server sets `METRICS_TOKEN`; then it needs "
    "`Authorization: Bearer <METRICS_TOKEN>`.",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"},
        **problem_responses(401),
    },
)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    _check_metrics_token(request, settings)
    body, content_type = render()
    return Response(body, media_type=content_type)

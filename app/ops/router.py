"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from pymongo.errors import PyMongoError

from app.deps import ContainerDep
from app.errors import DatabaseUnavailable, problem_responses
from app.ops.metrics import render

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


@router.get(
    "/metrics",
    operation_id="ops_metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
async def metrics() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)

"""Errors as RFC 9457 problem+json: the handlers every failure leaves the server through,
and the OpenAPI entries that document them.

Every failure, including FastAPI's own 404/405/422, unexpected exceptions and driver
errors, is answered by `problem_response`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WTimeoutError,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from app.errors import AppError, ErrorCode, FieldError
from app.files.names import RangeNotSatisfiable
from app.observability.context import current_request_id, note_problem_code
from app.observability.metrics import CLIENT_DISCONNECTS, DATABASE_ERRORS, UNMATCHED_ROUTE

log = logging.getLogger("docstore.errors")

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error response carries it."""

    type: str = "about:blank"
    title: str
    status: int
    code: ErrorCode
    detail: str
    request_id: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


def problem_response(
    status: int,
    code: ErrorCode,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = current_request_id()
    note_problem_code(code)
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        code=code,
        detail=detail,
        request_id=request_id,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


_HTTP_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_FAILED,
    429: ErrorCode.RATE_LIMITED,
}


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        loc = [part if isinstance(part, int) else str(part) for part in err.get("loc", ())]
        out.append(FieldError(loc=loc, msg=str(err.get("msg", "")), type=str(err.get("type", ""))))
    return out


def _headers_of(exc: AppError) -> dict[str, str] | None:
    """What an error's data means in HTTP headers."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    return headers or None


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        exc.status, exc.code, exc.detail, errors=exc.errors, headers=_headers_of(exc)
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    where = ", ".join(".".join(str(p) for p in e.loc) for e in errors[:5])
    return problem_response(
        422, ErrorCode.VALIDATION_FAILED, f"The request is not valid: {where}", errors=errors
    )


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only one route's)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    )


def _without_trailing_slash(request: Request) -> str | None:
    """For `/v1/collections/`, the relative URL of the route without the slash, if one
    exists. Starlette's own redirect builds an absolute URL from the Host header, which a
    client (or a poisoned cache) controls; a path-only Location cannot point elsewhere."""
    path: str = request.scope["path"]
    stripped = path.rstrip("/")
    if path == stripped or not stripped or stripped.startswith("//"):
        return None
    scope = {**request.scope, "path": stripped}
    if not any(r.matches(scope)[0] is not Match.NONE for r in request.app.router.routes):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{stripped}?{query}" if query else stripped


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_STATUS_CODES.get(exc.status_code, ErrorCode.BAD_REQUEST)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such route"
        location = _without_trailing_slash(request)
        if location is not None:
            return Response(status_code=308, headers={"Location": location})
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
        detail = f"{request.method} is not allowed here; use {headers['Allow']}"
    return problem_response(exc.status_code, code, detail, headers=headers or None)


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    DATABASE_ERRORS.labels("unavailable").inc()
    return problem_response(
        503,
        ErrorCode.DATABASE_UNAVAILABLE,
        "The database cannot be reached right now; retry shortly",
        headers={"Retry-After": "2"},
    )


async def _query_timeout(_: Request, exc: Exception) -> JSONResponse:
    DATABASE_ERRORS.labels("timeout").inc()
    return problem_response(
        503,
        ErrorCode.QUERY_TIMEOUT,
        "The query ran past its time limit; narrow the filter or add an index",
    )


async def _duplicate_key(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DuplicateKeyError)
    details: Mapping[str, Any] = exc.details or {}
    fields = ", ".join(details.get("keyPattern", {}).keys()) or "a unique field"
    return problem_response(
        409, ErrorCode.DUPLICATE_KEY, f"Another document already has this value for {fields}"
    )


# nginx's code for "the client closed the connection": it reaches the access log and the
# request metrics, never the client (who is gone).
CLIENT_CLOSED_REQUEST = 499


async def _client_disconnect(request: Request, _: Exception) -> Response:
    """The client went away mid-body (an upload cut short): not a server error, so no
    traceback and no 500; what the route had stored so far it has already cleaned up."""
    route = getattr(request.scope.get("route"), "path", None) or UNMATCHED_ROUTE
    CLIENT_DISCONNECTS.labels(route).inc()
    log.info("client disconnected before the request body ended", extra={"route": route})
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, ErrorCode.INTERNAL_ERROR, "An unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DuplicateKeyError, _duplicate_key)
    app.add_exception_handler(ExecutionTimeout, _query_timeout)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    for exc_type in (
        ServerSelectionTimeoutError,
        AutoReconnect,
        ConnectionFailure,
        NetworkTimeout,
        WTimeoutError,
    ):
        app.add_exception_handler(exc_type, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting error statuses with the Problem schema."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }

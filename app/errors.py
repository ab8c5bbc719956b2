"""The project's one error type and its mapping to RFC 9457 problem+json.

Services raise `AppError` subclasses (or `AppError` with a code); routers never build
error responses. Every failure, including FastAPI's own 404/405/422, unexpected
exceptions and driver errors, leaves the server through `problem_response`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
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

from app.ops.context import current_request_id, note_problem_code
from app.ops.metrics import CLIENT_DISCONNECTS, DATABASE_ERRORS, UNMATCHED_ROUTE

log = logging.getLogger("docstore.errors")

PROBLEM_JSON = "application/problem+json"


class ErrorCode(StrEnum):
    """The closed set of machine-readable error codes. Clients switch on these."""

    VALIDATION_FAILED = "validation_failed"
    INVALID_FILTER = "invalid_filter"
    INVALID_SORT = "invalid_sort"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_FIELDS = "invalid_fields"
    BAD_REQUEST = "bad_request"
    NOT_AUTHENTICATED = "not_authenticated"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    INVALID_TOKEN = "invalid_token"  # a mailed verification/reset token: used, expired, unknown
    EMAIL_NOT_VERIFIED = "email_not_verified"
    API_KEY_NOT_ALLOWED = "api_key_not_allowed"
    SESSION_NOT_FOUND = "session_not_found"
    API_KEY_NOT_FOUND = "api_key_not_found"
    FORBIDDEN = "forbidden"
    REGISTRATION_DISABLED = "registration_disabled"
    NOT_FOUND = "not_found"
    USER_NOT_FOUND = "user_not_found"
    COLLECTION_NOT_FOUND = "collection_not_found"
    DOCUMENT_NOT_FOUND = "document_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    EMAIL_TAKEN = "email_taken"
    COLLECTION_EXISTS = "collection_exists"
    DUPLICATE_KEY = "duplicate_key"
    WRITE_CONFLICT = "write_conflict"
    PRECONDITION_FAILED = "precondition_failed"
    PATCH_TEST_FAILED = "patch_test_failed"  # a JSON Patch test operation did not hold
    PATCH_CONFLICT = "patch_conflict"  # a JSON Patch path does not exist in the document
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    SCHEMA_VIOLATION = "schema_violation"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    PRECONDITION_REQUIRED = "precondition_required"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    DATABASE_UNAVAILABLE = "database_unavailable"
    TRANSACTIONS_UNAVAILABLE = "transactions_unavailable"
    QUERY_TIMEOUT = "query_timeout"
    REALTIME_UNAVAILABLE = "realtime_unavailable"
    TOO_MANY_STREAMS = "too_many_streams"
    INVALID_TICKET = "invalid_ticket"
    FILE_NOT_FOUND = "file_not_found"
    TOO_MANY_FILES = "too_many_files"
    CONTENT_TYPE_MISMATCH = "content_type_mismatch"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    INVALID_LINK = "invalid_link"
    UPLOAD_TIMED_OUT = "upload_timed_out"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error response carries it."""

    type: str = "about:blank"
    title: str
    status: int
    code: ErrorCode
    detail: str
    request_id: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class AppError(Exception):
    """An expected failure with a stable code. Subclasses fix the code and status."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    status: int = 500

    def __init__(
        self,
        detail: str,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.errors = errors or []
        self.headers = headers or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its fields (not its constructor's arguments, which subclasses narrow),
        # so an error raised in a worker process (app/documents/offload.py) arrives whole.
        return (
            _rebuild,
            (type(self), self.detail, self.code, self.status, self.errors, self.headers),
        )


def _rebuild(
    cls: type[AppError],
    detail: str,
    code: ErrorCode,
    status: int,
    errors: list[FieldError],
    headers: dict[str, str],
) -> AppError:
    error = cls.__new__(cls)
    AppError.__init__(error, detail, code=code, status=status, errors=errors, headers=headers)
    return error


class BadRequest(AppError):
    code, status = ErrorCode.BAD_REQUEST, 400


class ValidationFailed(AppError):
    code, status = ErrorCode.VALIDATION_FAILED, 422


class Unauthorized(AppError):
    code, status = ErrorCode.NOT_AUTHENTICATED, 401

    def __init__(self, detail: str, *, code: ErrorCode = ErrorCode.NOT_AUTHENTICATED) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    code, status = ErrorCode.FORBIDDEN, 403


class NotFound(AppError):
    code, status = ErrorCode.NOT_FOUND, 404


class Conflict(AppError):
    code, status = ErrorCode.DUPLICATE_KEY, 409


class RateLimited(AppError):
    code, status = ErrorCode.RATE_LIMITED, 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class DatabaseUnavailable(AppError):
    code, status = ErrorCode.DATABASE_UNAVAILABLE, 503


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


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers
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

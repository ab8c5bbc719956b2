"""The outermost ASGI middleware: request id, body size limit, access log, last-resort 500.

Written as plain ASGI rather than `BaseHTTPMiddleware` so it adds no task hop and no
response buffering to every request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from fastapi import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ErrorCode
from app.http.audit import audited_action
from app.http.audit import record as record_audit
from app.http.problems import problem_response
from app.observability.context import (
    collect_audit_notes,
    collect_problem_codes,
    set_request_id,
)
from app.observability.loop_lag import REQUESTS
from app.observability.metrics import IN_PROGRESS, observe_request

access_log = logging.getLogger("docstore.access")
error_log = logging.getLogger("docstore.errors")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class PayloadTooLarge(HTTPException):
    """Raised while the body streams in. An HTTPException, because FastAPI re-raises
    those from body parsing where it would turn anything else into a bare 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over {limit} bytes")


_BODY_METHODS = {"POST", "PUT", "PATCH"}
_FILE_PATH = re.compile(r"^/v1/collections/[^/]+/documents/[^/]+/files/[^/]+$")
_NO_BODY = frozenset({204, 304})
_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def _unsupported_media_type(headers: dict[bytes, bytes], method: str) -> str | None:
    """Why a request body's media type is refused, or None when it is acceptable.

    The API speaks JSON (and forms for the OAuth2 token endpoint). FastAPI would treat
    any other body as raw bytes and answer a confusing 422; a 415 says what to fix.
    """
    if method not in _BODY_METHODS:
        return None
    has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
    if not has_body:
        return None
    media_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if media_type in _FORM_TYPES or media_type == "application/json":
        return None
    if media_type.startswith("application/") and media_type.endswith("+json"):
        return None
    shown = media_type or "no Content-Type"
    return f"Send the body as application/json, not {shown}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, file_max_bytes: int = 0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # File uploads stream raw bodies of any type; their route enforces FILE_MAX_BYTES
        # (and cleans up what it stored), so here they only get that outer bound.
        self.file_max_bytes = file_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _VALID_REQUEST_ID.match(given) else os.urandom(16).hex()
        set_request_id(request_id)
        problem_codes = collect_problem_codes()
        audit_notes = collect_audit_notes()
        started = time.perf_counter()
        status = 500
        response_started = False
        file_path = _FILE_PATH.match(scope["path"]) is not None
        is_upload = file_path and scope["method"] == "PUT"
        limit = self.file_max_bytes + 1 if is_upload else self.max_body_bytes

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = message.get("headers", [])
                if status in _NO_BODY:
                    # No body, so no media type (FastAPI adds application/json anyway).
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                message["headers"] = [
                    *headers,
                    (b"x-request-id", request_id.encode("latin-1")),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        IN_PROGRESS.inc()
        REQUESTS.began()  # the loop-lag monitor samples often while requests run
        try:
            # A file's path takes any body type (other methods there answer 405).
            refusal = None if file_path else self._refusal(headers, scope["method"])
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            # Anything that escaped FastAPI's handlers. Answer problem+json (with the
            # request id) instead of letting the server print a bare 500.
            error_log.exception("unhandled error", exc_info=exc)
            if not response_started:
                response = problem_response(
                    500, ErrorCode.INTERNAL_ERROR, "An unexpected error occurred"
                )
                await response(scope, receive, send_with_id)
        finally:
            IN_PROGRESS.dec()
            REQUESTS.ended()
            self._log(scope, status, started, problem_codes)
            action = audited_action(scope)
            if action is not None:
                await record_audit(scope, action, status, audit_notes, request_id)

    def _refusal(self, headers: dict[bytes, bytes], method: str) -> Response | None:
        """A response for requests refused before they reach the app (size, media type)."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return problem_response(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"The request body is over {self.max_body_bytes} bytes",
            )
        unsupported = _unsupported_media_type(headers, method)
        if unsupported is not None:
            return problem_response(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, unsupported)
        return None

    @staticmethod
    def _log(scope: Scope, status: int, started: float, problem_codes: list[str]) -> None:
        seconds = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", None)
        observe_request(scope["method"], route, status, seconds)
        client = scope.get("client")
        extra: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            # The socket's peer, or the forwarded client when FORWARDED_ALLOW_IPS trusts
            # the proxy (uvicorn rewrites scope["client"] then).
            "client": client[0] if client else None,
            # Set by the auth dependency through request.state.
            "user_id": scope.get("state", {}).get("user_id"),
        }
        if problem_codes:
            extra["code"] = problem_codes[-1]
        access_log.log(logging.ERROR if status >= 500 else logging.INFO, "request", extra=extra)

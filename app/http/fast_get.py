"""`GET /v1/collections/{name}/documents/{id}` without FastAPI's per-request machinery.

Reading one document by id is what apps do most, and its database call is cheap, so what
FastAPI does around it dominated its cost: route matching over every route, dependency
solving, response-model validation and generic JSON encoding (measured in `make bench`:
the API spent 4x the raw driver's CPU per GET; a bare FastAPI route, 2x). This middleware
answers exactly that request shape itself, with the same services and the same error
handlers, and hands everything else to FastAPI untouched:

- the same token extraction as `OAuth2PasswordBearer` and the same `deps.authenticate`
  as `OptionalUser` (revocation at once, disabled users, sessions);
- the same exception handlers, looked up the way Starlette's ExceptionMiddleware does;
- the same answer as the FastAPI route (`document_get.read_document`: access, envelope,
  ETag and 304), which stays registered: it
  documents the operation in OpenAPI and serves any request this path declines (an
  `If-None-Match` FastAPI would refuse as too long, a reserved id).

tests/test_documents.py runs the GET behaviour tests through both paths.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.documents.core import RESERVED_IDS
from app.documents.router import router
from app.http.deps import authenticate, bearer_token
from app.http.document_get import read_document

_PATH = re.compile(r"^/v1/collections/([^/]+)/documents/([^/]+)$")
# FastAPI's Header(max_length=1024) on the route: longer values get its 422, so decline.
_MAX_HEADER = 1024


# What the access log and metrics read from scope["route"] (its template): the route's own.
_ROUTE = next(r for r in router.routes if getattr(r, "operation_id", None) == "documents_get")


class DocumentGetFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        # A query (?expand=) is the route's: the fast path answers the plain read only.
        if match is None or match.group(2) in RESERVED_IDS or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"if-none-match" and if_none_match is None:
                if len(value) > _MAX_HEADER:
                    await self.app(scope, receive, send)
                    return
                if_none_match = value.decode("latin-1")
        scope["route"] = _ROUTE
        try:
            status, headers, body = await self._answer(
                scope, match.group(1), match.group(2), authorization, if_none_match
            )
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self,
        scope: Scope,
        name: str,
        doc_id: str,
        authorization: str | None,
        if_none_match: str | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        container = scope["app"].state.container
        caller = await authenticate(
            container.auth, bearer_token(authorization), scope.setdefault("state", {})
        )
        answer = await read_document(container.documents, name, doc_id, caller, if_none_match)
        etag = answer.etag.encode()
        if answer.status == 304:
            return 304, [(b"etag", etag)], b""
        return (
            200,
            [
                (b"content-length", str(len(answer.body)).encode()),
                (b"content-type", b"application/json"),
                (b"etag", etag),
            ],
            answer.body,
        )


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None

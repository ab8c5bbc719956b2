"""The published contract: FastAPI's schema, tidied so generated clients get it right."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.http.problems import PROBLEM_JSON
from app.realtime.router import event_schemas

_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


# FastAPI's names for form bodies (Body_<operationId>) -> what clients should read.
_RENAMED = {
    "Body_auth_token": "TokenRequest",
    "Body_auth_oauth_callback_form": "OAuthCallbackForm",
}
_HEADERS = {
    "X-Request-ID": {
        "description": "The request's id (yours if you sent a valid X-Request-ID); it is "
        "in every log line and problem of the request",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": 'The document\'s version as a strong entity tag ("3"): send it in '
        "If-Match to change exactly this version, or If-None-Match to revalidate",
        "schema": {"type": "string"},
    },
    "Location": {"description": "Where the created resource is", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    },
}
# Operations whose successful answers carry the document's ETag, and those that create.
_ETAG_OPERATIONS = {
    "documents_get",
    "documents_create",
    "documents_put",
    "documents_patch",
    "documents_files_put",
    "documents_files_get",
}
_LOCATION_OPERATIONS = {"documents_create", "documents_put", "collections_create"}


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _rename(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                "#/components/schemas/" + _RENAMED.get(v.rsplit("/", 1)[1], v.rsplit("/", 1)[1])
                if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/")
                else _rename(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rename(v) for v in node]
    return node


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Every error response is documented as what the server sends: problem+json, and
    every operation lists what any request to it can get (a bad token, 500, 503, ...).

    FastAPI documents its own 422 as `HTTPValidationError` in application/json; ours is a
    Problem. Client generators would otherwise build the wrong error types.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    settings = getattr(app.state, "settings", None)
    public_url = getattr(settings, "public_api_url", None)
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        # Relative: the server that serves this document. The live contract
        # (/v1/schema/openapi.json) names the absolute URL.
        servers=[{"url": public_url or "/"}],
    )
    for path, methods in spec.get("paths", {}).items():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                # The middleware and the body parser can refuse any body: undecodable (400),
                # too large (413), not JSON (415), invalid (422).
                for status in ("400", "413", "415", "422"):
                    responses.setdefault(status, {})
            if operation.get("security"):
                responses.setdefault("401", {})  # a token that is bad, expired or revoked
            responses.setdefault("500", {})
            if path.startswith("/v1/"):
                responses.setdefault("503", {})  # the database is unreachable or too slow
            op_id = operation.get("operationId")
            for status, response in responses.items():
                if not status.isdigit():
                    continue
                code = int(status)
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = _header("X-Request-ID")
                if code >= 400:
                    response["content"] = dict(_PROBLEM)
                    response["description"] = HTTPStatus(code).phrase
                if code in (429, 503):
                    headers["Retry-After"] = _header("Retry-After")
                if op_id in _ETAG_OPERATIONS and code in (200, 201, 206, 304):
                    headers["ETag"] = _header("ETag")
                if op_id in _LOCATION_OPERATIONS and code == 201:
                    headers["Location"] = _header("Location")
            operation["responses"] = dict(
                sorted(responses.items(), key=lambda item: (not item[0].isdigit(), item[0]))
            )
    components = spec.setdefault("components", {})
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for old, new in _RENAMED.items():
        if old in schemas:
            schemas[new] = {**schemas.pop(old), "title": new}
    schemas.update(event_schemas())
    components["schemas"] = dict(sorted(schemas.items()))
    components["headers"] = _HEADERS
    renamed: dict[str, Any] = _rename(spec)
    app.openapi_schema = renamed
    return renamed

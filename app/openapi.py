"""The published contract: FastAPI's schema, tidied so generated clients get it right."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import PROBLEM_JSON

_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """Every error response is documented as what the server sends: problem+json, and
    every operation with a body lists the refusals any body can get.

    FastAPI documents its own 422 as `HTTPValidationError` in application/json; ours is a
    Problem. Client generators would otherwise build the wrong error types.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                # The middleware and the body parser can refuse any body: undecodable (400),
                # too large (413), not JSON (415), invalid (422).
                for status in ("400", "413", "415", "422"):
                    responses.setdefault(status, {})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = dict(_PROBLEM)
                    response["description"] = HTTPStatus(int(status)).phrase
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = spec
    return spec

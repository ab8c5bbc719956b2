"""JSON as RFC 8259 defines it: Python's parser also takes NaN, Infinity and 1e400.

Such numbers cannot be stored faithfully (they come back as null) nor sent back in a
response, so request bodies and the `filter` parameter are parsed with `loads`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"{text} is out of range for a JSON number", text, 0)
    return value


def loads(text: str | bytes) -> Any:
    """Parse strict JSON; raises json.JSONDecodeError (a ValueError) otherwise."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Routes whose JSON bodies are parsed strictly (undecodable: 422 json_invalid)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler

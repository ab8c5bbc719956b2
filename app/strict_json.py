"""JSON as RFC 8259 defines it: Python's parser also takes NaN, Infinity and 1e400.

Such numbers cannot be stored faithfully (they come back as null) nor sent back in a
response, so request bodies and the `filter` parameter are parsed with `loads`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"{text} is out of range for a JSON number", text, 0)
    return value


# A \uD800-\uDFFF escape: JSON lets it through alone, UTF-8 (and so BSON) cannot hold it.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            strings: Any = (node,)
        elif isinstance(node, dict):
            strings = node.keys()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
            continue
        else:
            continue
        for string in strings:
            try:
                string.encode("utf-8")
            except UnicodeEncodeError:
                raise json.JSONDecodeError(
                    "a \\u escape names a lone UTF-16 surrogate, which is not a character",
                    string,
                    0,
                ) from None


def loads(text: str | bytes) -> Any:
    """Parse strict JSON; raises json.JSONDecodeError (a ValueError) otherwise."""
    value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    # Surrogate pairs decode to one character; a lone half survives as an unencodable
    # str that the driver would fail on (a 500). Only escapes can make one, so the walk
    # runs only when the text holds such an escape.
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if _SURROGATE_ESCAPE.search(raw):
        _refuse_lone_surrogates(value)
    return value

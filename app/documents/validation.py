"""Checks on a document's `data` before it is stored: shape, keys, depth and size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import bson

from app.errors import AppError, ErrorCode, FieldError, ValidationFailed

MAX_REPORTED = 20


class DataTooLarge(AppError):
    code, status = ErrorCode.PAYLOAD_TOO_LARGE, 413


@dataclass(frozen=True, slots=True)
class DataLimits:
    max_bytes: int = 256 * 1024
    max_depth: int = 32


def _key_problem(key: str) -> str | None:
    if key.startswith("$"):
        return "keys may not start with $"
    if "." in key:
        return "keys may not contain ."
    if "\x00" in key:
        return "keys may not contain NUL"
    return None


def _walk(
    node: Any, loc: list[str | int], depth: int, limits: DataLimits, problems: list[FieldError]
) -> None:
    if len(problems) >= MAX_REPORTED:
        return
    if depth > limits.max_depth:
        problems.append(
            FieldError(
                loc=loc, msg=f"nested deeper than {limits.max_depth} levels", type="too_deep"
            )
        )
        return
    if isinstance(node, dict):
        for key, value in node.items():
            problem = _key_problem(key)
            if problem:
                problems.append(FieldError(loc=[*loc, key], msg=problem, type="invalid_key"))
            _walk(value, [*loc, key], depth + 1, limits, problems)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, [*loc, i], depth + 1, limits, problems)
    elif isinstance(node, str) and "\x00" in node:
        problems.append(FieldError(loc=loc, msg="strings may not contain NUL", type="nul"))
    elif isinstance(node, int) and not isinstance(node, bool) and not -(2**63) <= node < 2**63:
        problems.append(
            FieldError(loc=loc, msg="integer out of the 64-bit range", type="out_of_range")
        )
    elif isinstance(node, float) and not math.isfinite(node):
        # Python's parser reads NaN, Infinity and 1e400; JSON has no such numbers and they
        # would come back as null.
        problems.append(FieldError(loc=loc, msg="numbers must be finite", type="not_finite"))


def check_data(data: object, limits: DataLimits | None = None) -> None:
    """Raise 422 validation_failed for a non-object, a `$`/`.`/NUL key, a NUL string,
    too deep nesting, an out-of-range integer or a non-finite number; 413 when its BSON
    is over the limit."""
    limits = limits or DataLimits()
    if not isinstance(data, dict):
        raise ValidationFailed(
            "A document's data must be a JSON object",
            errors=[FieldError(loc=["data"], msg="expected an object", type="dict_type")],
        )
    problems: list[FieldError] = []
    _walk(data, ["data"], 1, limits, problems)
    if problems:
        where = ", ".join(".".join(map(str, p.loc)) for p in problems[:5])
        raise ValidationFailed(f"The document's data is not storable: {where}", errors=problems)
    size = len(bson.encode({"data": data}))
    if size > limits.max_bytes:
        raise DataTooLarge(f"The document is {size} bytes; the limit is {limits.max_bytes}")

"""Update operators on a document's `data`: inc, min, max, set, unset, push, add_to_set, pull.

    {"inc": {"likes": 1}, "add_to_set": {"tags": "new"}, "set": {"stats.seen": true}}

Paths are dotted and relative to `data` (`stats.views`; a number segment addresses an
array element), checked like filter paths. The operators are applied here, in Python,
with MongoDB's semantics, to the version just read; the service then writes the result
conditioned on that version (app/documents/service.py `_change`), so the result is
validated against the collection's schema before it is stored and a concurrent write
makes the update re-read and re-apply itself: atomic per document, never lost.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from app.documents.budget import WorkBudget
from app.errors import ErrorCode, FieldError, ValidationFailed

OPERATORS = ("inc", "min", "max", "set", "unset", "push", "add_to_set", "pull")
MAX_PATH_DEPTH = 32
MAX_OPERATIONS = 200


@dataclass(frozen=True)
class Operation:
    operator: str
    path: tuple[str, ...]
    value: Any
    each: bool = False  # push/add_to_set of several values
    slice: int | None = None  # push: keep the first n (n >= 0) or last -n elements


def _problem(loc: list[str | int], msg: str, type_: str = "invalid_update") -> ValidationFailed:
    return ValidationFailed(
        f"The update is not valid: {msg}",
        errors=[FieldError(loc=["body", *loc], msg=msg, type=type_)],
    )


def _path(operator: str, raw: str) -> tuple[str, ...]:
    where: list[str | int] = [operator, raw]
    if not isinstance(raw, str) or not raw:
        raise _problem(where, "a path is a non-empty string")
    segments = tuple(raw.split("."))
    if len(segments) > MAX_PATH_DEPTH:
        raise _problem(where, f"paths are at most {MAX_PATH_DEPTH} segments deep")
    for segment in segments:
        if not segment or segment.startswith("$") or "\x00" in segment:
            raise _problem(where, f"{raw!r} is not a data path (empty segment, $ or NUL)")
    return segments


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_update(body: Any) -> list[Operation]:
    """The operations of an update body, or 422 naming what is wrong."""
    if not isinstance(body, dict) or not body:
        raise _problem([], f"send an object with one or more of {', '.join(OPERATORS)}")
    unknown = sorted(set(body) - set(OPERATORS))
    if unknown:
        raise _problem([unknown[0]], f"unknown operator {unknown[0]!r}; use {', '.join(OPERATORS)}")
    operations: list[Operation] = []
    for operator in OPERATORS:
        if operator not in body:
            continue
        spec = body[operator]
        if operator == "unset" and isinstance(spec, list):
            spec = {path: True for path in spec}
        if not isinstance(spec, dict) or not spec:
            raise _problem([operator], "an object of path: value")
        for raw, value in spec.items():
            path = _path(operator, raw)
            where: list[str | int] = [operator, raw]
            if operator == "inc" and not _is_number(value):
                raise _problem(where, "inc needs a number")
            if operator in ("min", "max") and value is None:
                raise _problem(where, f"{operator} needs a value to compare")
            each, size = False, None
            if operator in ("push", "add_to_set") and isinstance(value, dict) and "each" in value:
                extra = set(value) - ({"each", "slice"} if operator == "push" else {"each"})
                if extra:
                    raise _problem(where, f"unexpected {sorted(extra)[0]!r} next to each")
                if not isinstance(value["each"], list):
                    raise _problem([*where, "each"], "each is a list of values")
                size = value.get("slice")
                if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
                    raise _problem([*where, "slice"], "slice is an integer")
                each, value = True, value["each"]
            operations.append(Operation(operator, path, value, each=each, slice=size))
    if len(operations) > MAX_OPERATIONS:
        raise _problem([], f"at most {MAX_OPERATIONS} paths in one update")
    _refuse_conflicts(operations)
    return operations


def _refuse_conflicts(operations: list[Operation]) -> None:
    """Two operations on one path, or on a path and its parent, are ambiguous (MongoDB
    refuses them too): 422 naming both."""
    seen: dict[tuple[str, ...], Operation] = {}
    for op in operations:
        for other_path, other in seen.items():
            shorter = min(len(op.path), len(other_path))
            if op.path[:shorter] == other_path[:shorter]:
                a, b = ".".join(other_path), ".".join(op.path)
                raise _problem(
                    [op.operator, b],
                    f"{other.operator} {a} and {op.operator} {b} touch the same path",
                    "conflicting_paths",
                )
        seen[op.path] = op


class _Failed(Exception):
    def __init__(self, op: Operation, msg: str) -> None:
        super().__init__(msg)
        self.op, self.msg = op, msg


def _key(container: Any, segment: str, op: Operation) -> Any:
    if isinstance(container, list):
        if not segment.isdigit():
            raise _Failed(op, f"{segment!r} is not an index into the array there")
        return int(segment)
    return segment


def _parent(data: dict[str, Any], op: Operation, *, create: bool) -> tuple[Any, Any] | None:
    """(container, key) of the path's last segment; None when a parent is missing and
    `create` is false. Missing objects on the way are made when `create`."""
    node: Any = data
    for segment in op.path[:-1]:
        key = _key(node, segment, op)
        if isinstance(node, dict):
            if key not in node or node[key] is None:
                if not create:
                    return None
                node[key] = {}
            node = node[key]
        elif isinstance(node, list):
            if key >= len(node):
                if not create:
                    return None
                raise _Failed(op, f"index {key} is past the end of the array")
            node = node[key]
        else:
            raise _Failed(op, f"{segment!r} is inside a {_kind(node)}, not an object or array")
        if not isinstance(node, dict | list):
            if not create:
                return None
            raise _Failed(op, f"{'.'.join(op.path)} goes through a {_kind(node)}")
    return node, _key(node, op.path[-1], op)


def _kind(value: Any) -> str:
    return type(value).__name__.replace("dict", "object").replace("list", "array")


def _get(container: Any, key: Any) -> tuple[bool, Any]:
    if isinstance(container, dict):
        return (key in container, container.get(key))
    if isinstance(container, list) and isinstance(key, int) and key < len(container):
        return True, container[key]
    return False, None


def _put(container: Any, key: Any, value: Any, op: Operation) -> None:
    if isinstance(container, dict):
        container[key] = value
    elif isinstance(container, list):
        if key < len(container):
            container[key] = value
        elif key == len(container):
            container.append(value)
        else:
            raise _Failed(op, f"index {key} is past the end of the array")
    else:
        raise _Failed(op, f"cannot set a field of a {_kind(container)}")


def _comparable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (type(a) is type(b) and isinstance(a, str))


def _canonical(value: Any) -> str:
    """A key equal for JSON-equal values (1 == 1.0, objects by content; True is not 1),
    so set membership is a hash lookup, not a pairwise comparison."""

    def normal(node: Any) -> Any:
        if isinstance(node, float) and node.is_integer():
            return int(node)
        if isinstance(node, dict):
            return {key: normal(item) for key, item in node.items()}
        if isinstance(node, list):
            return [normal(item) for item in node]
        return node

    return json.dumps(normal(value), sort_keys=True)


def _apply_one(data: dict[str, Any], op: Operation, budget: WorkBudget) -> None:
    where: list[str | int] = [op.operator, ".".join(op.path)]
    budget.charge(op.value, where)
    if op.operator == "unset":
        found = _parent(data, op, create=False)
        if found is not None:
            container, key = found
            if isinstance(container, dict):
                container.pop(key, None)
            elif isinstance(container, list) and key < len(container):
                container[key] = None  # as MongoDB: an array keeps its length
        return
    if op.operator == "pull":
        found = _parent(data, op, create=False)
        if found is None:
            return
        container, key = found
        exists, current = _get(container, key)
        if not exists:
            return
        if not isinstance(current, list):
            raise _Failed(op, f"pull needs an array, found a {_kind(current)}")
        budget.charge(current, where)
        unwanted = _canonical(op.value)
        _put(container, key, [v for v in current if _canonical(v) != unwanted], op)
        return
    container, key = _parent(data, op, create=True) or (None, None)
    exists, current = _get(container, key)
    if op.operator == "set":
        _put(container, key, copy.deepcopy(op.value), op)
    elif op.operator == "inc":
        if not exists or current is None:
            _put(container, key, op.value, op)
        elif not _is_number(current):
            raise _Failed(op, f"inc needs a number there, found a {_kind(current)}")
        else:
            _put(container, key, current + op.value, op)
    elif op.operator in ("min", "max"):
        if not exists or current is None:
            _put(container, key, copy.deepcopy(op.value), op)
        elif not _comparable(current, op.value):
            raise _Failed(op, f"cannot compare a {_kind(current)} with a {_kind(op.value)}")
        elif (op.value < current) if op.operator == "min" else (op.value > current):
            _put(container, key, copy.deepcopy(op.value), op)
    else:  # push, add_to_set
        values = list(op.value) if op.each else [op.value]
        if not exists or current is None:
            current = []
        elif not isinstance(current, list):
            raise _Failed(op, f"{op.operator} needs an array, found a {_kind(current)}")
        result = list(current)
        if op.operator == "push":
            result.extend(copy.deepcopy(values))
        else:
            budget.charge(current, where)
            present = {_canonical(v) for v in result}
            for value in values:
                canonical = _canonical(value)
                if canonical not in present:
                    present.add(canonical)
                    result.append(copy.deepcopy(value))
        if op.slice is not None:
            result = result[: op.slice] if op.slice >= 0 else result[op.slice :]
        _put(container, key, result, op)


def apply_update(
    data: dict[str, Any], operations: list[Operation], max_bytes: int
) -> dict[str, Any]:
    """The new `data` (a copy), or 422 naming the operation that cannot apply; 413 once
    the values it adds or the arrays it scans pass a few times `max_bytes` (budget.py)."""
    result = copy.deepcopy(data)
    budget = WorkBudget(max_bytes)
    for op in operations:
        try:
            _apply_one(result, op, budget)
        except _Failed as failed:
            path = ".".join(failed.op.path)
            raise ValidationFailed(
                f"The update cannot apply: {failed.op.operator} {path}: {failed.msg}",
                errors=[
                    FieldError(
                        loc=["body", failed.op.operator, path], msg=failed.msg, type="update_type"
                    )
                ],
                code=ErrorCode.VALIDATION_FAILED,
            ) from None
    return result

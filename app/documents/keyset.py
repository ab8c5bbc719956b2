"""Keyset paging: "the documents after this one" in a given sort order, and cursors.

A cursor carries the sort-key values of the last document of a page. The next page is
the documents strictly after those values in the sort order (with `_id` as the final
tie-breaker), so inserts and deletes between pages never make a page skip or repeat a
document that stays put.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from app.pagination import CursorCodec, InvalidCursor

# MongoDB compares values of different types by type bracket, in this order (for the
# types JSON documents and our timestamps can hold). `$gt`/`$lt` only compare within a
# bracket, so "after" must also name the brackets that sort later.
_BRACKETS: list[tuple[str, ...]] = [
    ("null",),
    ("number",),
    ("string",),
    ("object",),
    ("array",),
    ("bool",),
    ("date",),
]


def _bracket(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, int | float):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, dict):
        return 3
    if isinstance(value, list):
        return 4
    if isinstance(value, datetime):
        return 6
    raise InvalidCursor("The cursor holds a value that cannot be compared")


def _strictly_after(path: str, value: Any, direction: int) -> dict[str, Any] | None:
    """Documents whose `path` sorts strictly after `value` (None: there are none)."""
    bracket = _bracket(value)
    if direction == 1:
        later = [t for b in _BRACKETS[bracket + 1 :] for t in b]
        if value is None:
            # Missing and null sort first; everything else comes after them.
            return {path: {"$ne": None}}
        branches: list[dict[str, Any]] = [{path: {"$gt": value}}]
        if later:
            branches.append({path: {"$type": later}})
        return branches[0] if len(branches) == 1 else {"$or": branches}
    if value is None:
        return None  # nothing sorts below null/missing
    earlier = [t for b in _BRACKETS[1:bracket] for t in b]
    branches = [{path: {"$lt": value}}, {path: None}]
    if earlier:
        branches.append({path: {"$type": earlier}})
    return {"$or": branches}


def after_clause(sort: list[tuple[str, int]], last: dict[str, Any]) -> dict[str, Any]:
    """The query for documents after `last` (sort values by stored path) in `sort` order."""
    branches: list[dict[str, Any]] = []
    for i, (path, direction) in enumerate(sort):
        if path not in last:
            raise InvalidCursor("The cursor does not match this sort; start from the first page")
        tail = _strictly_after(path, last[path], direction)
        if tail is None:
            continue
        prefix = [{p: last[p]} for p, _ in sort[:i]]
        parts = [*prefix, tail]
        branches.append(parts[0] if len(parts) == 1 else {"$and": parts})
    if not branches:
        return {"_id": {"$in": []}}  # nothing can come after
    return branches[0] if len(branches) == 1 else {"$or": branches}


def sort_values(doc: dict[str, Any], sort: list[tuple[str, int]]) -> dict[str, Any]:
    """The values of a stored document at the sort paths (None where missing)."""
    values: dict[str, Any] = {}
    for path, _ in sort:
        node: Any = doc
        for segment in path.split("."):
            node = node.get(segment) if isinstance(node, dict) else None
        values[path] = node
    return values


def _encode_value(value: Any) -> Any:
    return {"$date": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$date"}:
        try:
            return datetime.fromisoformat(value["$date"])
        except (TypeError, ValueError):
            raise InvalidCursor("The cursor is malformed; start from the first page") from None
    return value


def encode_cursor(codec: CursorCodec, values: dict[str, Any], scope: str) -> str:
    return codec.encode({k: _encode_value(v) for k, v in values.items()}, scope=scope)


def decode_cursor(codec: CursorCodec, cursor: str, scope: str) -> dict[str, Any]:
    payload = codec.decode(cursor, scope=scope)
    if not isinstance(payload, dict):
        raise InvalidCursor("The cursor is malformed; start from the first page")
    return {k: _decode_value(v) for k, v in payload.items()}


def query_scope(filter_raw: Any, sort: list[tuple[str, int]]) -> str:
    """A stable fingerprint of a query, binding cursors to the query they were made for."""
    canonical = json.dumps([filter_raw, sort], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]

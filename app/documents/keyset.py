"""Keyset paging: "the documents after this one" in a given sort order, and cursors.

A cursor carries the sort keys of the last document of a page. The next page is the
documents strictly after those keys in the sort order (with `_id` as the final
tie-breaker), so inserts and deletes between pages never make a page skip or repeat a
document that stays put.

The sort key of a document is the one MongoDB sorts it by. Values of different types
compare by type bracket (null/missing < numbers < strings < objects < arrays < booleans
< dates). A field holding an array sorts by its smallest element ascending and by its
largest element descending (one level deep: an element that is itself an array compares
as a whole), and an empty array sorts before null and missing.

A query operator on an array field matches when *any* element matches, so
`{path: {$gt: key}}` is not "sorts after key" there. "The smallest element is greater
than key" is "no element is less than or equal to key", which `$nor` expresses exactly,
because `{path: {$lte: key}}` matches the documents with such an element. Each clause
below is an indexable superset (the usual `$gt`/`$type` shape) narrowed by such a `$nor`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from app.pagination import CursorCodec, InvalidCursor


class _EmptyArray:
    def __repr__(self) -> str:
        return "EMPTY_ARRAY"


# The sort key of an empty array: below null and missing (MongoDB sorts it as `undefined`).
EMPTY_ARRAY: Any = _EmptyArray()

# Type brackets in MongoDB's comparison order, for the types JSON documents and our
# timestamps can hold, with the `$type` alias that matches each.
_EMPTY, _NULL, _NUMBER, _STRING, _OBJECT, _ARRAY, _BOOL, _DATE = range(-1, 7)
_TYPE_ALIASES = {
    _NUMBER: "number",
    _STRING: "string",
    _OBJECT: "object",
    _ARRAY: "array",
    _BOOL: "bool",
    _DATE: "date",
}

_Op = Literal["$lt", "$lte", "$eq", "$gte", "$gt"]


def _bracket(value: Any) -> int:
    if value is EMPTY_ARRAY:
        return _EMPTY
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int | float):
        return _NUMBER
    if isinstance(value, str):
        return _STRING
    if isinstance(value, dict):
        return _OBJECT
    if isinstance(value, list):
        return _ARRAY
    if isinstance(value, datetime):
        return _DATE
    raise InvalidCursor("The cursor holds a value that cannot be compared")


def _compare(a: Any, b: Any) -> int:
    """MongoDB's order of two values: -1, 0 or 1."""
    bracket_a, bracket_b = _bracket(a), _bracket(b)
    if bracket_a != bracket_b:
        return -1 if bracket_a < bracket_b else 1
    if bracket_a in (_EMPTY, _NULL):
        return 0
    if bracket_a == _OBJECT:
        return _compare_fields(list(a.items()), list(b.items()))
    if bracket_a == _ARRAY:
        return _compare_fields(list(enumerate(a)), list(enumerate(b)))
    return -1 if a < b else 1 if a > b else 0


def _compare_fields(a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]) -> int:
    """Objects (and arrays, keyed by index) compare field by field: the value's type
    bracket, then the field name, then the value; a prefix sorts first."""
    for (name_a, value_a), (name_b, value_b) in zip(a, b, strict=False):
        bracket_a, bracket_b = _bracket(value_a), _bracket(value_b)
        if bracket_a != bracket_b:
            return -1 if bracket_a < bracket_b else 1
        if name_a != name_b:
            return -1 if name_a < name_b else 1
        if result := _compare(value_a, value_b):
            return result
    return (len(a) > len(b)) - (len(a) < len(b))


def _candidates(doc: Any, segments: list[str]) -> list[Any]:
    """The values MongoDB picks a document's sort key from, for a dotted path.

    Arrays met on the way are traversed (their objects only); an array at the end
    contributes its elements, or EMPTY_ARRAY when it is empty; a path that ends early
    contributes null.
    """
    if not segments:
        if isinstance(doc, list):
            return list(doc) if doc else [EMPTY_ARRAY]
        return [doc]
    head, rest = segments[0], segments[1:]
    if isinstance(doc, dict):
        return _candidates(doc[head], rest) if head in doc else [None]
    if isinstance(doc, list) and doc:
        if head.isascii() and head.isdigit():
            return _candidates(doc[int(head)], rest) if int(head) < len(doc) else [None]
        objects = [element for element in doc if isinstance(element, dict)]
        found = [v for element in objects for v in _candidates(element, segments)]
        return found or [None]
    return [None]


def sort_values(doc: dict[str, Any], sort: list[tuple[str, int]]) -> dict[str, Any]:
    """The sort keys of a stored document, by path: what the server orders it by.

    An array's smallest element ascending, its largest descending; EMPTY_ARRAY for an
    empty array and None for a missing field.
    """
    order = functools.cmp_to_key(_compare)
    values: dict[str, Any] = {}
    for path, direction in sort:
        candidates = _candidates(doc, path.split("."))
        pick = min if direction == 1 else max
        values[path] = pick(candidates, key=order)
    return values


# -- "strictly after" as a query -----------------------------------------------------------


def _null_candidates(path: str) -> list[dict[str, Any]]:
    """Documents with a null candidate: null or missing, or an empty array on the way (not
    at the end; `data` itself is always an object)."""
    segments = path.split(".")
    on_the_way = [{".".join(segments[:i]): {"$size": 0}} for i in range(2, len(segments))]
    return [{path: None}, *on_the_way]


def _same_bracket(path: str, op: _Op, key: Any, *, exact: bool) -> list[dict[str, Any]]:
    bracket = _bracket(key)
    if bracket == _EMPTY:
        return [{path: {"$size": 0}}]
    if bracket == _NULL:
        return _null_candidates(path)
    if bracket == _ARRAY and exact:
        # `{path: {op: [..]}}` also compares the whole array; only elements count here.
        return [{path: {"$elemMatch": {op: key}}}]
    if op == "$eq" and bracket not in (_OBJECT, _ARRAY):
        return [{path: key}]
    return [{path: {op: key}}]


def _having(path: str, op: _Op, key: Any, *, exact: bool) -> list[dict[str, Any]]:
    """Clauses (any of) for the documents with a candidate that is `op` key in MongoDB's
    order, across type brackets. `exact=False` may match more documents, in shapes an
    index serves."""
    bracket = _bracket(key)
    if op in ("$lt", "$lte"):
        others = range(_EMPTY, bracket)
    elif op in ("$gt", "$gte"):
        others = range(bracket + 1, _DATE + 1)
    else:
        others = range(0)
    clauses: list[dict[str, Any]] = []
    if op in ("$lte", "$eq", "$gte") or bracket not in (_EMPTY, _NULL):
        clauses += _same_bracket(path, op, key, exact=exact)
    types: list[str] = []
    for other in others:
        if other == _EMPTY:
            if exact:
                clauses.append({path: {"$size": 0}})
            else:
                types.append("array")
        elif other == _NULL:
            clauses += _null_candidates(path)
        elif other == _ARRAY and exact:
            # `$type: "array"` matches every array; an element that is an array is wanted.
            clauses.append({path: {"$elemMatch": {"$type": "array"}}})
        else:
            types.append(_TYPE_ALIASES[other])
    types = list(dict.fromkeys(types))
    if types:
        clauses.append({path: {"$type": types[0] if len(types) == 1 else types}})
    return clauses


def _any(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _holds_scalars(path: str) -> bool:
    """Envelope fields (`_id`, `owner`, timestamps...) are written by us, never arrays."""
    return not path.startswith("data.")


def _scalar_after(path: str, key: Any, direction: int) -> dict[str, Any] | None:
    """`_strictly_after` for a field that never holds an array: `$gt`/`$lt` within the
    key's type bracket, or a bracket that sorts after it."""
    bracket = _bracket(key)
    if direction == 1:
        if key is None:
            return {path: {"$ne": None}}  # missing and null sort first
        later = [_TYPE_ALIASES[b] for b in range(bracket + 1, _DATE + 1)]
        branches: list[dict[str, Any]] = [{path: {"$gt": key}}]
        if later:
            branches.append({path: {"$type": later}})
        return _any(branches)
    if key is None:
        return None  # nothing sorts below null/missing
    earlier = [_TYPE_ALIASES[b] for b in range(_NUMBER, bracket)]
    branches = [{path: {"$lt": key}}, {path: None}]
    if earlier:
        branches.append({path: {"$type": earlier}})
    return _any(branches)


def _strictly_after(path: str, key: Any, direction: int) -> dict[str, Any] | None:
    """Documents whose sort key at `path` comes strictly after `key` (None: there are none).

    Ascending: the smallest candidate is greater than key, i.e. no candidate is less than
    or equal to it. Descending: no candidate is greater than or equal to it.
    """
    if _holds_scalars(path):
        return _scalar_after(path, key, direction)
    if direction == 1:
        wider = _having(path, "$gt", key, exact=False)
        exclude = _having(path, "$lte", key, exact=True)
    else:
        wider = _having(path, "$lt", key, exact=False)
        exclude = _having(path, "$gte", key, exact=True)
    if not wider:
        return None
    return {**_any(wider), "$nor": exclude}


def _sorts_equal(path: str, key: Any, direction: int) -> dict[str, Any]:
    """Documents whose sort key at `path` equals `key`: a candidate equals it, and none
    comes before it (ascending: none is less; descending: none is greater)."""
    if _holds_scalars(path):
        return {path: key}
    matching = _any(_having(path, "$eq", key, exact=True))
    before = _having(path, "$lt" if direction == 1 else "$gt", key, exact=True)
    return {**matching, "$nor": before} if before else matching


def after_clause(sort: list[tuple[str, int]], last: dict[str, Any]) -> dict[str, Any]:
    """The query for documents after `last` (sort keys by stored path) in `sort` order."""
    branches: list[dict[str, Any]] = []
    for i, (path, direction) in enumerate(sort):
        if path not in last:
            raise InvalidCursor("The cursor does not match this sort; start from the first page")
        tail = _strictly_after(path, last[path], direction)
        if tail is None:
            continue
        prefix = [_sorts_equal(p, last[p], d) for p, d in sort[:i]]
        parts = [*prefix, tail]
        branches.append(parts[0] if len(parts) == 1 else {"$and": parts})
    if not branches:
        return {"_id": {"$in": []}}  # nothing can come after
    return branches[0] if len(branches) == 1 else {"$or": branches}


# -- cursors -------------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if value is EMPTY_ARRAY:
        return {"$undefined": True}
    return {"$date": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    # Stored data cannot hold `$` keys, so these markers never clash with an object key.
    if value == {"$undefined": True}:
        return EMPTY_ARRAY
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

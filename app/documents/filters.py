"""The filter language: clients' JSON queries compiled to safe MongoDB queries.

A filter is a MongoDB query document over the paths clients see in responses (`id`,
`owner`, `version`, `created_at`, `updated_at`, `data.*`). Only an allow-list of
operators passes; everything else (`$where`, `$expr`, `$function`, ...) is refused with
400 `invalid_filter` naming the offending part. Size limits bound the work a query can
ask of the database. Also here: the `sort` and `fields` parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.documents.regex_safety import UnsafePattern, check_pattern
from app.errors import AppError, ErrorCode


class InvalidFilter(AppError):
    code, status = ErrorCode.INVALID_FILTER, 400


class InvalidSort(AppError):
    code, status = ErrorCode.INVALID_SORT, 400


class InvalidFields(AppError):
    code, status = ErrorCode.INVALID_FIELDS, 400


@dataclass(frozen=True, slots=True)
class FilterLimits:
    max_depth: int = 8
    max_clauses: int = 100
    max_list_length: int = 500
    max_regex_length: int = 256


COMPARISON = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
LIST_OPERATORS = frozenset({"$in", "$nin", "$all"})
LOGICAL = frozenset({"$and", "$or", "$nor"})
FIELD_OPERATORS = (
    COMPARISON
    | LIST_OPERATORS
    | frozenset({"$exists", "$not", "$elemMatch", "$size", "$regex", "$options"})
)
ALLOWED_OPERATORS = FIELD_OPERATORS | LOGICAL
ENVELOPE_PATHS = {
    "id": "_id",
    "owner": "owner",
    "team": "team",
    "version": "version",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
DATE_PATHS = frozenset({"created_at", "updated_at"})
REGEX_OPTIONS = frozenset("imsx")
MAX_SORT_KEYS = 8
# $size takes a 32-bit integer; no stored array comes near it anyway.
MAX_ARRAY_SIZE = 2**31 - 1
DEFAULT_SORT = (("created_at", 1), ("_id", 1))
MAX_FIELDS = 50
PROJECTION_ENVELOPE = {
    "_id": 1,
    "owner": 1,
    "team": 1,
    "version": 1,
    "created_at": 1,
    "updated_at": 1,
}


def _bad_segment(segment: str) -> bool:
    return not segment or segment.startswith("$") or "\x00" in segment


def storage_path(client_path: str) -> str | None:
    """The stored path for a client path, or None when it names nothing clients can see."""
    if client_path in ENVELOPE_PATHS:
        return ENVELOPE_PATHS[client_path]
    head, *rest = client_path.split(".")
    if head != "data" or any(_bad_segment(s) for s in rest):
        return None
    return client_path


def parse_timestamp(value: str) -> datetime | None:
    """An RFC 3339 date-time (with `Z` or an offset) as aware UTC, or None."""
    if "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        return None


class _Compiler:
    def __init__(self, limits: FilterLimits) -> None:
        self.limits = limits
        self.clauses = 0

    def _count(self, where: str) -> None:
        self.clauses += 1
        if self.clauses > self.limits.max_clauses:
            raise InvalidFilter(
                f"The filter has more than {self.limits.max_clauses} clauses (at {where})"
            )

    def _depth(self, depth: int, where: str) -> None:
        if depth > self.limits.max_depth:
            raise InvalidFilter(
                f"The filter nests deeper than {self.limits.max_depth} levels (at {where})"
            )

    # A query document: {path: condition, $and: [...], ...}
    def query(self, node: Any, where: str, depth: int, *, relative: bool = False) -> dict[str, Any]:
        self._depth(depth, where)
        if not isinstance(node, dict):
            raise InvalidFilter(f"Expected an object at {where or 'the top level'}")
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise InvalidFilter(f"Keys must be strings at {where}")
            self._count(f"{where}.{key}" if where else key)
            if key.startswith("$"):
                if key not in LOGICAL:
                    raise InvalidFilter(
                        f"Operator {key} at {where or 'the top level'} is not allowed "
                        f"here; allowed: {', '.join(sorted(ALLOWED_OPERATORS))}"
                    )
                out[key] = self.logical(key, value, where, depth, relative=relative)
                continue
            path = self.path(key, where, relative=relative)
            out[path] = self.condition(
                value,
                key if not where else f"{where}.{key}",
                depth + 1,
                date=not relative and key in DATE_PATHS,
                is_id=not relative and key == "id",
            )
        return out

    def path(self, key: str, where: str, *, relative: bool) -> str:
        if relative:  # inside $elemMatch: sub-paths of array elements
            if any(_bad_segment(s) for s in key.split(".")):
                raise InvalidFilter(f"Field name {key!r} at {where} is not allowed")
            return key
        stored = storage_path(key)
        if stored is None:
            raise InvalidFilter(
                f"Unknown field {key!r}: use id, owner, version, created_at, updated_at "
                "or data.<path>"
            )
        return stored

    def logical(
        self, op: str, value: Any, where: str, depth: int, *, relative: bool = False
    ) -> list[dict[str, Any]]:
        at = f"{where}.{op}" if where else op
        if not isinstance(value, list) or not value:
            raise InvalidFilter(f"{op} at {at} needs a non-empty list of filters")
        if len(value) > self.limits.max_list_length:
            raise InvalidFilter(f"{op} at {at} has more than {self.limits.max_list_length} items")
        # Inside $elemMatch, the branches name paths relative to the array element too.
        return [
            self.query(item, f"{at}[{i}]", depth + 1, relative=relative)
            for i, item in enumerate(value)
        ]

    # What a field is compared with: a literal or an operator object.
    def condition(
        self, value: Any, where: str, depth: int, *, date: bool = False, is_id: bool = False
    ) -> Any:
        self._depth(depth, where)
        if isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value):
            return self.operators(value, where, depth, date=date, is_id=is_id)
        return self.literal(value, where, depth, date=date, is_id=is_id)

    def literal(self, value: Any, where: str, depth: int, *, date: bool, is_id: bool) -> Any:
        self._depth(depth, where)
        if date and isinstance(value, str):
            parsed = parse_timestamp(value)
            if parsed is None:
                raise InvalidFilter(f"{where} needs an RFC 3339 date-time, not {value!r}")
            return parsed
        if is_id and not isinstance(value, str):
            raise InvalidFilter(f"{where}: document ids are strings")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str) or key.startswith("$") or "\x00" in key:
                    raise InvalidFilter(f"Key {key!r} at {where} is not allowed")
            return {
                k: self.literal(v, f"{where}.{k}", depth + 1, date=False, is_id=False)
                for k, v in value.items()
            }
        if isinstance(value, list):
            if len(value) > self.limits.max_list_length:
                raise InvalidFilter(
                    f"A list at {where} has more than {self.limits.max_list_length} items"
                )
            return [self.literal(v, where, depth + 1, date=False, is_id=False) for v in value]
        if isinstance(value, str) and "\x00" in value:
            raise InvalidFilter(f"A string at {where} contains NUL")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise InvalidFilter(f"A number at {where} is out of range")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidFilter(f"A number at {where} is not finite")
        return value

    def operators(
        self, node: dict[str, Any], where: str, depth: int, *, date: bool, is_id: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for op, operand in node.items():
            at = f"{where}.{op}"
            self._count(at)
            if not isinstance(op, str) or op not in FIELD_OPERATORS:
                raise InvalidFilter(
                    f"Operator {op} at {where} is not allowed; allowed: "
                    f"{', '.join(sorted(FIELD_OPERATORS))}"
                )
            if op in COMPARISON:
                out[op] = self.literal(operand, at, depth + 1, date=date, is_id=is_id)
            elif op in LIST_OPERATORS:
                if not isinstance(operand, list):
                    raise InvalidFilter(f"{op} at {where} needs a list")
                if len(operand) > self.limits.max_list_length:
                    raise InvalidFilter(
                        f"{op} at {where} has more than {self.limits.max_list_length} values"
                    )
                out[op] = [self.literal(v, at, depth + 1, date=date, is_id=is_id) for v in operand]
            elif op == "$exists":
                if not isinstance(operand, bool):
                    raise InvalidFilter(f"$exists at {where} needs true or false")
                out[op] = operand
            elif op == "$size":
                if (
                    not isinstance(operand, int)
                    or isinstance(operand, bool)
                    or not 0 <= operand <= MAX_ARRAY_SIZE
                ):
                    raise InvalidFilter(
                        f"$size at {where} needs an integer from 0 to {MAX_ARRAY_SIZE}"
                    )
                out[op] = operand
            elif op == "$regex":
                options = node.get("$options", "")
                out[op] = self.regex(operand, at, options if isinstance(options, str) else "")
            elif op == "$options":
                if "$regex" not in node:
                    raise InvalidFilter(f"$options at {where} needs $regex beside it")
                if not isinstance(operand, str) or not set(operand) <= REGEX_OPTIONS:
                    raise InvalidFilter(f"$options at {where} may only hold i, m, s and x")
                out[op] = operand
            elif op == "$not":
                if (
                    not isinstance(operand, dict)
                    or not operand
                    or not all(isinstance(k, str) and k.startswith("$") for k in operand)
                ):
                    raise InvalidFilter(f"$not at {where} needs an operator object")
                out[op] = self.operators(operand, at, depth + 1, date=date, is_id=is_id)
            else:  # $elemMatch
                if not isinstance(operand, dict) or not operand:
                    raise InvalidFilter(f"$elemMatch at {where} needs an object")
                if all(isinstance(k, str) and k.startswith("$") for k in operand):
                    out[op] = self.operators(operand, at, depth + 1, date=False, is_id=False)
                else:
                    out[op] = self.query(operand, at, depth + 1, relative=True)
        return out

    def regex(self, pattern: Any, where: str, options: str) -> str:
        if not isinstance(pattern, str):
            raise InvalidFilter(f"{where} needs a string pattern")
        if len(pattern) > self.limits.max_regex_length:
            raise InvalidFilter(
                f"The pattern at {where} is longer than {self.limits.max_regex_length} characters"
            )
        if "\x00" in pattern:
            raise InvalidFilter(f"The pattern at {where} contains NUL")
        try:
            check_pattern(pattern, options)
        except UnsafePattern as exc:
            raise InvalidFilter(f"The pattern at {where} is refused: {exc}") from None
        return pattern


def compile_filter(raw: object, limits: FilterLimits | None = None) -> dict[str, Any]:
    """Compile a client's filter (parsed JSON) into a MongoDB query over stored paths.

    Raises InvalidFilter for anything outside the language or its limits. The result
    only ever contains allow-listed operators.
    """
    if not isinstance(raw, dict):
        raise InvalidFilter("The filter must be a JSON object")
    return _Compiler(limits or FilterLimits()).query(raw, "", 1)


def compile_sort(raw: str) -> list[tuple[str, int]]:
    """`-data.score,created_at` → [("data.score", -1), ("created_at", 1), ("_id", -1|1)].

    An `_id` tie-breaker is always last, so the order is total and paging is stable.
    No sort means creation order.
    """
    keys: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")) if raw.strip() else ():
        direction = -1 if part.startswith("-") else 1
        name = part.removeprefix("-").removeprefix("+")
        stored = storage_path(name) if name else None
        if stored is None or (stored == "data" and name == "data"):
            raise InvalidSort(
                f"Cannot sort by {part!r}: use id, owner, version, created_at, updated_at "
                "or data.<path>, with - for descending"
            )
        if any(k == stored for k, _ in keys):
            raise InvalidSort(f"{name} appears twice in sort")
        keys.append((stored, direction))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidSort(f"At most {MAX_SORT_KEYS} sort keys")
    if not keys:
        # Ids are random, so the default order is creation order (id breaks ties).
        return list(DEFAULT_SORT)
    if not any(k == "_id" for k, _ in keys):
        keys.append(("_id", keys[-1][1]))
    return keys


def compile_fields(raw: str) -> dict[str, int]:
    """`data.title,data.score` → an inclusion projection that keeps the envelope."""
    paths = [p.strip() for p in raw.split(",")]
    if len(paths) > MAX_FIELDS:
        raise InvalidFields(f"At most {MAX_FIELDS} fields")
    projection = dict(PROJECTION_ENVELOPE)
    for path in paths:
        if not (path == "data" or path.startswith("data.")) or storage_path(path) is None:
            raise InvalidFields(f"Cannot project {path!r}: fields lists data.<path> entries")
        projection[path] = 1
    # A parent and its child cannot both be projected in MongoDB: keep the parent.
    for path in list(projection):
        if any(path.startswith(f"{other}.") for other in projection if other != path):
            del projection[path]
    return projection

"""Counts, sums, averages, least and greatest values per group, over readable documents.

One pipeline, built from a typed request (never from client-written stages): `$match`
(the caller's read scope and the filter language, as lists are), `$group` by fields or
date buckets, then at most AGGREGATE_MAX_GROUPS + 1 groups back. More groups than that is
422 too_many_groups (group by less, or filter first); the sort and `limit` of what comes
back happen here, on at most that many rows. The database bounds the rest: QUERY_MAX_TIME_MS
(503 query_timeout), and the group stage's memory (no spilling to disk).

Fields a field rule hides in some documents cannot be grouped or measured (403
field_forbidden), as they cannot be filtered or sorted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from pymongo.errors import OperationFailure

from app.accounts.principal import Principal
from app.clock import rfc3339
from app.documents.core import DocumentCore, limited_query
from app.documents.schemas import (
    AggregateIn,
    AggregateSort,
    BucketKey,
    CountMetric,
    FieldKey,
    FieldMetric,
)
from app.errors import AppError, ErrorCode, FieldError, Forbidden, ValidationFailed

BUCKET_FORMATS = {
    "hour": "%Y-%m-%dT%H",
    "day": "%Y-%m-%d",
    "week": "%G-W%V",
    "month": "%Y-%m",
    "year": "%Y",
}
DATE_FIELDS = ("created_at", "updated_at")
# MongoDB's "exceeded memory limit" for a group stage (ExceededMemoryLimit, and the older
# code for $group without allowDiskUse).
MEMORY_LIMIT_CODES = (146, 292, 16945)


class TooManyGroups(AppError):
    code, status = ErrorCode.TOO_MANY_GROUPS, 422


@dataclass(frozen=True)
class Group:
    key: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True)
class Aggregation:
    groups: list[Group]
    more: bool


def _key_expression(key: FieldKey | BucketKey) -> Any:
    if isinstance(key, FieldKey):
        return f"${key.field}"
    date: Any = f"${key.field}"
    if key.field not in DATE_FIELDS:
        # RFC 3339 text in the data; anything else (absent, a number) is the null group.
        date = {
            "$dateFromString": {"dateString": date, "onError": None, "onNull": None},
        }
    return {"$dateToString": {"date": date, "format": BUCKET_FORMATS[key.bucket]}}


def _accumulator(metric: CountMetric | FieldMetric) -> dict[str, Any]:
    if isinstance(metric, CountMetric):
        return {"$sum": 1}
    return {f"${metric.op}": f"${metric.field}"}


def _check_names(body: AggregateIn) -> None:
    seen: set[str] = set()
    problems = []
    for where, items in (("group_by", body.group_by), ("metrics", body.metrics)):
        for index, item in enumerate(items):
            if item.name in seen:
                problems.append(
                    FieldError(
                        loc=["body", where, index, "name"],
                        msg=f"{item.name} names another key or metric",
                        type="duplicate_name",
                    )
                )
            seen.add(item.name)
    for index, order in enumerate(body.sort):
        if order.by not in seen:
            problems.append(
                FieldError(
                    loc=["body", "sort", index, "by"],
                    msg=f"{order.by} is neither a key nor a metric of this request",
                    type="unknown_name",
                )
            )
    if problems:
        raise ValidationFailed(problems[0].msg, errors=problems)


# BSON's order across types, for sorting the groups as the database would.
def _rank(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, dict):
        return (3, str(sorted(value.items())))
    if isinstance(value, list):
        return (4, str(value))
    return (6, str(value))


def _plain(value: Any) -> Any:
    """A value as JSON carries it (dates as RFC 3339 text)."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _sort_key(by: str, group: Group) -> tuple[int, Any]:
    return _rank(group.key[by] if by in group.key else group.values[by])


class DocumentAggregation(DocumentCore):
    async def aggregate(
        self, name: str, caller: Principal | None, body: AggregateIn
    ) -> Aggregation:
        _check_names(body)
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        measured = [k.field for k in body.group_by] + [
            m.field for m in body.metrics if isinstance(m, FieldMetric)
        ]
        hidden = gate.unfilterable(measured)
        if hidden is not None:
            raise Forbidden(
                f"{hidden} is readable only in some documents: it cannot be grouped or measured",
                code=ErrorCode.FIELD_FORBIDDEN,
            )
        query = limited_query(gate, body.filter, gate.read_scope("list"))
        most = self.settings.aggregate_max_groups
        # Positional names in the pipeline (k0, m0...): a client's name is never a field
        # name there (`_id` would replace the group key).
        group: dict[str, Any] = {
            "_id": {f"k{i}": _key_expression(k) for i, k in enumerate(body.group_by)}
        }
        group.update({f"m{i}": _accumulator(m) for i, m in enumerate(body.metrics)})
        pipeline: list[dict[str, Any]] = [
            {"$match": query},
            {"$group": group},
            {"$limit": most + 1},
        ]
        try:
            rows = await self._repository(spec).aggregate(pipeline)
        except OperationFailure as exc:
            if exc.code not in MEMORY_LIMIT_CODES:
                raise
            raise TooManyGroups(
                "The groups need more memory than the database gives one query: group by "
                "fewer or smaller values, or filter first"
            ) from None
        if len(rows) > most:
            raise TooManyGroups(
                f"More than {most} groups (AGGREGATE_MAX_GROUPS): group by fewer or coarser "
                "keys, or filter first"
            )
        groups = [
            Group(
                key={k.name: _plain(row["_id"].get(f"k{i}")) for i, k in enumerate(body.group_by)},
                values={m.name: _plain(row.get(f"m{i}")) for i, m in enumerate(body.metrics)},
            )
            for row in rows
        ]
        # Without a sort: by the keys, in order (the same question, the same answer).
        orders = body.sort or [AggregateSort(by=k.name) for k in body.group_by]
        for order in reversed(orders):  # stable sorts: the first order decides last
            groups.sort(key=partial(_sort_key, order.by), reverse=order.order == "desc")
        return Aggregation(groups=groups[: body.limit], more=len(groups) > body.limit)

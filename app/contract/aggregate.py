"""The aggregate request typed per collection: fields named from its schema.

The generic `AggregateIn` takes any `data.<path>`; a collection's copy (`NotesAggregate`)
names the fields its JSON Schema declares, so a generated client offers them and refuses
others: group by any, date buckets of created_at, updated_at and `date`/`date-time`
text, sum and avg of numbers only, min and max of any. The server accepts the generic
form (a field the schema does not declare groups as null); the contract is the stricter
guide. Without declared properties, the generic form stays.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from app.documents.relations import schema_types as _types

MAX_DEPTH = 8
BUILT_IN = ["owner", "team", "created_at", "updated_at"]
DATES = ["created_at", "updated_at"]
_REF_ROOT = "#/components/schemas/"


def field_paths(data: Any) -> tuple[list[str], list[str], list[str]]:
    """(every declared path, the numeric ones, the date ones) of a collection's data
    schema, following `properties` of objects (not arrays' items, nor references)."""
    every: list[str] = []
    numbers: list[str] = []
    dates: list[str] = []

    def walk(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            return
        for name, child in sorted((node.get("properties") or {}).items()):
            if not isinstance(child, dict) or "." in name or name.startswith("$"):
                continue
            here = f"{path}.{name}"
            every.append(here)
            kinds = _types(child)
            if kinds and kinds <= {"number", "integer", "null"} and kinds - {"null"}:
                numbers.append(here)
            if child.get("format") in ("date", "date-time"):
                dates.append(here)
            walk(child, here, depth + 1)

    walk(data, "data", 1)
    return every, numbers, dates


def _with_fields(component: dict[str, Any], title: str, fields: list[str]) -> dict[str, Any]:
    typed = copy.deepcopy(component)
    typed["title"] = title
    described = typed["properties"]["field"].get("description")
    typed["properties"]["field"] = {"type": "string", "enum": fields}
    if described:
        typed["properties"]["field"]["description"] = described
    return typed


def add_aggregate(
    schemas: dict[str, Any],
    static: dict[str, Any],
    data: Any,
    component: Callable[[str], str],
) -> str | None:
    """Add `{prefix}Aggregate` and its parts to `schemas` for a collection whose data
    schema is `data`; its name, or None to keep the generic request."""
    every, numbers, dates = field_paths(data)
    if not every:
        return None
    generic = static["components"]["schemas"]
    names = {
        part: component(f"{part}")
        for part in ("FieldKey", "BucketKey", "NumberMetric", "ValueMetric", "Aggregate")
    }
    schemas[names["FieldKey"]] = _with_fields(
        generic["FieldKey"], names["FieldKey"], every + BUILT_IN
    )
    schemas[names["BucketKey"]] = _with_fields(
        generic["BucketKey"], names["BucketKey"], dates + DATES
    )
    number_metric = _with_fields(generic["FieldMetric"], names["NumberMetric"], numbers)
    number_metric["properties"]["op"] = {"type": "string", "enum": ["sum", "avg"]}
    number_metric["description"] = "The sum or average of a number field in the group."
    value_metric = _with_fields(generic["FieldMetric"], names["ValueMetric"], every + BUILT_IN)
    value_metric["properties"]["op"] = {"type": "string", "enum": ["min", "max"]}
    value_metric["description"] = "The least or greatest value of a field in the group."
    variants = [f"{_REF_ROOT}CountMetric", f"{_REF_ROOT}{names['ValueMetric']}"]
    mapping = {
        "count": f"{_REF_ROOT}CountMetric",
        "min": f"{_REF_ROOT}{names['ValueMetric']}",
        "max": f"{_REF_ROOT}{names['ValueMetric']}",
    }
    schemas[names["ValueMetric"]] = value_metric
    if numbers:
        schemas[names["NumberMetric"]] = number_metric
        variants.insert(1, f"{_REF_ROOT}{names['NumberMetric']}")
        mapping.update(sum=variants[1], avg=variants[1])
    request = copy.deepcopy(generic["AggregateIn"])
    request["title"] = names["Aggregate"]
    request.pop("examples", None)
    request["properties"]["group_by"]["items"] = {
        "anyOf": [
            {"$ref": f"{_REF_ROOT}{names['FieldKey']}"},
            {"$ref": f"{_REF_ROOT}{names['BucketKey']}"},
        ]
    }
    request["properties"]["metrics"]["items"] = {
        "oneOf": [{"$ref": ref} for ref in variants],
        "discriminator": {"propertyName": "op", "mapping": mapping},
    }
    schemas[names["Aggregate"]] = request
    return names["Aggregate"]

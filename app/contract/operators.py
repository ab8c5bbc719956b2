"""Update operators typed per collection, for the live contract.

The static contract types `inc` as "any path to a number" and every other operator as
"any path to anything". Per collection we know the fields, so `{Prefix}Update` names them:

    inc          numeric fields                       value: a number
    min, max     numeric and string fields            value: the field's own schema
    set          every named field                    value: the field's own schema
    unset        optional fields                      (a list of paths)
    push         array fields     value: an item, or {each: [items], slice?: n}
    add_to_set   array fields     value: an item, or {each: [items]}
    pull         array fields     value: an item

Paths are those the schema names through nested objects (`meta.priority`), up to
`MAX_DEPTH` deep and `MAX_PATHS` in all, a recursive type listed once; array elements are
not listed (JSON Patch addresses them). A named field of the wrong kind is typed
`{"not": {}}` (`never` in TypeScript: `inc: {title: 1}` does not compile). Whether other
paths are allowed follows the schema: when it is closed all the way down
(`additionalProperties: false` on every object walked, nothing cut off), the operator
maps are closed too; otherwise any other path is allowed with the operator's generic
value (TypeScript cannot refuse an unknown key in an inline openapi-fetch body: it infers
the body's type; annotated values and the SDK's parameters are checked).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 4  # nested objects walked for paths (`a.b.c.d`)
MAX_PATHS = 300  # paths typed per collection; a bigger schema leaves the rest generic
# Matches nothing. Not the boolean schema `false`, which openapi-python-client refuses;
# clients/generate.mjs renders it as TypeScript's `never`.
NEVER: dict[str, Any] = {"not": {}}
_NUMERIC = {"integer", "number"}
_ORDERED = _NUMERIC | {"string"}


@dataclass
class _Fields:
    """The paths a schema names, each with its schema, and whether they are all of them."""

    paths: dict[str, Any] = field(default_factory=dict)
    optional: list[str] = field(default_factory=list)
    complete: bool = True


def _types(schema: Any) -> set[str]:
    """The JSON types a (resolved) field schema allows, or empty when it does not say."""
    if not isinstance(schema, dict):
        return set()
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    if "enum" in schema and isinstance(schema["enum"], list):
        found = set()
        for value in schema["enum"]:
            if isinstance(value, bool) or value is None:
                return set()  # not one ordered kind: only `set` applies
            found.add("string" if isinstance(value, str) else "number")
        return found
    return set()


def _is(schema: Any, kinds: set[str]) -> bool:
    found = _types(schema) - {"null"}
    return bool(found) and found <= kinds


class _Resolver:
    """Follows `#/components/schemas/...` pointers inside the contract being built."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def __call__(self, schema: Any, seen: frozenset[str] = frozenset()) -> tuple[Any, bool]:
        """The schema behind `$ref`s; false as the second value on a cycle."""
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen or not ref.startswith("#/"):
                return {}, False
            seen = seen | {ref}
            node: Any = self.spec
            for token in ref[2:].split("/"):
                token = token.replace("~1", "/").replace("~0", "~")
                if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                elif isinstance(node, dict) and token in node:
                    node = node[token]
                else:
                    return {}, False
            schema = node
        return schema, True


def _walk(
    schema: Any,
    resolve: _Resolver,
    prefix: str,
    out: _Fields,
    *,
    optional: bool = False,
    depth: int = 0,
    within: frozenset[str] = frozenset(),
) -> None:
    """Collect the paths under `schema` into `out`. `within` holds the references being
    walked: a recursive type is listed once, not unrolled."""
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        within = within | {schema["$ref"]}
    resolved, ok = resolve(schema)
    if not ok or not isinstance(resolved, dict):
        out.complete = False
        return
    if resolved.get("additionalProperties") is not False or "patternProperties" in resolved:
        out.complete = False
    properties = resolved.get("properties")
    if not isinstance(properties, dict):
        return
    listed = resolved.get("required")
    required: list[Any] = listed if isinstance(listed, list) else []
    for name, sub in properties.items():
        if len(out.paths) >= MAX_PATHS:
            out.complete = False
            return
        path = f"{prefix}{name}"
        out.paths[path] = sub
        maybe = optional or name not in required
        if maybe:
            out.optional.append(path)
        target, ok = resolve(sub)
        if not (ok and isinstance(target, dict) and isinstance(target.get("properties"), dict)):
            continue
        ref = sub.get("$ref") if isinstance(sub, dict) else None
        if depth + 1 >= MAX_DEPTH or ref in within:
            out.complete = False  # deeper paths exist that are not listed
            continue
        _walk(sub, resolve, f"{path}.", out, optional=maybe, depth=depth + 1, within=within)


def _map(
    fields: _Fields,
    resolve: _Resolver,
    eligible: Any,
    value: Any,
    generic: Any,
) -> dict[str, Any]:
    """An operator's object: eligible named paths with their value schema, the others
    never, and any other path allowed only when the schema leaves room for it."""
    properties: dict[str, Any] = {}
    for path, schema in fields.paths.items():
        resolved, ok = resolve(schema)
        properties[path] = value(schema, resolved) if ok and eligible(resolved) else NEVER
    out: dict[str, Any] = {"type": "object", "minProperties": 1, "properties": properties}
    out["additionalProperties"] = False if fields.complete else generic
    return out


def _items(resolved: Any) -> Any:
    items = resolved.get("items") if isinstance(resolved, dict) else None
    return copy.deepcopy(items) if isinstance(items, dict) else {}


def _each(item: Any, *, slice_: bool) -> dict[str, Any]:
    several: dict[str, Any] = {
        "type": "object",
        "required": ["each"],
        "properties": {"each": {"type": "array", "items": item}},
        "additionalProperties": False,
    }
    if slice_:
        several["properties"]["slice"] = {"type": "integer"}
    return {"anyOf": [item, several]}


def update_schema(
    data: dict[str, Any], spec: dict[str, Any], generic: dict[str, Any]
) -> dict[str, Any]:
    """`{Prefix}Update` for a collection whose data schema is `data` (already translated
    into the contract `spec`), from the static `DocumentUpdate` (`generic`)."""
    resolve = _Resolver(spec)
    fields = _Fields()
    _walk(data, resolve, "", fields)

    def increment(_schema: Any, resolved: Any) -> Any:
        # An integer field stays an integer only when increments are integers.
        return {"type": "integer" if _is(resolved, {"integer"}) else "number"}

    def own(schema: Any, _resolved: Any) -> Any:
        return copy.deepcopy(schema)

    def numeric(resolved: Any) -> bool:
        return _is(resolved, _NUMERIC)

    def ordered(resolved: Any) -> bool:
        return _is(resolved, _ORDERED)

    def array(resolved: Any) -> bool:
        return _is(resolved, {"array"})

    operators: dict[str, Any] = {
        "inc": _map(fields, resolve, numeric, increment, {"type": "number"}),
        "min": _map(fields, resolve, ordered, own, True),
        "max": _map(fields, resolve, ordered, own, True),
        "set": _map(fields, resolve, lambda _r: True, own, True),
        "push": _map(fields, resolve, array, lambda _s, r: _each(_items(r), slice_=True), True),
        "add_to_set": _map(
            fields, resolve, array, lambda _s, r: _each(_items(r), slice_=False), True
        ),
        "pull": _map(fields, resolve, array, lambda _s, r: _items(r), True),
    }
    if fields.complete:
        unset: Any = (
            {"type": "array", "minItems": 1, "items": {"enum": fields.optional}}
            if fields.optional
            else NEVER
        )
    else:
        unset = {"type": "array", "minItems": 1, "items": {"type": "string"}}
    operators["unset"] = unset
    out = {
        key: value
        for key, value in generic.items()
        if key not in ("properties", "title", "examples")
    }
    out["properties"] = {}
    for name, schema in generic["properties"].items():
        typed = operators.get(name, NEVER)
        # An operator with nothing it could apply to in a closed schema is never.
        if (
            fields.complete
            and isinstance(typed, dict)
            and typed.get("type") == "object"
            and all(v == NEVER for v in typed["properties"].values())
        ):
            typed = NEVER
        if typed != NEVER and isinstance(schema, dict) and "description" in schema:
            typed = {**typed, "description": schema["description"]}
        out["properties"][name] = typed
    return out

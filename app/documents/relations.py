"""References between documents: declared in a schema, expanded on reads, kept on deletes.

A schema property declares a reference with `x-ref`: the id of a document of another
collection (`{"type": "string", "x-ref": "authors"}`), a list of them (`{"type": "array",
"items": {"type": "string", "x-ref": "tags"}}`), or an account (`"x-ref": "users"`).
Properties are found through `properties` of objects (not inside arrays of objects).

`x-on-delete` says what deleting a referenced document does to the documents that
reference it: `restrict` (409 reference_restricted while any does), `set_null` (the
reference becomes null, or leaves the list), `cascade` (they are deleted too). Without
it, a reference may dangle (an expanded one is then null, reason `not_found`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from app.collections.schemas import NAME_PATTERN
from app.errors import FieldError

USERS = "users"
OnDelete = Literal["restrict", "set_null", "cascade"]
ON_DELETE = ("restrict", "set_null", "cascade")
MAX_DEPTH = 8  # of properties walked to find references
_TARGET_PATTERN = re.compile(NAME_PATTERN)  # a collection's name (users is one too)


@dataclass(frozen=True)
class Ref:
    name: str  # relative to data, as in ?expand=: "author", "meta.author"
    target: str  # a collection, or "users"
    many: bool  # a list of ids
    on_delete: OnDelete | None = None

    @property
    def path(self) -> str:
        return f"data.{self.name}"


def schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema node declares (`type`, a name or a list of them)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return set()


def refs_of(schema: Any) -> dict[str, Ref]:
    """The references a collection's schema declares, by name."""
    found: dict[str, Ref] = {}

    def walk(node: Any, prefix: str, depth: int) -> None:
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            return
        for key, child in (node.get("properties") or {}).items():
            if not isinstance(child, dict) or "." in key:
                continue
            name = f"{prefix}{key}"
            items = child.get("items")
            holder, many = child, False
            if "x-ref" not in child and isinstance(items, dict) and "x-ref" in items:
                holder, many = items, True
            target = holder.get("x-ref")
            if isinstance(target, str):
                on_delete = holder.get("x-on-delete", child.get("x-on-delete"))
                found[name] = Ref(name, target, many, on_delete if on_delete in ON_DELETE else None)
            else:
                walk(child, f"{name}.", depth + 1)

    walk(schema, "", 1)
    return found


def ref_problems(schema: Any) -> list[FieldError]:
    """What is wrong with a schema's reference declarations (checked at declaration)."""
    problems: list[FieldError] = []
    understood = _reachable(schema)

    def walk(node: Any, loc: list[str | int], depth: int) -> None:
        if isinstance(node, dict):
            if ("x-ref" in node or "x-on-delete" in node) and id(node) not in understood:
                problems.append(
                    FieldError(
                        loc=loc,
                        msg="x-ref and x-on-delete are understood only on a property (under "
                        "properties, through objects) or the items of a list property",
                        type="reference",
                    )
                )
                return
            if "x-ref" in node:
                target = node["x-ref"]
                if not isinstance(target, str) or not _TARGET_PATTERN.match(target):
                    problems.append(
                        FieldError(
                            loc=[*loc, "x-ref"],
                            msg="x-ref names a collection (or users)",
                            type="reference",
                        )
                    )
                elif "string" not in schema_types(node):
                    problems.append(
                        FieldError(
                            loc=[*loc, "type"],
                            msg="a reference holds a document id: its type must be string",
                            type="reference",
                        )
                    )
            on_delete = node.get("x-on-delete")
            if on_delete is not None:
                if on_delete not in ON_DELETE:
                    problems.append(
                        FieldError(
                            loc=[*loc, "x-on-delete"],
                            msg="x-on-delete is restrict, set_null or cascade",
                            type="reference",
                        )
                    )
                elif node.get("x-ref") == USERS or (
                    isinstance(node.get("items"), dict) and node["items"].get("x-ref") == USERS
                ):
                    problems.append(
                        FieldError(
                            loc=[*loc, "x-on-delete"],
                            msg="accounts are deleted with their documents; x-on-delete is for "
                            "references to collections",
                            type="reference",
                        )
                    )
            if depth < 64:
                for key, child in node.items():
                    walk(child, [*loc, key], depth + 1)
        elif isinstance(node, list) and depth < 64:
            for index, child in enumerate(node):
                walk(child, [*loc, index], depth + 1)

    walk(schema, ["body", "schema"], 0)
    for ref in refs_of(schema).values():
        if ref.on_delete == "set_null" and not ref.many:
            holder = _property(schema, ref.name)
            if holder is not None and schema_types(holder) and "null" not in schema_types(holder):
                problems.append(
                    FieldError(
                        loc=["body", "schema", "properties", *ref.name.split(".")],
                        msg="x-on-delete set_null needs the property to allow null "
                        '("type": ["string", "null"])',
                        type="reference",
                    )
                )
    return problems


def _reachable(schema: Any) -> set[int]:
    """The schema nodes where refs_of looks for x-ref and x-on-delete (by identity)."""
    found: set[int] = set()

    def walk(node: Any, depth: int) -> None:
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            return
        for key, child in (node.get("properties") or {}).items():
            if not isinstance(child, dict) or "." in key:
                continue
            found.add(id(child))
            items = child.get("items")
            if isinstance(items, dict):
                found.add(id(items))
            if "x-ref" not in child and not (isinstance(items, dict) and "x-ref" in items):
                walk(child, depth + 1)

    walk(schema, 1)
    return found


def _property(schema: Any, name: str) -> dict[str, Any] | None:
    node = schema
    for key in name.split("."):
        if not isinstance(node, dict):
            return None
        node = (node.get("properties") or {}).get(key)
    return node if isinstance(node, dict) else None


def ids_at(data: dict[str, Any], ref: Ref) -> tuple[list[str], bool]:
    """The ids a document holds under `ref` (in order), and whether the value was usable
    (absent and null are; a number where an id should be is not)."""
    node: Any = data
    for key in ref.name.split("."):
        if not isinstance(node, dict):
            return [], True
        node = node.get(key)
    if node is None:
        return [], True
    if ref.many:
        if not isinstance(node, list):
            return [], False
        return [v for v in node if isinstance(v, str)], all(isinstance(v, str) for v in node)
    return ([node], True) if isinstance(node, str) else ([], False)


@dataclass
class ExpandNode:
    """One reference to expand, and what to expand in the documents it finds."""

    ref: Ref
    children: dict[str, ExpandNode] = field(default_factory=dict)

"""The live contract: the static OpenAPI document plus typed operations per collection.

Built from the static contract's own generic document operations (`/v1/collections/{name}/
documents...`): each is copied with the collection's name fixed, a per-collection
operationId and tag, and its document schemas replaced by the collection's. So the live
contract cannot drift from the static one: change a route and both change.

Per collection `notes` (names made safe and distinct, see `_Names`):
    NotesData       the collection's JSON Schema (refs re-rooted, $defs hoisted), or an
                    open object when it has none
    NotesDocument   DocumentOut with `data: NotesData` (or NotesReadable: NotesData with
                    the fields a field rule may hide no longer required)
    NotesPage       DocumentPage of NotesDocument
    NotesPatch      NotesData with every property optional and nullable (merge patch)
    NotesBulkCreate BulkCreate of NotesData
    NotesUpdate     update operators typed by the fields (app/contract/operators.py)
    NotesBulkUpdate BulkUpdateIn with a NotesUpdate
    Notes<Def>      each of the schema's $defs
operationIds notes_list, notes_get, notes_create, notes_replace, notes_patch,
notes_delete, notes_bulk, notes_count, notes_shares_list, ... (see _SUFFIXES).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import partial
from typing import Any

from app.collections.models import CollectionSpec
from app.contract.aggregate import add_aggregate
from app.contract.operators import update_schema

DOCUMENTS_PREFIX = "/v1/collections/{name}/documents"
EVENTS_PATH = "/v1/collections/{name}/events"
# Generic operation -> the suffix of the collection's operationId.
_SUFFIXES = {
    "documents_list": "list",
    "documents_get": "get",
    "documents_create": "create",
    "documents_put": "replace",
    "documents_patch": "patch",
    "documents_delete": "delete",
    "documents_bulk_create": "bulk",
    "documents_count": "count",
    "documents_aggregate": "aggregate",
    "documents_update": "update",
    "documents_bulk_update": "bulk_update",
    "documents_bulk_delete": "bulk_delete",
    "documents_events": "events",
    "documents_files_list": "files_list",
    "documents_files_put": "files_put",
    "documents_files_get": "files_get",
    "documents_files_delete": "files_delete",
    "documents_files_link": "files_link",
    "documents_shares_list": "shares_list",
    "documents_shares_add": "shares_add",
    "documents_shares_remove": "shares_remove",
    "documents_versions": "versions",
    "documents_version": "version",
    "documents_restore_version": "restore_version",
}
_REF_ROOT = "#/components/schemas/"
_DEF_KEYWORDS = ("$defs", "definitions")
# Root keywords that would change how references resolve once the schema is a component.
_DROPPED_ROOT = ("$schema", "$id", "$anchor", "$dynamicAnchor", "$vocabulary")


def pascal(text: str) -> str:
    """An identifier-safe PascalCase form: `my_notes` -> `MyNotes`, `über-x` -> `BerX`."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", text) if p]
    name = "".join(p[0].upper() + p[1:] for p in parts)
    if not name or name[0].isdigit():
        name = "X" + name
    return name


class _Names:
    """Hands out component names, operationId prefixes and tags that are distinct from
    each other and from the static contract's, compared case-insensitively (generators
    fold case for file and module names)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.components = {n.lower() for n in spec.get("components", {}).get("schemas", {})}
        self.operations = {
            op["operationId"].lower()
            for methods in spec.get("paths", {}).values()
            for op in methods.values()
            if isinstance(op, dict) and "operationId" in op
        }
        self.tags = {t["name"].lower() for t in spec.get("tags", [])} | {
            tag.lower()
            for methods in spec.get("paths", {}).values()
            for op in methods.values()
            if isinstance(op, dict)
            for tag in op.get("tags", [])
        }

    def prefix(self, collection: str, suffixes: Iterable[str]) -> str:
        """A component-name prefix (`Notes`) free for every suffix given."""
        base, n = pascal(collection), 1
        candidate = base
        while any(f"{candidate}{s}".lower() in self.components for s in suffixes):
            n += 1
            candidate = f"{base}{n}"
        for s in suffixes:
            self.components.add(f"{candidate}{s}".lower())
        return candidate

    def component(self, wanted: str) -> str:
        name, n = wanted, 1
        while name.lower() in self.components:
            n += 1
            name = f"{wanted}{n}"
        self.components.add(name.lower())
        return name

    def operation_prefix(self, collection: str) -> str:
        candidate, n = collection, 1
        while any(f"{candidate}_{s}" in self.operations for s in _SUFFIXES.values()):
            n += 1
            candidate = f"{collection}{n}"
        self.operations.update(f"{candidate}_{s}" for s in _SUFFIXES.values())
        return candidate

    def tag(self, collection: str) -> str:
        candidate = collection
        if candidate.lower() in self.tags:
            candidate = f"{collection} collection"
        self.tags.add(candidate.lower())
        return candidate


def _walk_refs(node: Any, rewrite: Any) -> Any:
    """A copy of `node` with every `$ref` string passed through `rewrite`."""
    if isinstance(node, dict):
        return {
            k: (rewrite(v) if k == "$ref" and isinstance(v, str) else _walk_refs(v, rewrite))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_walk_refs(v, rewrite) for v in node]
    return node


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def translate_schema(
    schema: dict[str, Any] | None, prefix: str, names: _Names
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The collection's JSON Schema as `{prefix}Data` plus its hoisted definitions.

    JSON Schema resolves `#...` against the schema itself; in OpenAPI it resolves against
    the whole document. So `#/$defs/x` becomes a component of its own and any other
    local pointer is re-rooted under `#/components/schemas/{prefix}Data`.
    """
    data_name = f"{prefix}Data"
    if schema is None:
        return {"type": "object", "additionalProperties": True}, {}
    root = copy.deepcopy(schema)
    for keyword in _DROPPED_ROOT:
        root.pop(keyword, None)
    defs: dict[str, str] = {}  # "$defs/name" -> component name
    hoisted_raw: dict[str, Any] = {}
    for keyword in _DEF_KEYWORDS:
        for def_name, def_schema in (root.pop(keyword, None) or {}).items():
            component = names.component(f"{prefix}{pascal(def_name)}")
            defs[f"{keyword}/{def_name}"] = component
            hoisted_raw[component] = def_schema

    def rewrite(ref: str) -> str:
        if not ref.startswith("#"):
            return ref  # refused at declaration (local references only)
        pointer = ref[1:]
        tokens = pointer.split("/")[1:] if pointer.startswith("/") else []
        if len(tokens) >= 2 and tokens[0] in _DEF_KEYWORDS:
            component = defs.get(f"{tokens[0]}/{_unescape(tokens[1])}")
            if component is not None:
                rest = "/".join(tokens[2:])
                return f"{_REF_ROOT}{component}" + (f"/{rest}" if rest else "")
        return f"{_REF_ROOT}{data_name}{pointer}"

    translated = open_explicitly(_walk_refs(root, rewrite))
    hoisted = {name: open_explicitly(_walk_refs(s, rewrite)) for name, s in hoisted_raw.items()}
    return translated, hoisted


_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
_SCHEMA_ONE = ("additionalProperties", "items", "additionalItems", "contains", "propertyNames")
_SCHEMA_LISTS = ("prefixItems", "items")


def open_explicitly(schema: Any) -> Any:
    """A copy of `schema` where every object that allows other properties says so.

    JSON Schema leaves an object open unless `additionalProperties: false`; TypeScript
    generators read a missing keyword as "closed". Writing `additionalProperties: true`
    changes nothing a validator decides, and gives the open objects an index signature,
    so `additionalProperties: false` is what tells the two apart in the generated types.
    Compositions (`allOf`...) are left alone: there `true` would count as evaluating
    every property for a parent's `unevaluatedProperties`.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for keyword in _SCHEMA_MAPS:
        if isinstance(out.get(keyword), dict):
            out[keyword] = {k: open_explicitly(v) for k, v in out[keyword].items()}
    for keyword in _SCHEMA_ONE:
        if isinstance(out.get(keyword), dict):
            out[keyword] = open_explicitly(out[keyword])
    for keyword in _SCHEMA_LISTS:
        if isinstance(out.get(keyword), list):
            out[keyword] = [open_explicitly(v) for v in out[keyword]]
    kind = out.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    if (
        (is_object or isinstance(out.get("properties"), dict))
        and not {"additionalProperties", "patternProperties", "unevaluatedProperties"} & set(out)
        and "$ref" not in out
    ):
        out["additionalProperties"] = True
    return out


def _nullable(schema: Any) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def patch_schema(data: dict[str, Any]) -> dict[str, Any]:
    """A merge-patch body for `data`: every property optional and nullable (null
    removes it), nested objects likewise, since a patch merges into them."""
    properties = data.get("properties")
    if not isinstance(properties, dict):
        return {"type": "object", "additionalProperties": True}
    out: dict[str, Any] = {
        "type": "object",
        "properties": {
            key: _nullable(
                patch_schema(value)
                if isinstance(value, dict) and isinstance(value.get("properties"), dict)
                else value
            )
            for key, value in properties.items()
        },
    }
    if "additionalProperties" in data:
        extra = data["additionalProperties"]
        out["additionalProperties"] = _nullable(extra) if isinstance(extra, dict) else extra
    return out


def readable_schema(data: dict[str, Any], hidden: list[str]) -> dict[str, Any] | None:
    """`data` as some callers receive it: the fields a read rule may hide (`data.<path>`)
    no longer required, where the path runs through inline `properties`. None when that
    changes nothing (the document type keeps the collection's own schema)."""
    out = copy.deepcopy(data)
    changed = False
    for path in hidden:
        *parents, last = path.removeprefix("data.").split(".")
        node: Any = out
        for segment in parents:
            properties = node.get("properties") if isinstance(node, dict) else None
            node = properties.get(segment) if isinstance(properties, dict) else None
        required = node.get("required") if isinstance(node, dict) else None
        if isinstance(required, list) and last in required:
            node["required"] = [r for r in required if r != last]
            if not node["required"]:
                del node["required"]
            changed = True
    return out if changed else None


def _replace_refs(node: Any, replacements: dict[str, str]) -> Any:
    return _walk_refs(node, lambda ref: replacements.get(ref, ref))


def _part(names: _Names, prefix: str, part: str) -> str:
    return names.component(f"{prefix}{part}")


def add_collections(
    static: dict[str, Any], specs: list[CollectionSpec], server_url: str
) -> dict[str, Any]:
    """The live contract for these collections (those the caller may read)."""
    spec = copy.deepcopy(static)
    spec["servers"] = [{"url": server_url, "description": "This server"}]
    names = _Names(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    generic = {
        path: methods
        for path, methods in static["paths"].items()
        if path.startswith(DOCUMENTS_PREFIX) or path == EVENTS_PATH
    }
    tags = spec.setdefault("tags", [])
    for collection in sorted(specs, key=lambda s: s.id):
        prefix = names.prefix(collection.id, ("Data", "Document", "Page", "Patch", "BulkCreate"))
        op_prefix = names.operation_prefix(collection.id)
        tag = names.tag(collection.id)
        tags.append(
            {
                "name": tag,
                "description": collection.description
                or f"Documents of the {collection.id} collection",
            }
        )
        data, hoisted = translate_schema(collection.json_schema, prefix, names)
        data["title"] = f"{prefix}Data"  # generators name the type after it
        schemas[f"{prefix}Data"] = data
        schemas.update(hoisted)
        document = copy.deepcopy(static["components"]["schemas"]["DocumentOut"])
        document["title"] = f"{prefix}Document"
        document["properties"]["data"] = {"$ref": f"{_REF_ROOT}{prefix}Data"}
        # Field rules may leave fields out of what a caller receives: optional there,
        # still required in what they send.
        hidden = [f.path for f in collection.access.fields if f.read is not None]
        readable = readable_schema(data, hidden)
        if readable is not None:
            readable_name = names.component(f"{prefix}Readable")
            readable["title"] = readable_name
            schemas[readable_name] = readable
            document["properties"]["data"] = {"$ref": f"{_REF_ROOT}{readable_name}"}
        schemas[f"{prefix}Document"] = document
        page = copy.deepcopy(static["components"]["schemas"]["DocumentPage"])
        page["title"] = f"{prefix}Page"
        page["properties"]["items"]["items"] = {"$ref": f"{_REF_ROOT}{prefix}Document"}
        schemas[f"{prefix}Page"] = page
        patch = patch_schema(data)
        patch["title"] = f"{prefix}Patch"
        schemas[f"{prefix}Patch"] = patch
        bulk = copy.deepcopy(static["components"]["schemas"]["BulkCreate"])
        bulk["title"] = f"{prefix}BulkCreate"
        bulk["properties"]["documents"]["items"] = {"$ref": f"{_REF_ROOT}{prefix}Data"}
        schemas[f"{prefix}BulkCreate"] = bulk
        update_name = names.component(f"{prefix}Update")
        schemas[update_name] = {
            **update_schema(data, spec, static["components"]["schemas"]["DocumentUpdate"]),
            "title": update_name,
        }
        bulk_update_name = names.component(f"{prefix}BulkUpdate")
        bulk_update = copy.deepcopy(static["components"]["schemas"]["BulkUpdateIn"])
        bulk_update["title"] = bulk_update_name
        bulk_update["properties"]["update"] = {"$ref": f"{_REF_ROOT}{update_name}"}
        bulk_update.pop("examples", None)
        schemas[bulk_update_name] = bulk_update
        aggregate_name = add_aggregate(schemas, static, data, partial(_part, names, prefix))
        replacements = {
            f"{_REF_ROOT}DocumentUpdate": f"{_REF_ROOT}{update_name}",
            f"{_REF_ROOT}BulkUpdateIn": f"{_REF_ROOT}{bulk_update_name}",
            f"{_REF_ROOT}DocumentOut": f"{_REF_ROOT}{prefix}Document",
            f"{_REF_ROOT}DocumentPage": f"{_REF_ROOT}{prefix}Page",
            f"{_REF_ROOT}BulkCreate": f"{_REF_ROOT}{prefix}BulkCreate",
        }
        if aggregate_name is not None:
            replacements[f"{_REF_ROOT}AggregateIn"] = f"{_REF_ROOT}{aggregate_name}"
        for path, methods in generic.items():
            concrete = path.replace("{name}", collection.id, 1)
            target = spec["paths"].setdefault(concrete, {})
            for method, operation in methods.items():
                if not isinstance(operation, dict) or operation.get("operationId") not in _SUFFIXES:
                    target[method] = copy.deepcopy(operation)
                    continue
                op = _replace_refs(copy.deepcopy(operation), replacements)
                op["operationId"] = f"{op_prefix}_{_SUFFIXES[operation['operationId']]}"
                op["tags"] = [tag]
                op["parameters"] = [
                    p
                    for p in op.get("parameters", [])
                    if not (p.get("in") == "path" and p.get("name") == "name")
                ]
                body = op.get("requestBody", {}).get("content", {})
                if "application/json" in body and op["operationId"].endswith(
                    ("_create", "_replace")
                ):
                    body["application/json"]["schema"] = {"$ref": f"{_REF_ROOT}{prefix}Data"}
                if "application/merge-patch+json" in body:
                    body["application/merge-patch+json"]["schema"] = {
                        "$ref": f"{_REF_ROOT}{prefix}Patch"
                    }
                target[method] = op
    return spec

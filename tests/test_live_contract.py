"""The live contract (GET /v1/schema/openapi.json): typed per collection, valid OpenAPI 3.1."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.contract.live import pascal, patch_schema
from app.contract.operators import MAX_PATHS, update_schema
from scripts.openapi import current_contract
from tests.support.accounts import Account
from tests.support.problems import assert_problem
from tests.support.schemas import NOTES_SCHEMA, TASKS_SCHEMA

# Nested objects, arrays of objects, enums, $defs/$ref (also recursive), required, formats.


async def declare(client: httpx.AsyncClient, admin: Account, body: dict[str, Any]) -> None:
    response = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def validator_for(spec: dict[str, Any], component: str) -> Draft202012Validator:
    """Validate data against a component as a client's validator would, refs and all."""
    resource: Resource[Any] = DRAFT202012.create_resource(spec)
    registry: Registry[Any] = Registry().with_resource("urn:contract", resource)
    schema = {"$ref": f"urn:contract#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=registry)


@pytest.fixture
async def declared(client: httpx.AsyncClient, admin: Account) -> None:
    await declare(client, admin, {"name": "tasks", "schema": TASKS_SCHEMA})
    await declare(
        client,
        admin,
        {"name": "notes", "schema": NOTES_SCHEMA, "access": {"read": "public", "write": "owner"}},
    )
    # Awkward names: a keyword, a clash with a static schema's names, two that
    # PascalCase to the same identifier, no schema at all.
    for name in ("class", "document", "notes_1", "notes1", "documents"):
        await declare(client, admin, {"name": name})


async def test_the_live_contract_types_every_readable_collection(
    client: httpx.AsyncClient, user: Account, declared: None
) -> None:
    response = await client.get("/v1/schema/openapi.json", headers=user.headers)
    assert response.status_code == 200
    spec = response.json()
    validate(spec)  # OpenAPI 3.1, by openapi-spec-validator
    assert spec["servers"] == [{"url": "http://docstore.test", "description": "This server"}]

    ops = {
        op["operationId"]: (method, path)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }
    for suffix in ("list", "get", "create", "replace", "patch", "delete", "bulk", "count"):
        assert f"tasks_{suffix}" in ops
        assert f"notes_{suffix}" in ops
    assert ops["tasks_get"] == ("get", "/v1/collections/tasks/documents/{doc_id}")
    assert ops["tasks_patch"][0] == "patch"
    get = spec["paths"]["/v1/collections/tasks/documents/{doc_id}"]["get"]
    assert [p["name"] for p in get["parameters"] if p["in"] == "path"] == ["doc_id"]
    assert get["tags"] == ["tasks"]
    ok = get["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TasksDocument"
    }
    assert "ETag" in ok["headers"]
    # The generic operations stay, and every operationId is distinct.
    assert "documents_get" in ops
    assert len(ops) == sum(len(m) for m in spec["paths"].values())

    schemas = spec["components"]["schemas"]
    data = schemas["TasksData"]
    assert data["required"] == ["title", "status"]
    assert data["properties"]["status"] == {"enum": ["todo", "doing", "done"]}
    assert data["properties"]["due"]["format"] == "date-time"
    assert data["properties"]["assignee"] == {"$ref": "#/components/schemas/TasksPerson"}
    assert schemas["TasksSubTask"]["properties"]["next"] == {
        "$ref": "#/components/schemas/TasksSubTask"
    }
    assert "$defs" not in data and "$schema" not in data
    assert schemas["TasksDocument"]["properties"]["data"] == {
        "$ref": "#/components/schemas/TasksData"
    }
    assert schemas["TasksPage"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/TasksDocument"
    }
    assert "required" not in schemas["TasksPatch"]
    assert schemas["NotesData"]["properties"]["same_as_title"] == {
        "$ref": "#/components/schemas/NotesData/properties/title"
    }
    # Every reference resolves inside the document.
    for ref in refs(spec):
        resolve(spec, ref)

    # The typed schemas accept what the server accepts and refuse what it refuses.
    good = {"title": "Ship", "status": "todo", "assignee": {"name": "Ada"}, "subtask": {}}
    assert validator_for(spec, "TasksData").is_valid(good)
    assert not validator_for(spec, "TasksData").is_valid({**good, "status": "lost"})
    assert validator_for(spec, "TasksPatch").is_valid({"status": None, "meta": {"priority": 2}})
    assert not validator_for(spec, "TasksPatch").is_valid({"status": "lost"})

    # Open objects say so (so generated types give them an index signature); closed
    # ones stay closed, and the typed update operators follow the fields.
    assert data["additionalProperties"] is True
    assert schemas["NotesData"]["additionalProperties"] is False
    assert validator_for(spec, "TasksData").is_valid({**good, "colour": "red"})
    tasks_update, notes_update = (
        validator_for(spec, "TasksUpdate"),
        validator_for(spec, "NotesUpdate"),
    )
    assert tasks_update.is_valid(
        {"inc": {"meta.priority": 1}, "push": {"checklist": {"text": "a"}}}
    )
    assert tasks_update.is_valid({"inc": {"unnamed": 1.5}})  # tasks is open
    assert not tasks_update.is_valid({"inc": {"title": 1}})
    assert not tasks_update.is_valid({"set": {"status": "lost"}})
    assert not tasks_update.is_valid({"add_to_set": {"status": "todo"}})
    assert notes_update.is_valid({"add_to_set": {"tags": {"each": ["a", "b"]}}, "unset": ["tags"]})
    assert not notes_update.is_valid({"inc": {"likes": 1}})  # notes is closed, no numbers
    assert not notes_update.is_valid({"set": {"colour": "red"}})
    assert not notes_update.is_valid({"unset": ["title"]})  # required
    update = spec["paths"]["/v1/collections/notes/documents/{doc_id}/update"]["post"]
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NotesUpdate"
    }
    bulk = spec["paths"]["/v1/collections/notes/documents/bulk-update"]["post"]
    bulk_schema = resolve(
        spec, bulk["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert bulk_schema["properties"]["update"] == {"$ref": "#/components/schemas/NotesUpdate"}

    # Awkward names still give distinct, safe identifiers.
    for name in ("ClassData", "Document2Data", "Notes1Data", "Notes12Data"):
        assert name in schemas, sorted(schemas)
    assert schemas["DocumentPage"]["title"] == "DocumentPage"  # the static one is untouched
    assert "Document2Page" in schemas
    assert schemas["ClassData"] == {
        "type": "object",
        "additionalProperties": True,
        "title": "ClassData",
    }
    assert "documents2_list" in ops  # "documents_list" is the generic operation's
    assert "class_list" in ops


async def test_anonymous_callers_see_public_collections_only(
    client: httpx.AsyncClient, declared: None
) -> None:
    spec = (await client.get("/v1/schema/openapi.json")).json()
    validate(spec)
    assert "NotesData" in spec["components"]["schemas"]
    assert "TasksData" not in spec["components"]["schemas"]
    assert "/v1/collections/tasks/documents" not in spec["paths"]


async def test_fields_a_rule_may_hide_are_optional_in_documents_but_not_in_bodies(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    schema = {
        "type": "object",
        "required": ["title", "internal_notes"],
        "properties": {"title": {"type": "string"}, "internal_notes": {"type": "string"}},
    }
    managers = '@team.role in ["owner", "admin"]'
    access = {
        "read": "authenticated",
        "fields": [{"path": "data.internal_notes", "read": managers}],
    }
    await declare(client, admin, {"name": "pages", "schema": schema, "access": access})
    spec = (await client.get("/v1/schema/openapi.json", headers=user.headers)).json()
    validate(spec)
    schemas = spec["components"]["schemas"]
    assert schemas["PagesDocument"]["properties"]["data"] == {
        "$ref": "#/components/schemas/PagesReadable"
    }
    assert schemas["PagesReadable"]["required"] == ["title"]
    assert schemas["PagesData"]["required"] == ["title", "internal_notes"]  # create bodies


async def test_the_etag_follows_the_declarations(
    client: httpx.AsyncClient, user: Account, admin: Account, declared: None
) -> None:
    first = await client.get("/v1/schema/openapi.json", headers=user.headers)
    etag = first.headers["etag"]
    again = await client.get(
        "/v1/schema/openapi.json", headers={**user.headers, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    changed = await client.patch(
        "/v1/collections/tasks", json={"description": "Things to do"}, headers=admin.headers
    )
    assert changed.status_code == 200
    after = await client.get(
        "/v1/schema/openapi.json", headers={**user.headers, "If-None-Match": etag}
    )
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    tags = {t["name"]: t.get("description") for t in after.json()["tags"]}
    assert tags["tasks"] == "Things to do"


async def test_a_bad_token_is_refused_not_downgraded_to_anonymous(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/v1/schema/openapi.json", headers={"Authorization": "Bearer not-a-token"}
    )
    assert_problem(response, 401, "token_invalid")


def test_the_static_contract_is_valid_and_documents_headers_and_errors() -> None:
    spec = current_contract()
    validate(spec)
    assert spec["servers"] == [{"url": "/"}]
    schemas = spec["components"]["schemas"]
    assert "TokenRequest" in schemas
    assert not [name for name in schemas if name.startswith("Body_")]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            for response in op["responses"].values():
                assert "X-Request-ID" in response["headers"], where
            assert "500" in op["responses"], where
            if path.startswith("/v1/"):
                assert "503" in op["responses"], where
                assert "Retry-After" in op["responses"]["503"]["headers"], where
            if op.get("security"):
                assert "401" in op["responses"], where
    create = spec["paths"]["/v1/collections/{name}/documents"]["post"]["responses"]["201"]
    assert {"ETag", "Location"} <= set(create["headers"])
    login = spec["paths"]["/v1/auth/login"]["post"]["responses"]["429"]
    assert "Retry-After" in login["headers"]


def test_names_and_patches() -> None:
    assert pascal("my_notes") == "MyNotes"
    assert pascal("über-x") == "BerX"
    assert pascal("2x") == "X2x"
    assert pascal("___") == "X"
    patch = patch_schema(
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}
    )
    assert patch == {
        "type": "object",
        "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    }


def test_typed_operators_stay_small_for_recursive_schemas() -> None:
    # Two types that name each other 30 times would unroll into 30^4 paths; the walk lists
    # a recursive type once and at most MAX_PATHS paths, leaving the rest generic.
    wide = {f"f{i}": {"$ref": "#/components/schemas/B"} for i in range(30)}
    back = {f"g{i}": {"$ref": "#/components/schemas/A"} for i in range(30)}
    spec: dict[str, Any] = {
        "components": {
            "schemas": {
                "A": {"type": "object", "properties": wide, "additionalProperties": False},
                "B": {"type": "object", "properties": back, "additionalProperties": False},
            }
        }
    }
    generic = current_contract()["components"]["schemas"]["DocumentUpdate"]
    update = update_schema({"$ref": "#/components/schemas/A"}, spec, generic)
    paths = update["properties"]["set"]["properties"]
    assert len(paths) == MAX_PATHS
    assert "f0.g0" in paths and "f0.g0.f0" not in paths  # A is not unrolled inside A
    assert update["properties"]["set"]["additionalProperties"] is True  # cut off: open


async def test_aggregations_are_typed_by_the_collections_fields(
    client: httpx.AsyncClient, user: Account, declared: None
) -> None:
    spec = (await client.get("/v1/schema/openapi.json", headers=user.headers)).json()
    operation = spec["paths"]["/v1/collections/tasks/documents/aggregate"]["post"]
    assert operation["operationId"] == "tasks_aggregate"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/TasksAggregate"}
    check = validator_for(spec, "TasksAggregate")

    def valid(request: dict[str, Any]) -> bool:
        return bool(check.is_valid(request))

    count = {"name": "n", "op": "count"}
    assert valid(
        {
            "group_by": [
                {"name": "status", "field": "data.status"},
                {"name": "week", "field": "data.due", "bucket": "week"},
            ],
            "metrics": [count, {"name": "p", "op": "avg", "field": "data.meta.priority"}],
        }
    )
    assert valid({"metrics": [{"name": "first", "op": "min", "field": "data.title"}]})
    assert not valid({"metrics": [{"name": "s", "op": "sum", "field": "data.title"}]})
    assert not valid({"metrics": [{"name": "s", "op": "max", "field": "data.nothing"}]})
    assert not valid(
        {"group_by": [{"name": "d", "field": "data.title", "bucket": "day"}], "metrics": [count]}
    )
    # A collection without a schema keeps the generic request.
    untyped = spec["paths"]["/v1/collections/class/documents/aggregate"]["post"]
    assert untyped["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AggregateIn"
    }

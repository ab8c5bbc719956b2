"""POST /v1/batch: operations across collections in one transaction, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import OperationFailure

from tests.support.accounts import Account
from tests.support.problems import assert_problem

SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "maxItems": 3}}}


async def declare(client: httpx.AsyncClient, admin: Account) -> None:
    for name, schema in (("lists", SCHEMA), ("log", None)):
        body: dict[str, Any] = {"name": name, "access": {"read": "owner", "write": "owner"}}
        if schema:
            body["schema"] = schema
        response = await client.post("/v1/collections", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text


async def put(client: httpx.AsyncClient, user: Account, doc_id: str, items: list[str]) -> None:
    response = await client.put(
        f"/v1/collections/lists/documents/{doc_id}", json={"items": items}, headers=user.headers
    )
    assert response.status_code == 201, response.text


async def items(client: httpx.AsyncClient, user: Account, doc_id: str) -> list[str]:
    response = await client.get(f"/v1/collections/lists/documents/{doc_id}", headers=user.headers)
    found: list[str] = response.json()["data"]["items"]
    return found


async def log_count(client: httpx.AsyncClient, user: Account) -> int:
    response = await client.get("/v1/collections/log/documents/count", headers=user.headers)
    count: int = response.json()["count"]
    return count


def move(item: str, **extra: Any) -> list[dict[str, Any]]:
    take = {"op": "update", "collection": "lists", "id": "todo"}
    give = {"op": "update", "collection": "lists", "id": "done"}
    return [
        {**take, "update": {"pull": {"items": item}}},
        {**give, "update": {"push": {"items": item}}, **extra},
        {"op": "create", "collection": "log", "data": {"moved": item}},
    ]


async def test_a_batch_moves_an_item_between_lists_and_logs_it(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await put(client, user, "todo", ["milk", "eggs"])
    await put(client, user, "done", [])
    response = await client.post(
        "/v1/batch", json={"operations": move("milk")}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["index"], r["status"], r["collection"]) for r in results] == [
        (0, 200, "lists"),
        (1, 200, "lists"),
        (2, 201, "log"),
    ]
    assert results[1]["document"]["data"] == {"items": ["milk"]}
    assert results[1]["document"]["version"] == 2
    assert await items(client, user, "todo") == ["eggs"]
    assert await items(client, user, "done") == ["milk"]
    assert await log_count(client, user) == 1


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"if_match": '"7"'}, 412, "precondition_failed"),  # a stale version
        ({"id": "nowhere"}, 404, "document_not_found"),
    ],
)
async def test_one_failure_applies_nothing_and_names_its_index(
    client: httpx.AsyncClient,
    admin: Account,
    user: Account,
    extra: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await declare(client, admin)
    await put(client, user, "todo", ["milk"])
    await put(client, user, "done", [])
    response = await client.post(
        "/v1/batch", json={"operations": move("milk", **extra)}, headers=user.headers
    )
    body = assert_problem(response, status, code)
    assert body["errors"][0]["loc"] == ["body", "operations", 1]
    assert "Operation 1 failed" in body["detail"]
    assert await items(client, user, "todo") == ["milk"]  # operation 0 was rolled back
    assert await log_count(client, user) == 0


async def test_the_schema_and_access_rules_hold_inside_a_batch(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin)
    await put(client, user, "todo", ["a"])
    await put(client, user, "done", ["x", "y", "z"])  # full: maxItems 3
    full = await client.post("/v1/batch", json={"operations": move("a")}, headers=user.headers)
    body = assert_problem(full, 422, "schema_violation")
    assert body["errors"][1]["loc"][:5] == ["body", "operations", 1, "data", "items"]
    assert await items(client, user, "todo") == ["a"]
    theirs = await client.post(
        "/v1/batch",
        json={"operations": [{"op": "delete", "collection": "lists", "id": "todo"}]},
        headers=other_user.headers,
    )
    assert_problem(theirs, 404, "document_not_found")
    anonymous = await client.post("/v1/batch", json={"operations": move("a")})
    assert_problem(anonymous, 401, "not_authenticated")
    assert await items(client, user, "todo") == ["a"]


@pytest.mark.parametrize(
    "operations",
    [
        [],
        [{"op": "create", "collection": "log", "data": {}}] * 101,
        [{"op": "update", "collection": "lists", "id": "todo"}],
        [{"op": "delete", "collection": "lists"}],
        [{"op": "create", "collection": "lists", "id": "x", "data": {}}],
        [{"op": "rename", "collection": "lists", "id": "a"}],
    ],
)
async def test_malformed_batches_are_422(
    client: httpx.AsyncClient, user: Account, operations: list[dict[str, Any]]
) -> None:
    response = await client.post("/v1/batch", json={"operations": operations}, headers=user.headers)
    assert_problem(response, 422, "validation_failed")


@pytest.mark.parametrize("doc_id", ["..", ".", "a/b", "a\x00b", "a\u202eb", "$where", "x" * 65])
@pytest.mark.parametrize("op", ["replace", "patch", "delete"])
async def test_batch_ids_follow_the_single_routes_rules(
    client: httpx.AsyncClient, user: Account, doc_id: str, op: str
) -> None:
    operation: dict[str, Any] = {"op": op, "collection": "lists", "id": doc_id}
    operation |= {"replace": {"data": {}}, "patch": {"patch": {}}}.get(op, {})
    response = await client.post(
        "/v1/batch", json={"operations": [operation]}, headers=user.headers
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"][-1] == "id"
    listed = await client.get("/v1/collections/lists/documents", headers=user.headers)
    assert listed.status_code in (200, 404) and not (listed.json().get("items"))


async def test_concurrent_batches_on_the_same_documents_all_apply(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """Transactions that collide are retried: ten batches each count on two documents."""
    await declare(client, admin)
    for doc_id in ("a", "b"):
        made = await client.put(
            f"/v1/collections/log/documents/{doc_id}", json={"n": 0}, headers=user.headers
        )
        assert made.status_code == 201
    batch = {
        "operations": [
            {"op": "update", "collection": "log", "id": doc_id, "update": {"inc": {"n": 1}}}
            for doc_id in ("a", "b")
        ]
    }
    results = await asyncio.gather(
        *(client.post("/v1/batch", json=batch, headers=user.headers) for _ in range(10))
    )
    assert [r.status_code for r in results] == [200] * 10
    for doc_id in ("a", "b"):
        doc = await client.get(f"/v1/collections/log/documents/{doc_id}", headers=user.headers)
        assert doc.json()["data"]["n"] == 10 and doc.json()["version"] == 11


async def test_a_database_without_transactions_is_503(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account, monkeypatch: Any
) -> None:
    """A standalone mongod refuses transactions (code 20): say so, change nothing."""
    await declare(client, admin)
    client_class = type(app.state.container.db.client)
    real = client_class.start_session

    def standalone(self: Any, *args: Any, **kwargs: Any) -> Any:
        session = real(self, *args, **kwargs)

        async def refuse(*_: Any, **__: Any) -> Any:
            raise OperationFailure(
                "Transaction numbers are only allowed on a replica set member or mongos", 20
            )

        session.with_transaction = refuse
        return session

    monkeypatch.setattr(client_class, "start_session", standalone)
    response = await client.post(
        "/v1/batch",
        json={"operations": [{"op": "create", "collection": "log", "data": {"n": 1}}]},
        headers=user.headers,
    )
    assert_problem(response, 503, "transactions_unavailable")


async def test_a_seventh_failure_leaves_the_first_six_undone_in_the_database(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await put(client, user, "todo", ["a"])
    operations: list[dict[str, Any]] = [
        {"op": "create", "collection": "log", "data": {"i": i}} for i in range(4)
    ]
    operations += [
        {"op": "update", "collection": "lists", "id": "todo", "update": {"push": {"items": "b"}}},
        {"op": "replace", "collection": "lists", "id": "new", "data": {"items": []}},
        {"op": "delete", "collection": "lists", "id": "todo", "if_match": '"1"'},  # now at 2
    ]
    response = await client.post("/v1/batch", json={"operations": operations}, headers=user.headers)
    body = assert_problem(response, 412, "precondition_failed")
    assert body["errors"][0]["loc"] == ["body", "operations", 6]
    db = app.state.container.db
    assert await db["docs_log"].count_documents({}) == 0
    assert await db["docs_lists"].count_documents({"_id": "new"}) == 0
    todo = await db["docs_lists"].find_one({"_id": "todo"})
    assert todo["version"] == 1 and todo["data"] == {"items": ["a"]}


async def test_eight_concurrent_batches_on_overlapping_documents_lose_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    names = ["a", "b", "c"]
    for doc_id in names:
        made = await client.put(
            f"/v1/collections/log/documents/{doc_id}", json={"n": 0}, headers=user.headers
        )
        assert made.status_code == 201

    def batch(i: int) -> dict[str, Any]:
        touched = [names[i % 3], names[(i + 1) % 3]]  # each pair overlaps the next
        return {
            "operations": [
                {"op": "update", "collection": "log", "id": d, "update": {"inc": {"n": 1}}}
                for d in touched
            ]
        }

    results = await asyncio.gather(
        *(client.post("/v1/batch", json=batch(i), headers=user.headers) for i in range(8))
    )
    assert [r.status_code for r in results] == [200] * 8
    expected = {name: 0 for name in names}
    for i in range(8):
        expected[names[i % 3]] += 1
        expected[names[(i + 1) % 3]] += 1
    for doc_id, n in expected.items():
        doc = await client.get(f"/v1/collections/log/documents/{doc_id}", headers=user.headers)
        assert doc.json()["data"]["n"] == n

"""PATCH with application/json-patch+json (RFC 6902), beside merge patch (RFC 7396)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, assert_problem

JSON_PATCH = {"Content-Type": "application/json-patch+json"}
SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string"}, "score": {"type": "integer"}},
}


async def setup(client: httpx.AsyncClient, admin: Account, user: Account) -> str:
    declared = await client.post(
        "/v1/collections", json={"name": "notes", "schema": SCHEMA}, headers=admin.headers
    )
    assert declared.status_code == 201
    created = await client.post(
        "/v1/collections/notes/documents",
        json={"title": "a", "score": 7, "tags": ["x", "y"], "meta": {"k": 1}},
        headers=user.headers,
    )
    return f"/v1/collections/notes/documents/{created.json()['id']}"


async def patch(
    client: httpx.AsyncClient, path: str, user: Account, ops: Any, **headers: str
) -> httpx.Response:
    return await client.patch(path, json=ops, headers={**user.headers, **JSON_PATCH, **headers})


async def test_every_operation_applies_all_or_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    path = await setup(client, admin, user)
    response = await patch(
        client,
        path,
        user,
        [
            {"op": "test", "path": "/score", "value": 7},
            {"op": "replace", "path": "/score", "value": 8},
            {"op": "add", "path": "/tags/-", "value": "z"},
            {"op": "remove", "path": "/tags/0"},
            {"op": "copy", "from": "/title", "path": "/copy"},
            {"op": "move", "from": "/meta/k", "path": "/moved"},
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "title": "a",
        "score": 8,
        "tags": ["y", "z"],
        "meta": {},
        "copy": "a",
        "moved": 1,
    }
    assert response.json()["version"] == 2

    # A failed test, a missing path: 409, and nothing of the patch is applied.
    failed = await patch(
        client,
        path,
        user,
        [
            {"op": "replace", "path": "/score", "value": 1},
            {"op": "test", "path": "/title", "value": "b"},
        ],
    )
    assert_problem(failed, 409, "patch_test_failed")
    missing = await patch(client, path, user, [{"op": "remove", "path": "/nothing"}])
    assert_problem(missing, 409, "patch_conflict")
    # The schema still holds; malformed patches are 422; If-Match is honoured.
    breaks = await patch(client, path, user, [{"op": "remove", "path": "/title"}])
    assert_problem(breaks, 422, "schema_violation")
    for bad in (
        {"op": "replace", "path": "/score", "value": 1},  # not an array
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "a", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "move", "path": "/a"}],
        ["add"],
    ):
        assert_problem(await patch(client, path, user, bad), 422, "validation_failed")
    stale = await patch(
        client, path, user, [{"op": "add", "path": "/x", "value": 1}], **{"If-Match": '"1"'}
    )
    assert_problem(stale, 412, "precondition_failed")
    stored = (await client.get(path, headers=user.headers)).json()
    assert stored["version"] == 2 and stored["data"]["score"] == 8 and "x" not in stored["data"]


async def test_merge_patch_still_works_and_refuses_an_array(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    path = await setup(client, admin, user)
    merged = await client.patch(
        path,
        json={"score": None, "meta": {"j": 2}},
        headers={**user.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert merged.status_code == 200
    assert merged.json()["data"]["meta"] == {"k": 1, "j": 2}
    assert "score" not in merged.json()["data"]
    as_list = await client.patch(
        path,
        json=[{"op": "remove", "path": "/title"}],
        headers={**user.headers, "Content-Type": "application/merge-patch+json"},
    )
    body = assert_problem(as_list, 422, "validation_failed")
    assert "json-patch+json" in body["detail"]
    broken = await client.patch(
        path, content=b"{nope", headers={**user.headers, "Content-Type": "application/json"}
    )
    assert_problem(broken, 422, "validation_failed")

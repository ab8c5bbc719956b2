"""PATCH with application/json-patch+json (RFC 6902), beside merge patch (RFC 7396)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.accounts import Account
from tests.support.problems import assert_problem

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


# RFC 6902 Appendix A, every example (each has an object root, so each applies to `data`).
# (section, document, patch, expected result or (status, code) for an error)
RFC_6902_APPENDIX_A: list[tuple[str, dict[str, Any], list[dict[str, Any]], Any]] = [
    ("A.1 add an object member", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ("A.2 add an array element", {"foo": ["bar", "baz"]},
     [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ("A.3 remove an object member", {"baz": "qux", "foo": "bar"},
     [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4 remove an array element", {"foo": ["bar", "qux", "baz"]},
     [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ("A.5 replace a value", {"baz": "qux", "foo": "bar"},
     [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ("A.6 move a value", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 move an array element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 test a value: success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.9 test a value: error", {"baz": "qux"},
     [{"op": "test", "path": "/baz", "value": "bar"}], (409, "patch_test_failed")),
    ("A.10 add a nested member object", {"foo": "bar"},
     [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignore unrecognized elements", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A.12 add to a nonexistent target", {"foo": "bar"},
     [{"op": "add", "path": "/baz/bat", "value": "qux"}], (409, "patch_conflict")),
    ("A.14 ~ escape ordering", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A.15 compare strings and numbers", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": "10"}], (409, "patch_test_failed")),
    ("A.16 add an array value", {"foo": ["bar"]},
     [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("section", "document", "operations", "expected"),
    RFC_6902_APPENDIX_A,
    ids=[case[0] for case in RFC_6902_APPENDIX_A],
)
async def test_rfc_6902_appendix_a(
    client: httpx.AsyncClient,
    admin: Account,
    user: Account,
    section: str,
    document: dict[str, Any],
    operations: list[dict[str, Any]],
    expected: Any,
) -> None:
    declared = await client.post("/v1/collections", json={"name": "rfc"}, headers=admin.headers)
    assert declared.status_code == 201
    created = await client.post(
        "/v1/collections/rfc/documents", json=document, headers=user.headers
    )
    assert created.status_code == 201, created.text
    path = f"/v1/collections/rfc/documents/{created.json()['id']}"
    response = await patch(client, path, user, operations)
    if isinstance(expected, tuple):
        assert_problem(response, *expected)
        stored = await client.get(path, headers=user.headers)
        assert stored.json()["data"] == document and stored.json()["version"] == 1
    else:
        assert response.status_code == 200, response.text
        assert response.json()["data"] == expected


async def test_rfc_6902_a13_an_invalid_patch_document_changes_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """A.13: an operation with two `op` members is not a valid patch. JSON parsers keep
    one of them; either way the patch must fail and change nothing."""
    path = await setup(client, admin, user)
    response = await client.patch(
        path,
        content=b'[{"op": "add", "path": "/baz", "value": "qux", "op": "remove"}]',
        headers={**user.headers, **JSON_PATCH},
    )
    assert response.status_code in (409, 422), response.text
    assert (await client.get(path, headers=user.headers)).json()["version"] == 1


async def test_a_patch_that_doubles_the_document_stops_at_the_first_copy_over_the_bound(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    path = await setup(client, admin, user)
    await client.patch(path, json={"a": ["x" * 1000]}, headers=user.headers)
    # 28 doublings would make 2**28 copies (the red team's hung server); each copy is
    # charged before it is made, so the patch stops at the one that passes the budget
    # (4x the 256 KiB limit: 1 KiB doubled ten times), naming it.
    doubling = [{"op": "copy", "from": "/a", "path": "/a/-"}] * 28
    response = await patch(client, path, user, doubling)
    problem = assert_problem(response, 413, "payload_too_large")
    assert problem["errors"] == [
        {"loc": ["body", 10, "from"], "msg": problem["errors"][0]["msg"], "type": "too_much_work"}
    ]
    after = await client.get(path, headers=user.headers)
    assert after.json()["version"] == 2 and after.json()["data"]["a"] == ["x" * 1000]


async def test_values_added_and_removed_again_count_against_the_same_budget(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    path = await setup(client, admin, user)
    await client.patch(path, json={"big": "y" * 250_000}, headers=user.headers)
    ops = [{"op": "copy", "from": "/big", "path": "/c"}, {"op": "remove", "path": "/c"}] * 5
    problem = assert_problem(await patch(client, path, user, ops), 413, "payload_too_large")
    assert problem["errors"][0]["loc"] == ["body", 8, "from"]

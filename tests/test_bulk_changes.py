"""bulk-update and bulk-delete: scoped to what the caller may change, capped, dry-runnable."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.accounts import Account
from tests.support.problems import assert_problem

DOCS = "/v1/collections/inbox/documents"
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}}


async def fill(
    client: httpx.AsyncClient, admin: Account, user: Account, other: Account
) -> dict[str, list[str]]:
    declared = await client.post(
        "/v1/collections", json={"name": "inbox", "schema": SCHEMA}, headers=admin.headers
    )
    assert declared.status_code == 201
    ids: dict[str, list[str]] = {"user": [], "other": []}
    for who, account in (("user", user), ("other", other)):
        for n in range(4):
            made = await client.post(DOCS, json={"read": False, "n": n}, headers=account.headers)
            ids[who].append(made.json()["id"])
    return ids


async def data_of(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    page = await client.get(DOCS, params={"limit": 100}, headers=account.headers)
    return [d["data"] for d in page.json()["items"]]


async def test_bulk_update_changes_only_what_the_caller_may_change(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await fill(client, admin, user, other_user)
    body = {"filter": {"data.read": False}, "update": {"set": {"read": True}}}

    update = f"{DOCS}/bulk-update"
    dry = await client.post(update, json={**body, "dry_run": True}, headers=user.headers)
    assert dry.json() == {"matched": 4, "modified": 0, "more": False, "dry_run": True, "failed": []}
    assert all(d["read"] is False for d in await data_of(client, user))

    first = await client.post(update, json={**body, "limit": 3}, headers=user.headers)
    assert first.status_code == 200, first.text
    assert first.json()["matched"] == 3 and first.json()["modified"] == 3
    assert first.json()["more"] is True
    rest = await client.post(f"{DOCS}/bulk-update", json=body, headers=user.headers)
    assert rest.json()["modified"] == 1 and rest.json()["more"] is False
    assert all(d["read"] is True for d in await data_of(client, user))
    assert all(d["read"] is False for d in await data_of(client, other_user))

    # Each document is validated: those the update would break are listed, untouched.
    bump = await client.post(
        update, json={"filter": {}, "update": {"inc": {"n": 1}}}, headers=user.headers
    )
    assert bump.json()["modified"] == 3
    assert [f["code"] for f in bump.json()["failed"]] == ["schema_violation"]
    assert sorted(d["n"] for d in await data_of(client, user)) == [1, 2, 3, 3]

    bad_filter = await client.post(
        f"{DOCS}/bulk-update",
        json={"filter": {"data.n": {"$where": "1"}}, "update": {"set": {"x": 1}}},
        headers=user.headers,
    )
    assert_problem(bad_filter, 400, "invalid_filter")
    bad_update = await client.post(
        update, json={"filter": {}, "update": {"set": {"$x": 1}}}, headers=user.headers
    )
    assert_problem(bad_update, 422, "validation_failed")
    too_many = await client.post(
        f"{DOCS}/bulk-update", json={**body, "limit": 10**6}, headers=user.headers
    )
    assert_problem(too_many, 422, "validation_failed")
    anonymous = await client.post(f"{DOCS}/bulk-update", json=body)
    assert_problem(anonymous, 401, "not_authenticated")


async def test_bulk_delete_removes_only_the_callers_matches(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    ids = await fill(client, admin, user, other_user)
    body = {"filter": {"data.n": {"$gte": 2}}}
    delete = f"{DOCS}/bulk-delete"
    dry = await client.post(delete, json={**body, "dry_run": True}, headers=user.headers)
    assert dry.json()["matched"] == 2 and dry.json()["modified"] == 0
    done = await client.post(f"{DOCS}/bulk-delete", json=body, headers=user.headers)
    assert done.json()["modified"] == 2
    assert sorted(d["n"] for d in await data_of(client, user)) == [0, 1]
    assert len(await data_of(client, other_user)) == 4
    for doc_id in ids["user"][2:]:
        gone = await client.get(f"{DOCS}/{doc_id}", headers=user.headers)
        assert_problem(gone, 404, "document_not_found")
    # The admin may change everyone's documents: their bulk-delete reaches them all.
    everything = await client.post(delete, json={"filter": {}}, headers=admin.headers)
    assert everything.json()["modified"] == 6

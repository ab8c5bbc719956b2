"""The audit log: security-relevant requests recorded with actor, address and request id;
admins query and export it; the table of audited routes names real routes only."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.audit.log import ACTIONS
from app.container import Container
from app.http.audit import AUDITED
from tests.support.accounts import PASSWORD, Account
from tests.support.problems import assert_problem

ADDRESS = "203.0.113.7"  # the test client's (tests/support/apps.py)


async def audit(client: httpx.AsyncClient, admin: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/admin/audit", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_sign_ins_and_their_failures_are_recorded_with_address_and_request_id(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    wrong = await client.post(
        "/v1/auth/login",
        json={"email": user.email, "password": "not it at all"},
        headers={"X-Request-Id": "req-wrong-password"},
    )
    assert wrong.status_code == 401
    right = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert right.status_code == 200
    found = await audit(client, admin, action="sign_in")
    failed = next(r for r in found if r["request_id"] == "req-wrong-password")
    assert failed["outcome"] == "failure" and failed["status"] == 401
    assert failed["subject"] == user.email
    assert failed["address"] == ADDRESS
    assert failed["actor"]["id"] is None  # nobody signed in...
    assert failed["details"]["account"] == user.id  # ...with the account it named
    ok = found[0]
    assert ok["outcome"] == "success" and ok["actor"]["id"] == user.id
    assert ok["request_id"] == right.headers["x-request-id"]
    assert ok["details"]["method"] == "password"
    assert "not it at all" not in json.dumps(found)  # what was typed is never kept


async def test_admin_edits_keys_and_rule_changes_are_recorded_with_their_actor(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    key = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "ci", "current_password": PASSWORD},
        headers=user.headers,
    )
    assert key.status_code == 201, key.text
    changed = await client.patch(
        f"/v1/users/{user.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    declared = await client.post("/v1/collections", json={"name": "notes"}, headers=admin.headers)
    rules = await client.patch(
        "/v1/collections/notes", json={"access": {"read": "public"}}, headers=admin.headers
    )
    assert declared.status_code == 201 and rules.status_code == 200
    [role] = await audit(client, admin, action="account_changed_by_admin")
    assert role["actor"] == {"id": admin.id, "via": "session"}
    assert role["subject"] == user.id and role["route"] == "PATCH /v1/users/{user_id}"
    [created] = await audit(client, admin, action="api_key_created")
    assert created["actor"]["id"] == user.id and created["outcome"] == "success"
    [rule] = await audit(client, admin, action="collection_changed")
    assert rule["subject"] == "notes"
    # By actor, newest first, in pages.
    mine = await audit(client, admin, actor=admin.id)
    assert [r["action"] for r in mine] == [
        "collection_changed",
        "collection_created",
        "account_changed_by_admin",
    ]
    first = (
        await client.get(
            "/v1/admin/audit", params={"actor": admin.id, "limit": 2}, headers=admin.headers
        )
    ).json()
    rest = await audit(client, admin, actor=admin.id, cursor=first["next_cursor"])
    assert [r["id"] for r in first["items"] + rest] == [r["id"] for r in mine]


async def test_the_export_is_ndjson_of_every_record_and_is_itself_recorded(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await client.post("/v1/auth/login", json={"email": user.email, "password": "wrong wrong"})
    response = await client.get(
        "/v1/admin/audit/export", params={"outcome": "failure"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [r["action"] for r in lines] == ["sign_in"] and lines[0]["outcome"] == "failure"
    [exported] = await audit(client, admin, action="audit_exported")
    assert exported["actor"]["id"] == admin.id


async def test_only_admins_signed_in_as_people_read_it_and_bad_queries_are_4xx(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    assert_problem(await client.get("/v1/admin/audit", headers=user.headers), 403, "forbidden")
    assert_problem(
        await client.get("/v1/admin/audit/export", headers=user.headers), 403, "forbidden"
    )
    assert_problem(await client.get("/v1/admin/audit"), 401, "not_authenticated")
    key = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "robot", "current_password": PASSWORD},
        headers=admin.headers,
    )
    robot = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await client.get("/v1/admin/audit", headers=robot)).status_code == 403
    bad = await client.get("/v1/admin/audit", params={"action": "nap"}, headers=admin.headers)
    assert_problem(bad, 422, "validation_failed")
    cursor = await client.get("/v1/admin/audit", params={"cursor": "zz"}, headers=admin.headers)
    assert cursor.status_code == 400
    naive = await client.get(
        "/v1/admin/audit", params={"since": "2026-01-01T00:00:00"}, headers=admin.headers
    )
    assert_problem(naive, 422, "validation_failed")
    long_ago = await client.get(
        "/v1/admin/audit", params={"since": "1960-01-01T00:00:00Z"}, headers=admin.headers
    )
    assert long_ago.status_code == 200


def test_every_audited_operation_is_a_route_and_every_action_is_named(app: FastAPI) -> None:
    paths = app.openapi()["paths"].values()
    operations = {op.get("operationId") for ops in paths for op in ops.values()}
    assert set(AUDITED) <= operations
    assert set(AUDITED.values()) <= set(ACTIONS)


@pytest.mark.parametrize("index", ["retention"])
async def test_records_expire_after_the_retention(container: Container, index: str) -> None:
    info = await container.audit.collection.index_information()
    assert info[index]["expireAfterSeconds"] == container.settings.audit_retention_days * 86_400

"""GET one document: the fast path (app/documents/fast_get.py) answers exactly as the route.

Two apps on one database: the normal one, where the fast path serves document reads, and
one built with `fast_paths=False`, where FastAPI's route does. Every case is sent to both
and the answers must be the same (status, body, the headers clients read).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.accounts.models import Role
from app.config import Settings
from app.http import encoding, fast_get
from app.main import create_app
from app.observability.metrics import render
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client
from tests.support.problems import assert_problem

HEADERS = ("content-type", "etag", "www-authenticate", "cache-control", "location")


@pytest.fixture
async def route_client(app: FastAPI, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second app on the same database, without the fast path."""
    slow = create_app(settings, fast_paths=False)
    async with (
        LifespanManager(slow, startup_timeout=60, shutdown_timeout=30),
        http_client(slow) as client,
    ):
        yield client


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the fast path answered (so a test knows it really ran)."""
    calls: list[str] = []
    answer = fast_get.DocumentGetFastPath._answer

    async def spy(self: Any, scope: Any, *args: Any) -> Any:
        calls.append(scope["path"])
        return await answer(self, scope, *args)

    monkeypatch.setattr(fast_get.DocumentGetFastPath, "_answer", spy)
    return calls


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    body: Any = None
    if response.content:
        body = response.json()
        if isinstance(body, dict):
            body.pop("request_id", None)
    headers = {h: response.headers[h] for h in HEADERS if h in response.headers}
    return response.status_code, headers, body


async def same(
    fast: httpx.AsyncClient, slow: httpx.AsyncClient, path: str, **kwargs: Any
) -> httpx.Response:
    a, b = await fast.get(path, **kwargs), await slow.get(path, **kwargs)
    assert comparable(a) == comparable(b)
    return a


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Any]:
    admin = await signed_in(app, client, role=Role.ADMIN)
    alice = await signed_in(app, client)
    bob = await signed_in(app, client)
    for name, read in (("private", "owner"), ("open", "public")):
        response = await client.post(
            "/v1/collections",
            json={"name": name, "access": {"read": read, "write": "authenticated"}},
            headers=admin.headers,
        )
        assert response.status_code == 201, response.text
    data = {"title": "héllo ✓", "n": 1.5, "big": 10**15, "nested": {"a": [1, None, True]}}
    docs = {}
    for name in ("private", "open"):
        response = await client.post(
            f"/v1/collections/{name}/documents", json=data, headers=alice.headers
        )
        assert response.status_code == 201, response.text
        docs[name] = response.json()
    return {"alice": alice, "bob": bob, "docs": docs}


async def test_a_read_is_the_same_through_both_paths(
    client: httpx.AsyncClient,
    route_client: httpx.AsyncClient,
    world: dict[str, Any],
    fast_calls: list[str],
) -> None:
    alice: Account = world["alice"]
    doc = world["docs"]["private"]
    path = f"/v1/collections/private/documents/{doc['id']}"

    response = await same(client, route_client, path, headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == doc
    assert response.headers["etag"] == '"1"'
    assert fast_calls == [path]

    # Conditional reads: strong, weak, a list, "*" -> 304; another version -> 200.
    for tag in ('"1"', 'W/"1"', '"7", "1"', "*"):
        not_modified = await same(
            client, route_client, path, headers={**alice.headers, "If-None-Match": tag}
        )
        assert not_modified.status_code == 304
        assert not_modified.content == b""
    changed = await same(
        client, route_client, path, headers={**alice.headers, "If-None-Match": '"2"'}
    )
    assert changed.status_code == 200


async def test_refusals_are_the_same_through_both_paths(
    client: httpx.AsyncClient,
    route_client: httpx.AsyncClient,
    world: dict[str, Any],
    fast_calls: list[str],
) -> None:
    alice: Account = world["alice"]
    bob: Account = world["bob"]
    private = f"/v1/collections/private/documents/{world['docs']['private']['id']}"

    # Another user cannot tell the document exists; nor can an anonymous caller.
    assert_problem(
        await same(client, route_client, private, headers=bob.headers), 404, "document_not_found"
    )
    anonymous = await same(client, route_client, private)
    assert anonymous.status_code in (401, 404)
    # A bad token, an unknown scheme, an unknown collection, an unknown id.
    bad = await same(client, route_client, private, headers={"Authorization": "Bearer nope"})
    assert_problem(bad, 401, "token_invalid")
    basic = await same(client, route_client, private, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == anonymous.status_code
    unknown = await same(
        client, route_client, "/v1/collections/nope/documents/x", headers=alice.headers
    )
    assert unknown.status_code == 404
    missing = await same(
        client, route_client, "/v1/collections/private/documents/missing", headers=alice.headers
    )
    assert missing.status_code == 404
    assert len(fast_calls) == 6

    # What the fast path declines reaches the route: too long a header, a reserved id.
    too_long = await same(
        client, route_client, private, headers={**alice.headers, "If-None-Match": "x" * 1025}
    )
    assert too_long.status_code == 422
    count = await same(
        client, route_client, "/v1/collections/private/documents/count", headers=alice.headers
    )
    assert count.json() == {"count": 1}
    assert len(fast_calls) == 6


async def test_public_documents_read_anonymously_through_both_paths(
    client: httpx.AsyncClient, route_client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    doc = world["docs"]["open"]
    response = await same(client, route_client, f"/v1/collections/open/documents/{doc['id']}")
    assert response.status_code == 200
    assert response.json() == doc


async def test_a_revoked_session_is_refused_at_once_on_the_fast_path(
    client: httpx.AsyncClient, world: dict[str, Any], fast_calls: list[str]
) -> None:
    alice: Account = world["alice"]
    path = f"/v1/collections/private/documents/{world['docs']['private']['id']}"
    assert (await client.get(path, headers=alice.headers)).status_code == 200
    logout = await client.post(
        "/v1/auth/logout", json={"refresh_token": alice.refresh_token}, headers=alice.headers
    )
    assert logout.status_code == 204, logout.text
    assert_problem(await client.get(path, headers=alice.headers), 401, "token_invalid")
    assert len(fast_calls) == 2


async def test_fast_reads_are_counted_under_the_route_template(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    alice: Account = world["alice"]
    template = "/v1/collections/{name}/documents/{doc_id:doc_id}"

    def served() -> float:
        text = render()[0].decode()
        for line in text.splitlines():
            if (
                line.startswith("docstore_http_requests_total{")
                and 'method="GET"' in line
                and f'route="{template}"' in line
                and 'status="200"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = served()
    path = f"/v1/collections/private/documents/{world['docs']['private']['id']}"
    assert (await client.get(path, headers=alice.headers)).status_code == 200
    assert served() == before + 1


def test_data_the_api_did_not_write_is_still_encoded() -> None:
    from datetime import UTC, datetime

    from bson import ObjectId

    from app.documents.models import StoredDocument

    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    doc = StoredDocument("d1", None, 3, when, when, {"when": when, "oid": str(ObjectId())})
    body = json.loads(encoding.encode_document("notes", doc))
    assert body["created_at"] == "2026-01-02T03:04:05.678Z"
    assert body["data"]["when"].startswith("2026-01-02T03:04:05.678")


def test_a_page_with_data_the_api_did_not_write_is_still_encoded() -> None:
    from datetime import UTC, datetime

    from app.documents.models import StoredDocument

    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    plain = StoredDocument("d1", None, 1, when, when, {"n": float("nan")})
    dated = StoredDocument("d2", None, 1, when, when, {"when": when})
    expanded = {"d1": {"author": None}, "d2": {"author": None}}
    body = json.loads(encoding.encode_page("notes", [plain, dated], "next", expanded))
    assert [item["id"] for item in body["items"]] == ["d1", "d2"]
    assert body["items"][0]["data"] == {"n": None}  # JSON has no NaN
    assert body["items"][1]["data"]["when"].startswith("2026-01-02T03:04:05.678")
    assert [item["expanded"] for item in body["items"]] == [{"author": None}] * 2
    assert body["next_cursor"] == "next"

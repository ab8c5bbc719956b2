"""Documents through the API: envelope, preconditions, access, idempotency, bulk, queries."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.container import Container
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.problems import assert_problem

SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string", "maxLength": 20}, "score": {"type": "integer"}},
}


async def declare(
    client: httpx.AsyncClient, admin: Account, name: str = "notes", **extra: Any
) -> None:
    response = await client.post(
        "/v1/collections", json={"name": name, **extra}, headers=admin.headers
    )
    assert response.status_code == 201, response.text


def docs(name: str = "notes") -> str:
    return f"/v1/collections/{name}/documents"


@pytest.fixture
async def notes(client: httpx.AsyncClient, admin: Account) -> str:
    await declare(
        client,
        admin,
        schema=SCHEMA,
        indexes=[
            {"name": "by_score", "fields": ["-data.score", "created_at"]},
            {"name": "slug", "fields": ["data.slug"], "unique": True},
        ],
    )
    return docs()


async def test_create_returns_the_envelope_with_location_and_etag(
    client: httpx.AsyncClient, user: Account, notes: str, container: Container
) -> None:
    response = await client.post(notes, json={"title": "Hello", "score": 7}, headers=user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "collection",
        "owner",
        "team",
        "version",
        "created_at",
        "updated_at",
        "data",
    }
    assert body["collection"] == "notes"
    assert body["team"] is None
    assert body["owner"] == user.id
    assert body["version"] == 1
    assert body["data"] == {"title": "Hello", "score": 7}
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 24
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"{notes}/{body['id']}"
    stored = await container.db["docs_notes"].find_one({"_id": body["id"]})
    assert stored is not None and stored["data"] == {"title": "Hello", "score": 7}

    got = await client.get(response.headers["location"], headers=user.headers)
    assert got.json() == body
    assert got.headers["etag"] == '"1"'


async def test_if_none_match_answers_304(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    created = (await client.post(notes, json={"title": "c"}, headers=user.headers)).json()
    url = f"{notes}/{created['id']}"
    cached = await client.get(url, headers={**user.headers, "If-None-Match": '"1"'})
    assert cached.status_code == 304
    assert cached.headers["etag"] == '"1"'
    assert cached.content == b""
    stale = await client.get(url, headers={**user.headers, "If-None-Match": '"0"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"score": 1}, 422, "schema_violation"),
        ({"title": "x" * 21}, 422, "schema_violation"),
        ({"title": "ok", "score": "high"}, 422, "schema_violation"),
        ({"title": "ok", "$where": "1"}, 422, "validation_failed"),
        ({"title": "ok", "a.b": 1}, 422, "validation_failed"),
        ({"title": "ok", "nested": {"$gt": 1}}, 422, "validation_failed"),
        ({"title": "ok", "nul\u0000key": 1}, 422, "validation_failed"),
        ([1, 2], 422, "validation_failed"),
        ("just a string", 422, "validation_failed"),
    ],
)
async def test_bad_data_is_refused_and_stores_nothing(
    client: httpx.AsyncClient,
    user: Account,
    notes: str,
    container: Container,
    data: Any,
    status: int,
    code: str,
) -> None:
    response = await client.post(notes, json=data, headers=user.headers)
    assert_problem(response, status, code)
    assert await container.db["docs_notes"].count_documents({}) == 0


@pytest.mark.parametrize(
    "body",
    [b'{"title": "t", "n": 1e400}', b'{"title": "t", "n": NaN}', b'{"title": "t", "n": -Infinity}'],
)
async def test_non_finite_numbers_are_refused_not_stored_as_null(
    client: httpx.AsyncClient, user: Account, notes: str, container: Container, body: bytes
) -> None:
    response = await client.post(
        notes, content=body, headers={**user.headers, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["type"] == "json_invalid"
    assert await container.db["docs_notes"].count_documents({}) == 0


async def test_schema_violation_lists_the_failing_paths(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    response = await client.post(notes, json={"score": "x"}, headers=user.headers)
    body = assert_problem(response, 422, "schema_violation")
    locs = [e["loc"] for e in body["errors"]]
    assert ["data"] in locs  # the missing required title
    assert ["data", "score"] in locs


async def test_too_deep_or_too_big_data_is_refused(
    database_url: str,
) -> None:
    settings = make_settings(database_url, document_max_bytes=2048, document_max_depth=5)
    async with running_app(settings) as app, http_client(app) as client:
        container: Container = app.state.container
        headers = (await signed_in(app, client, role=Role.ADMIN)).headers
        await client.post("/v1/collections", json={"name": "t"}, headers=headers)
        deep: dict[str, Any] = {"x": 1}
        for _ in range(6):
            deep = {"d": deep}
        assert_problem(
            await client.post(docs("t"), json=deep, headers=headers), 422, "validation_failed"
        )
        big = {"blob": "x" * 4096}
        assert_problem(
            await client.post(docs("t"), json=big, headers=headers), 413, "payload_too_large"
        )
        huge_int = await client.post(
            docs("t"),
            content=b'{"n": 1' + b"0" * 40 + b"}",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert 400 <= huge_int.status_code < 500
        assert await container.db["docs_t"].count_documents({}) == 0


async def test_unique_index_violation_is_409(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    first = await client.post(notes, json={"title": "a", "slug": "s"}, headers=user.headers)
    assert first.status_code == 201
    second = await client.post(notes, json={"title": "b", "slug": "s"}, headers=user.headers)
    assert_problem(second, 409, "duplicate_key")
    # Documents without the field do not collide.
    for _ in range(2):
        ok = await client.post(notes, json={"title": "no slug"}, headers=user.headers)
        assert ok.status_code == 201


async def test_unknown_collection_and_document_are_404(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    assert_problem(
        await client.post(docs("missing"), json={"title": "x"}, headers=user.headers),
        404,
        "collection_not_found",
    )
    assert_problem(
        await client.get(f"{notes}/nope", headers=user.headers), 404, "document_not_found"
    )


# -- access ------------------------------------------------------------------------------


async def test_owner_access_isolates_users_and_admins_see_all(
    client: httpx.AsyncClient, user: Account, other_user: Account, admin: Account, notes: str
) -> None:
    mine = (await client.post(notes, json={"title": "mine"}, headers=user.headers)).json()
    url = f"{notes}/{mine['id']}"
    # Another user cannot tell the document exists.
    assert_problem(await client.get(url, headers=other_user.headers), 404, "document_not_found")
    assert_problem(
        await client.patch(url, json={"title": "x"}, headers=other_user.headers),
        404,
        "document_not_found",
    )
    assert_problem(
        await client.put(url, json={"title": "x"}, headers=other_user.headers),
        404,
        "document_not_found",
    )
    assert_problem(await client.delete(url, headers=other_user.headers), 404, "document_not_found")
    listed = (await client.get(notes, headers=other_user.headers)).json()
    assert listed["items"] == []
    counted = (await client.get(f"{notes}/count", headers=other_user.headers)).json()
    assert counted == {"count": 0}
    # The admin sees and may change everything.
    assert (await client.get(url, headers=admin.headers)).status_code == 200
    assert len((await client.get(notes, headers=admin.headers)).json()["items"]) == 1
    patched = await client.patch(url, json={"score": 2}, headers=admin.headers)
    assert patched.status_code == 200
    assert (await client.get(url, headers=user.headers)).json()["data"]["score"] == 2


async def test_public_read_needs_no_token_but_writing_does(
    client: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    await declare(client, admin, "posts", access={"read": "public", "write": "owner"})
    created = (await client.post(docs("posts"), json={"t": 1}, headers=user.headers)).json()
    anonymous = await client.get(f"{docs('posts')}/{created['id']}")
    assert anonymous.status_code == 200
    assert (await client.get(docs("posts"))).json()["items"][0]["id"] == created["id"]
    assert_problem(await client.post(docs("posts"), json={"t": 2}), 401, "not_authenticated")


async def test_authenticated_read_and_write(
    client: httpx.AsyncClient, user: Account, other_user: Account, admin: Account
) -> None:
    await declare(client, admin, "wiki", access={"read": "authenticated", "write": "authenticated"})
    page = (await client.post(docs("wiki"), json={"v": 1}, headers=user.headers)).json()
    url = f"{docs('wiki')}/{page['id']}"
    assert (await client.get(url, headers=other_user.headers)).status_code == 200
    edit = await client.patch(url, json={"v": 2}, headers=other_user.headers)
    assert edit.status_code == 200
    assert edit.json()["owner"] == user.id  # editing does not take ownership
    assert_problem(await client.get(url), 401, "not_authenticated")


async def test_readable_but_not_writable_is_403(
    client: httpx.AsyncClient, user: Account, other_user: Account, admin: Account
) -> None:
    await declare(client, admin, "board", access={"read": "authenticated", "write": "owner"})
    post = (await client.post(docs("board"), json={"v": 1}, headers=user.headers)).json()
    url = f"{docs('board')}/{post['id']}"
    assert_problem(
        await client.patch(url, json={"v": 2}, headers=other_user.headers), 403, "forbidden"
    )
    assert_problem(await client.delete(url, headers=other_user.headers), 403, "forbidden")
    assert (await client.get(url, headers=user.headers)).json()["data"] == {"v": 1}


async def test_admin_write_collections_refuse_users(
    client: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    await declare(client, admin, "config", access={"read": "authenticated", "write": "admin"})
    assert_problem(
        await client.post(docs("config"), json={"k": 1}, headers=user.headers), 403, "forbidden"
    )
    assert (
        await client.post(docs("config"), json={"k": 1}, headers=admin.headers)
    ).status_code == 201


# -- versions and preconditions ------------------------------------------------------------


async def test_put_replaces_and_creates_with_a_client_id(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    url = f"{notes}/offline-1"
    created = await client.put(url, json={"title": "draft"}, headers=user.headers)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "offline-1"
    assert created.headers["location"] == url
    replaced = await client.put(url, json={"title": "final"}, headers=user.headers)
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    assert replaced.json()["data"] == {"title": "final"}
    assert replaced.headers["etag"] == '"2"'

    create_only = await client.put(
        url, json={"title": "again"}, headers={**user.headers, "If-None-Match": "*"}
    )
    assert_problem(create_only, 412, "precondition_failed")
    fresh = await client.put(
        f"{notes}/offline-2", json={"title": "new"}, headers={**user.headers, "If-None-Match": "*"}
    )
    assert fresh.status_code == 201


@pytest.mark.parametrize("doc_id", ["has space", "x" * 65, "dots.here"])
async def test_put_refuses_bad_client_ids(
    client: httpx.AsyncClient, user: Account, notes: str, doc_id: str
) -> None:
    response = await client.put(f"{notes}/{doc_id}", json={"title": "x"}, headers=user.headers)
    assert_problem(response, 422, "validation_failed")


async def test_collection_level_routes_are_not_document_ids(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    for doc_id in ("count", "bulk"):
        response = await client.put(f"{notes}/{doc_id}", json={"title": "x"}, headers=user.headers)
        assert_problem(response, 405, "method_not_allowed")
    assert (await client.get(f"{notes}/count", headers=user.headers)).json() == {"count": 0}


async def test_merge_patch_follows_rfc_7396(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    created = (
        await client.post(
            notes, json={"title": "t", "score": 1, "meta": {"a": 1, "b": 2}}, headers=user.headers
        )
    ).json()
    response = await client.patch(
        f"{notes}/{created['id']}",
        json={"score": None, "meta": {"b": 3, "c": 4}},
        headers={**user.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"title": "t", "meta": {"a": 1, "b": 3, "c": 4}}
    assert response.json()["version"] == 2


async def test_a_patch_that_breaks_the_schema_changes_nothing(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    created = (await client.post(notes, json={"title": "t"}, headers=user.headers)).json()
    url = f"{notes}/{created['id']}"
    assert_problem(
        await client.patch(url, json={"title": None}, headers=user.headers),
        422,
        "schema_violation",
    )
    after = (await client.get(url, headers=user.headers)).json()
    assert after["version"] == 1 and after["data"] == {"title": "t"}


async def test_if_match_mismatch_is_412_everywhere(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    created = (await client.post(notes, json={"title": "t"}, headers=user.headers)).json()
    url = f"{notes}/{created['id']}"
    stale = {**user.headers, "If-Match": '"7"'}
    body = assert_problem(
        await client.patch(url, json={"title": "u"}, headers=stale), 412, "precondition_failed"
    )
    assert "version 1, not 7" in body["detail"]
    assert_problem(
        await client.put(url, json={"title": "u"}, headers=stale), 412, "precondition_failed"
    )
    assert_problem(await client.delete(url, headers=stale), 412, "precondition_failed")
    fresh = {**user.headers, "If-Match": '"1"'}
    assert (await client.patch(url, json={"title": "u"}, headers=fresh)).status_code == 200
    assert (
        await client.delete(url, headers={**user.headers, "If-Match": '"2"'})
    ).status_code == 204
    assert_problem(await client.get(url, headers=user.headers), 404, "document_not_found")


@pytest.mark.parametrize("tag", ['"\u00b2"', '"99999999999999999999999"', 'W/"1"', "1", '"1.0"'])
async def test_if_match_tags_that_are_not_a_strong_current_version_never_match(
    client: httpx.AsyncClient, user: Account, notes: str, tag: str
) -> None:
    created = (await client.post(notes, json={"title": "t"}, headers=user.headers)).json()
    url = f"{notes}/{created['id']}"
    headers = {**user.headers, "If-Match": tag.encode("latin-1").decode("latin-1")}
    raw_headers = [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]
    for method, body in (("PATCH", {"title": "u"}), ("PUT", {"title": "u"}), ("DELETE", None)):
        response = await client.request(method, url, json=body, headers=raw_headers)
        assert_problem(response, 412, "precondition_failed")
    assert (await client.get(url, headers=user.headers)).json()["version"] == 1
    # If-None-Match compares weakly: W/"1" is the current version.
    cached = await client.get(url, headers={**user.headers, "If-None-Match": 'W/"1"'})
    assert cached.status_code == 304


async def test_twelve_concurrent_if_match_patches_one_wins(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    created = (
        await client.post(notes, json={"title": "t", "score": 0}, headers=user.headers)
    ).json()
    url = f"{notes}/{created['id']}"
    headers = {**user.headers, "If-Match": '"1"'}
    responses = await asyncio.gather(
        *(client.patch(url, json={"score": i}, headers=headers) for i in range(12))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 11
    final = (await client.get(url, headers=user.headers)).json()
    assert final["version"] == 2


async def test_concurrent_patches_without_if_match_lose_no_update(
    client: httpx.AsyncClient, user: Account, notes: str
) -> None:
    created = (await client.post(notes, json={"title": "t"}, headers=user.headers)).json()
    url = f"{notes}/{created['id']}"
    responses = await asyncio.gather(
        *(client.patch(url, json={f"k{i}": i}, headers=user.headers) for i in range(8))
    )
    assert all(r.status_code == 200 for r in responses)
    final = (await client.get(url, headers=user.headers)).json()
    assert final["version"] == 9
    assert {f"k{i}" for i in range(8)} <= set(final["data"])


async def test_if_match_can_be_required(database_url: str) -> None:
    settings = make_settings(database_url, require_if_match=True)
    async with running_app(settings) as app, http_client(app) as client:
        headers = (await signed_in(app, client, role=Role.ADMIN)).headers
        await client.post("/v1/collections", json={"name": "strict"}, headers=headers)
        doc = (await client.post(docs("strict"), json={"a": 1}, headers=headers)).json()
        url = f"{docs('strict')}/{doc['id']}"
        for method in ("PUT", "PATCH", "DELETE"):
            body = None if method == "DELETE" else {"a": 2}
            response = await client.request(method, url, json=body, headers=headers)
            assert_problem(response, 428, "precondition_required")
        ok = await client.patch(url, json={"a": 2}, headers={**headers, "If-Match": '"1"'})
        assert ok.status_code == 200
        created = await client.put(
            f"{docs('strict')}/new-one", json={"a": 1}, headers={**headers, "If-None-Match": "*"}
        )
        assert created.status_code == 201


# -- idempotency and bulk ------------------------------------------------------------------


async def test_idempotent_post_replays_the_first_response(
    client: httpx.AsyncClient, user: Account, notes: str, container: Container
) -> None:
    headers = {**user.headers, "Idempotency-Key": "order-42"}
    first = await client.post(notes, json={"title": "once"}, headers=headers)
    second = await client.post(notes, json={"title": "once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert await container.db["docs_notes"].count_documents({}) == 1

    reused = await client.post(notes, json={"title": "other"}, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")
    assert await container.db["docs_notes"].count_documents({}) == 1


async def test_idempotency_keys_are_per_user_and_a_failed_attempt_can_retry(
    client: httpx.AsyncClient, user: Account, other_user: Account, notes: str
) -> None:
    key = {"Idempotency-Key": "same-key"}
    a = await client.post(notes, json={"title": "a"}, headers={**user.headers, **key})
    b = await client.post(notes, json={"title": "a"}, headers={**other_user.headers, **key})
    assert a.json()["id"] != b.json()["id"]
    bad = await client.post(
        notes, json={"nope": 1}, headers={**user.headers, "Idempotency-Key": "k2"}
    )
    assert_problem(bad, 422, "schema_violation")
    good = await client.post(
        notes, json={"nope": 1, "title": "t"}, headers={**user.headers, "Idempotency-Key": "k2"}
    )
    assert good.status_code == 201


async def test_concurrent_requests_with_one_key_create_one_document(
    client: httpx.AsyncClient, user: Account, notes: str, container: Container
) -> None:
    headers = {**user.headers, "Idempotency-Key": "race"}
    responses = await asyncio.gather(
        *(client.post(notes, json={"title": "r"}, headers=headers) for _ in range(6))
    )
    assert {r.status_code for r in responses} <= {201, 409}
    assert await container.db["docs_notes"].count_documents({}) == 1


async def test_bulk_stores_the_good_items_around_a_bad_one(
    client: httpx.AsyncClient, user: Account, notes: str, container: Container
) -> None:
    await client.post(notes, json={"title": "taken", "slug": "dup"}, headers=user.headers)
    response = await client.post(
        f"{notes}/bulk",
        json={
            "documents": [
                {"title": "one"},
                {"score": 5},  # no title: schema violation
                "not an object",
                {"title": "two", "slug": "dup"},  # unique index
                {"title": "three"},
            ]
        },
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["failed"]) == (2, 3)
    statuses = [(r["index"], r["status"], r["code"]) for r in body["results"]]
    assert statuses == [
        (0, 201, None),
        (1, 422, "schema_violation"),
        (2, 422, "validation_failed"),
        (3, 409, "duplicate_key"),
        (4, 201, None),
    ]
    assert body["results"][1]["errors"][0]["loc"][:2] == ["documents", 1]
    titles = {d["data"]["title"] async for d in container.db["docs_notes"].find()}
    assert titles == {"taken", "one", "three"}


async def test_bulk_over_the_limit_is_refused(database_url: str) -> None:
    settings = make_settings(database_url, bulk_max_documents=3)
    async with running_app(settings) as app, http_client(app) as client:
        headers = (await signed_in(app, client, role=Role.ADMIN)).headers
        await client.post("/v1/collections", json={"name": "many"}, headers=headers)
        response = await client.post(
            f"{docs('many')}/bulk", json={"documents": [{}] * 4}, headers=headers
        )
        assert_problem(response, 413, "payload_too_large")
        assert await app.state.container.db["docs_many"].count_documents({}) == 0


async def test_deleting_an_account_deletes_its_documents(
    client: httpx.AsyncClient,
    user: Account,
    other_user: Account,
    admin: Account,
    notes: str,
    container: Container,
) -> None:
    await declare(client, admin, "posts", access={"read": "public", "write": "owner"})
    await client.post(notes, json={"title": "mine"}, headers=user.headers)
    await client.post(docs("posts"), json={"t": 1}, headers=user.headers)
    kept = await client.post(notes, json={"title": "theirs"}, headers=other_user.headers)
    deleted = await client.request(
        "DELETE", "/v1/users/me", json={"current_password": user.password}, headers=user.headers
    )
    assert deleted.status_code == 204
    assert await container.db["docs_notes"].count_documents({"owner": user.id}) == 0
    assert await container.db["docs_posts"].count_documents({}) == 0
    remaining = await client.get(notes, headers=other_user.headers)
    assert [d["id"] for d in remaining.json()["items"]] == [kept.json()["id"]]


async def test_server_ids_are_random_and_lists_default_to_creation_order(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    ids = []
    for n in range(8):
        response = await client.post(docs(), json={"title": f"t{n}"}, headers=user.headers)
        ids.append(response.json()["id"])
    bulk = await client.post(
        f"{docs()}/bulk", json={"documents": [{"title": "b"}] * 8}, headers=user.headers
    )
    ids += [item["id"] for item in bulk.json()["results"]]

    for doc_id in ids:
        # 128 random bits, URL-safe: nothing in one id predicts another.
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", doc_id), doc_id
        assert len(base64.urlsafe_b64decode(doc_id + "==")) == 16
    assert len(set(ids)) == len(ids)
    # ObjectIds made in the same second share their first 8 characters (the timestamp).
    assert len({doc_id[:8] for doc_id in ids}) == len(ids)

    # With random ids, the default order is creation order (not id order).
    listed = (await client.get(docs(), params={"limit": 100}, headers=user.headers)).json()
    created = [item["created_at"] for item in listed["items"]]
    assert created == sorted(created) and len(created) == len(ids)


# -- bad input that once answered 500 -----------------------------------------------------

LONE_SURROGATE = '{"title": "x\\ud800y"}'  # JSON text with a lone \ud800 escape


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "", LONE_SURROGATE),
        ("PUT", "/mine", LONE_SURROGATE),
        ("POST", "/bulk", '{"documents": [{"title": "ok"}, {"title": "\\udc00"}]}'),
        ("POST", "", '{"title": "t", "\\udbff": 1}'),
    ],
)
async def test_lone_surrogates_in_data_are_refused_and_store_nothing(
    client: httpx.AsyncClient,
    admin: Account,
    user: Account,
    container: Container,
    method: str,
    path: str,
    body: str,
) -> None:
    await declare(client, admin)
    headers = {**user.headers, "Content-Type": "application/json"}
    response = await client.request(method, docs() + path, content=body, headers=headers)
    assert_problem(response, 422, "validation_failed")
    assert await container.db["docs_notes"].count_documents({}) == 0


async def test_a_lone_surrogate_in_a_patch_changes_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    created = (await client.post(docs(), json={"title": "a"}, headers=user.headers)).json()
    headers = {**user.headers, "Content-Type": "application/merge-patch+json"}
    response = await client.patch(
        f"{docs()}/{created['id']}", content=LONE_SURROGATE, headers=headers
    )
    assert_problem(response, 422, "validation_failed")
    now = (await client.get(f"{docs()}/{created['id']}", headers=user.headers)).json()
    assert now["version"] == 1 and now["data"] == {"title": "a"}


async def test_a_lone_surrogate_in_a_collection_schema_is_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    body = '{"name": "odd", "schema": {"type": "object", "title": "\\ud800"}}'
    headers = {**admin.headers, "Content-Type": "application/json"}
    response = await client.post("/v1/collections", content=body, headers=headers)
    assert_problem(response, 422, "validation_failed")
    assert_problem(
        await client.get("/v1/collections/odd", headers=admin.headers), 404, "collection_not_found"
    )


@pytest.mark.parametrize(
    "query",
    [
        '{"data.title": "\\ud800"}',
        '{"data.x": {"$size": 99999999999999999999}}',
        '{"data.x": {"$size": 2147483648}}',
        '{"created_at": {"$lt": "9999-12-31T23:59:59-01:00"}}',
        '{"updated_at": "0001-01-01T00:00:00+01:00"}',
    ],
)
async def test_filters_at_the_edges_are_400_not_500(
    client: httpx.AsyncClient, admin: Account, user: Account, query: str
) -> None:
    await declare(client, admin)
    for path in (docs(), f"{docs()}/count"):
        response = await client.get(path, params={"filter": query}, headers=user.headers)
        assert_problem(response, 400, "invalid_filter")


async def test_or_inside_elem_match_keeps_paths_relative_to_the_element(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    for items in ([{"a": {"b": 1}, "c": 2}], [{"a": {"b": 1}, "c": 1}], [{"a": {"b": 2}, "c": 1}]):
        await client.post(docs(), json={"title": "t", "items": items}, headers=user.headers)
    query = '{"data.items": {"$elemMatch": {"a.b": 1, "$or": [{"c": 1}, {"c": 3}]}}}'
    response = await client.get(docs(), params={"filter": query}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert [d["data"]["items"] for d in response.json()["items"]] == [[{"a": {"b": 1}, "c": 1}]]


FORMATS_SCHEMA = {
    "type": "object",
    "properties": {
        "due": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
        "mail": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "ref": {"type": "string", "format": "uuid"},
    },
}
GOOD_FORMATS = {
    "due": "2026-12-05",
    "at": "2026-12-05T10:30:00.123Z",
    "mail": "ada@example.com",
    "site": "https://example.com/a?b=c#d",
    "ref": "123e4567-e89b-12d3-a456-426614174000",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("due", "tomorrow"),
        ("due", "2026-02-30"),
        ("at", "2026-12-05"),
        ("at", "2026-12-05T10:30:00"),  # no time zone
        ("at", "2026-12-05T25:00:00Z"),
        ("mail", "ada"),
        ("mail", "ada @example.com"),
        ("site", "example.com/no-scheme"),
        ("site", "https://exa mple.com"),
        ("ref", "123e4567e89b12d3a456426614174000"),
        ("ref", "not-a-uuid"),
    ],
)
async def test_schema_formats_are_checked(
    client: httpx.AsyncClient, admin: Account, user: Account, field: str, value: str
) -> None:
    declared = {"name": "events", "schema": FORMATS_SCHEMA}
    assert (await client.post("/v1/collections", json=declared, headers=admin.headers)).is_success
    url = "/v1/collections/events/documents"
    good = await client.post(url, json=GOOD_FORMATS, headers=user.headers)
    assert good.status_code == 201, good.text
    bad = await client.post(url, json={**GOOD_FORMATS, field: value}, headers=user.headers)
    problem = assert_problem(bad, 422, "schema_violation")
    assert problem["errors"][0]["loc"] == ["data", field]
    assert problem["errors"][0]["type"] == "format"
    # Updates are held to it too.
    doc = f"{url}/{good.json()['id']}"
    assert_problem(
        await client.patch(doc, json={field: value}, headers=user.headers), 422, "schema_violation"
    )

"""Admin-declared collections: names, schemas, indexes (real MongoDB indexes), access."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

from app.clock import Clock, utc_now
from app.collections.schemas import CollectionIn
from app.container import Container
from app.db.leases import take_lease
from tests.support.accounts import Account
from tests.support.apps import make_settings, running_app
from tests.support.problems import assert_problem
from tests.support.waiting import until

# What a collection declared without `access` reports: the owner presets, no rule
# expressions, no field rules.
DEFAULT_ACCESS: dict[str, Any] = {
    "read": "owner",
    "write": "owner",
    "rules": {"list": None, "read": None, "create": None, "update": None, "delete": None},
    "fields": [],
}
NOTES: dict[str, Any] = {
    "name": "notes",
    "description": "Shared notes",
    "schema": {
        "type": "object",
        "required": ["title"],
        "properties": {"title": {"type": "string", "maxLength": 200}, "score": {"type": "integer"}},
    },
    "indexes": [
        {"name": "by_score", "fields": ["-data.score", "created_at"]},
        {"name": "expire", "fields": ["created_at"], "expire_after_seconds": 86400},
        {"name": "slug", "fields": ["data.slug"], "unique": True},
    ],
    "access": {"read": "owner", "write": "owner"},
}


async def create(client: httpx.AsyncClient, admin: Account, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/collections", json=body, headers=admin.headers)


async def test_create_declares_the_collection_and_its_mongodb_indexes(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    response = await create(client, admin, NOTES)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/collections/notes"
    body = response.json()
    assert body["schema"] == NOTES["schema"]
    assert body["access"] == DEFAULT_ACCESS
    assert [i["name"] for i in body["indexes"]] == ["by_score", "expire", "slug"]

    indexes = await container.db["docs_notes"].index_information()
    # _id ends the key so sorted listings (which break ties by id) use the index fully.
    assert indexes["by_score"]["key"] == [("data.score", -1), ("created_at", 1), ("_id", 1)]
    assert indexes["expire"]["key"] == [("created_at", 1)]
    assert indexes["expire"]["expireAfterSeconds"] == 86400
    assert indexes["slug"]["unique"] is True


async def test_get_list_patch_and_delete(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    await create(client, admin, NOTES)
    await create(client, admin, {"name": "articles"})
    listed = (await client.get("/v1/collections", headers=admin.headers)).json()
    assert [c["name"] for c in listed["items"]] == ["articles", "notes"]
    got = (await client.get("/v1/collections/articles", headers=admin.headers)).json()
    assert got["access"] == DEFAULT_ACCESS
    assert got["schema"] is None

    patched = await client.patch(
        "/v1/collections/notes",
        json={"access": {"read": "public", "write": "admin"}, "indexes": [NOTES["indexes"][0]]},
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["access"] == {**DEFAULT_ACCESS, "read": "public", "write": "admin"}
    assert patched.json()["schema"] == NOTES["schema"]  # untouched
    indexes = await container.db["docs_notes"].index_information()
    assert "by_score" in indexes and "slug" not in indexes and "expire" not in indexes

    no_schema = await client.patch(
        "/v1/collections/notes", json={"schema": None}, headers=admin.headers
    )
    assert no_schema.json()["schema"] is None

    await container.db["docs_notes"].insert_one({"_id": "x", "data": {}})
    assert (await client.delete("/v1/collections/notes", headers=admin.headers)).status_code == 204
    assert "docs_notes" not in await container.db.list_collection_names()
    assert_problem(
        await client.get("/v1/collections/notes", headers=admin.headers),
        404,
        "collection_not_found",
    )


async def test_duplicate_name_is_409(client: httpx.AsyncClient, admin: Account) -> None:
    await create(client, admin, {"name": "dupe"})
    assert_problem(await create(client, admin, {"name": "dupe"}), 409, "collection_exists")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"name": "Notes"}, "name"),
        ({"name": "1notes"}, "name"),
        ({"name": "n" * 64}, "name"),
        ({"name": "has-dash"}, "name"),
        ({"name": "users"}, "name"),
        ({"name": "sessions"}, "name"),
        ({"name": "ok", "schema": {"type": "nonsense"}}, "schema"),
        ({"name": "ok", "schema": {"$ref": "https://example.com/s.json"}}, "schema"),
        ({"name": "ok", "schema": {"$ref": "#/$defs/missing"}}, "schema"),
        ({"name": "ok", "indexes": [{"name": "x", "fields": ["title"]}]}, "indexes"),
        ({"name": "ok", "indexes": [{"name": "x", "fields": ["data.$where"]}]}, "indexes"),
        ({"name": "ok", "indexes": [{"name": "x", "fields": []}]}, "indexes"),
        ({"name": "ok", "indexes": [{"name": "x", "fields": ["data.a", "data.a"]}]}, "indexes"),
        (
            {
                "name": "ok",
                "indexes": [
                    {"name": "x", "fields": ["data.a"]},
                    {"name": "x", "fields": ["data.b"]},
                ],
            },
            "indexes",
        ),
        (
            {
                "name": "ok",
                "indexes": [{"name": "t", "fields": ["data.a"], "expire_after_seconds": 5}],
            },
            "indexes",
        ),
        (
            {
                "name": "ok",
                "indexes": [
                    {"name": "t", "fields": ["created_at", "updated_at"], "expire_after_seconds": 5}
                ],
            },
            "indexes",
        ),
        ({"name": "ok", "schema": {"properties": {"a\x00b": {}}}}, "schema"),
        (
            {
                "name": "ok",
                "indexes": [{"name": "x", "fields": ["id"], "expire_after_seconds": False}],
            },
            "indexes",
        ),
        ({"name": "ok", "access": {"read": "everyone"}}, "access"),
        ({"name": "ok", "extra": 1}, "extra"),
    ],
)
async def test_bad_declarations_are_422_and_create_nothing(
    client: httpx.AsyncClient,
    admin: Account,
    container: Container,
    body: dict[str, Any],
    where: str,
) -> None:
    problem = assert_problem(await create(client, admin, body), 422, "validation_failed")
    assert any(where in map(str, e["loc"]) for e in problem["errors"]), problem
    assert await container.db["collections"].count_documents({}) == 0


async def test_a_unique_index_over_duplicates_is_409_and_keeps_the_old_declaration(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    await create(client, admin, {"name": "tags", "indexes": [NOTES["indexes"][0]]})
    await container.db["docs_tags"].insert_many(
        [{"_id": "a", "data": {"slug": "same"}}, {"_id": "b", "data": {"slug": "same"}}]
    )
    response = await client.patch(
        "/v1/collections/tags",
        json={"indexes": [{"name": "slug", "fields": ["data.slug"], "unique": True}]},
        headers=admin.headers,
    )
    assert_problem(response, 409, "duplicate_key")
    got = (await client.get("/v1/collections/tags", headers=admin.headers)).json()
    assert [i["name"] for i in got["indexes"]] == ["by_score"]
    indexes = await container.db["docs_tags"].index_information()
    assert "by_score" in indexes and "slug" not in indexes


async def test_collection_changes_are_admin_only(
    client: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    await create(client, admin, {"name": "private"})
    for method, url, body in [
        ("POST", "/v1/collections", {"name": "mine"}),
        ("GET", "/v1/collections", None),
        ("PATCH", "/v1/collections/private", {"description": "x"}),
        ("DELETE", "/v1/collections/private", None),
    ]:
        as_user = await client.request(method, url, json=body, headers=user.headers)
        assert_problem(as_user, 403, "forbidden")
        anonymous = await client.request(method, url, json=body)
        assert_problem(anonymous, 401, "not_authenticated")


async def test_signed_in_users_read_a_declaration_without_its_indexes(
    client: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    await create(client, admin, NOTES)
    as_admin = (await client.get("/v1/collections/notes", headers=admin.headers)).json()
    as_user = await client.get("/v1/collections/notes", headers=user.headers)
    assert as_user.status_code == 200
    assert as_user.json() == {**as_admin, "indexes": None}
    assert as_admin["indexes"]
    anonymous = await client.get("/v1/collections/notes")
    assert_problem(anonymous, 401, "not_authenticated")
    missing = await client.get("/v1/collections/nope", headers=user.headers)
    assert_problem(missing, 404, "collection_not_found")


async def test_unknown_collections_are_404(client: httpx.AsyncClient, admin: Account) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        body = {"description": "x"} if method == "PATCH" else None
        response = await client.request(
            method, "/v1/collections/Nope!", json=body, headers=admin.headers
        )
        assert_problem(response, 404, "collection_not_found")


async def test_declared_indexes_are_re_ensured_at_start_up(database_url: str) -> None:
    settings = make_settings(database_url)
    async with running_app(settings, drop_database=False) as app:
        container: Container = app.state.container
        await container.collections.create(CollectionIn(**NOTES))
        # Someone drops an index behind our back (or the storage was restored without them).
        await container.db["docs_notes"].drop_index("by_score")
    async with running_app(settings) as app:
        indexes = await app.state.container.db["docs_notes"].index_information()
    assert indexes["by_score"]["key"] == [("data.score", -1), ("created_at", 1), ("_id", 1)]


async def test_an_index_like_the_built_in_ones_is_refused_with_a_reason(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for fields in (["created_at"], ["owner", "created_at"], ["created_at", "id"]):
        response = await create(
            client, admin, {"name": "notes", "indexes": [{"name": "mine", "fields": fields}]}
        )
        body = assert_problem(response, 422, "validation_failed")
        assert body["errors"][0]["loc"] == ["body", "indexes", 0, "fields"]
        assert "already" in body["detail"]
    # The other direction, or an expiring one, is a different index: accepted.
    response = await create(
        client,
        admin,
        {
            "name": "notes",
            "indexes": [
                {"name": "newest", "fields": ["-created_at"]},
                {"name": "expire", "fields": ["created_at"], "expire_after_seconds": 60},
            ],
        },
    )
    assert response.status_code == 201, response.text


async def test_two_indexes_on_the_same_fields_are_refused_not_a_server_error(
    client: httpx.AsyncClient, admin: Account
) -> None:
    twins = [{"name": "a", "fields": ["data.x"]}, {"name": "b", "fields": ["data.x"]}]
    created = await create(client, admin, {"name": "notes", "indexes": twins})
    body = assert_problem(created, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "indexes", 1, "fields"]
    assert (await create(client, admin, {"name": "notes"})).status_code == 201
    patched = await client.patch(
        "/v1/collections/notes", json={"access": None, "indexes": twins}, headers=admin.headers
    )
    assert_problem(patched, 422, "validation_failed")
    got = await client.get("/v1/collections/notes", headers=admin.headers)
    assert got.json()["indexes"] == []


async def test_an_older_declaration_on_built_in_keys_still_starts(database_url: str) -> None:
    """Declared before the built-in indexes existed: start-up keeps it instead of failing."""
    settings = make_settings(database_url)
    async with running_app(settings, drop_database=False) as app:
        container: Container = app.state.container
        await container.collections.create(CollectionIn(name="notes"))
        await container.db["collections"].update_one(
            {"_id": "notes"},
            {"$set": {"indexes": [{"name": "by_created", "fields": ["created_at"]}]}},
        )
        await container.db["docs_notes"].drop_index("_created")
    async with running_app(settings) as app:
        indexes = await app.state.container.db["docs_notes"].index_information()
    assert indexes["by_created"]["key"] == [("created_at", 1), ("_id", 1)]
    assert "_created" not in indexes
    assert "_owner" in indexes


async def test_a_change_waits_for_the_turn_and_a_dead_holders_turn_lapses(
    client: httpx.AsyncClient,
    admin: Account,
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Declaration changes take turns across processes; a turn held past the wait is
    409 write_conflict and changes nothing, and one whose holder died lapses."""
    repository = container.collections.repository
    monkeypatch.setattr(repository, "lock_wait", 0.05)
    soon = utc_now() + timedelta(seconds=30)
    held = {"_id": "declarations", "owner": ObjectId(), "lease_until": soon}
    await repository.locks.insert_one(held)  # another process, changing a declaration
    busy = await client.post("/v1/collections", json={"name": "later"}, headers=admin.headers)
    assert_problem(busy, 409, "write_conflict")
    assert (await client.get("/v1/collections/later", headers=admin.headers)).status_code == 404
    lapsed = {"$set": {"lease_until": utc_now() - timedelta(seconds=1)}}
    await repository.locks.update_one({"_id": "declarations"}, lapsed)  # its process died
    made = await client.post("/v1/collections", json={"name": "later"}, headers=admin.headers)
    assert made.status_code == 201, made.text
    assert await repository.locks.count_documents({}) == 0  # the turn was given back


async def test_a_change_keeps_its_turn_for_as_long_as_it_runs(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index build on a big collection can outlast the turn's lease: the holder renews
    it, so another process cannot take the turn in the middle of the change (a renewal
    that meets a database error tries again)."""
    repository = container.collections.repository
    monkeypatch.setattr(repository, "lock_seconds", 0.3)
    hold = repository._hold
    failures: list[ObjectId] = []

    async def first_renewal_fails(token: ObjectId, clock: Clock) -> bool:
        if not failures and await repository.locks.count_documents({}):
            failures.append(token)
            raise AutoReconnect("the database went away for a moment")
        return await hold(token, clock)

    monkeypatch.setattr(repository, "_hold", first_renewal_fails)
    async with repository.declaring(utc_now):  # a change under way, its indexes building
        first = await repository.locks.find_one({"_id": "declarations"})
        assert first is not None

        async def renewed() -> bool:
            now = await repository.locks.find_one({"_id": "declarations"})
            return now is not None and now["lease_until"] > first["lease_until"]

        await until(renewed, within=10)
        assert failures  # the failed renewal came first; a later one renewed
        # Another process, once the first lease would have lapsed, finds the turn taken.
        later = first["lease_until"] + timedelta(milliseconds=1)
        other = ObjectId()
        taken = await take_lease(
            repository.locks, "declarations", other, now=later, until=later + timedelta(seconds=30)
        )
        assert not taken
    assert await repository.locks.count_documents({}) == 0  # given back at the end


async def test_a_turn_taken_over_mid_change_is_reported_and_left_to_its_new_holder(
    container: Container, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a process stalled for a whole lease loses its turn: the holder says so in
    the log, and does not give back what another process now holds."""
    repository = container.collections.repository
    monkeypatch.setattr(repository, "lock_seconds", 0.3)
    other = {"owner": ObjectId(), "lease_until": utc_now() + timedelta(seconds=30)}
    async with repository.declaring(utc_now):
        await repository.locks.update_one({"_id": "declarations"}, {"$set": other})

        async def reported() -> bool:
            return any("lapsed while a change" in r.getMessage() for r in caplog.records)

        await until(reported, within=10)
    held = await repository.locks.find_one({"_id": "declarations"})
    assert held is not None and held["owner"] == other["owner"]

"""Each process keeps its callers' account state and collection declarations in memory
(app/db/change_feed.py). A change made anywhere still takes effect: in this process at
once, in others as soon as the change stream delivers it, and never from a cache that
the stream no longer vouches for."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import pytest
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.accounts.models import Role
from app.accounts.tokens import (
    AccessTokenVerifier,
    TokenExpired,
    TokenInvalid,
    issue_access_token,
)
from app.clock import utc_now
from app.db.change_feed import ChangeFeed, ReadCache
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.feeds import container_of, feed_of
from tests.support.problems import assert_problem

OWNED = {"name": "notes", "access": {"read": "owner", "write": "owner"}}


async def note_of(client: httpx.AsyncClient, owner: Account) -> str:
    """The path of a new document in `notes` that only `owner` (and admins) may read."""
    response = await client.post(
        "/v1/collections/notes/documents", json={"text": "mine"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return f"/v1/collections/notes/documents/{response.json()['id']}"


async def user_with_a_note(app: FastAPI, client: httpx.AsyncClient) -> tuple[Account, str]:
    user = await signed_in(app, client)
    return user, await note_of(client, user)


async def stop_following_but_trust(feed: ChangeFeed) -> None:
    """Stop following the stream but keep trusting the cache, as if events were late:
    what this process sees then is its own invalidation only."""
    await feed.stop()
    feed.lease_seconds = 3600
    feed._renew()


async def read_through(app: FastAPI, client: httpx.AsyncClient, user: Account, path: str) -> None:
    """`user` reads `path` through `app`, which then holds the user's principal in memory."""
    # First the events of what came before (the user's creation and sign-in): applied
    # later, they would drop the copy this read makes.
    await feed_of(app).settled()
    assert (await client.get(path, headers=user.headers)).status_code == 200
    assert user.id in container_of(app).users.principals  # type: ignore[operator]


@pytest.fixture
async def two_processes(database_url: str) -> Any:
    """Two apps on one database, as two API workers would be."""
    settings = make_settings(database_url)
    async with (
        running_app(settings) as a,
        running_app(settings, drop_database=False) as b,
        http_client(a) as client_a,
        http_client(b) as client_b,
    ):
        admin = await signed_in(a, client_a, role=Role.ADMIN)
        created = await client_a.post("/v1/collections", json=OWNED, headers=admin.headers)
        assert created.status_code == 201, created.text
        yield a, b, client_a, client_b, admin


async def test_disabling_a_user_in_one_process_locks_them_out_of_another(
    two_processes: Any,
) -> None:
    a, b, client_a, client_b, admin = two_processes
    user, path = await user_with_a_note(a, client_a)
    # b now answers this user from memory...
    await read_through(b, client_b, user, path)

    disabled = await client_a.patch(
        f"/v1/users/{user.id}", json={"disabled": True}, headers=admin.headers
    )
    assert disabled.status_code == 200

    # ...until the change stream tells it otherwise.
    await feed_of(b).settled()
    assert_problem(await client_b.get(path, headers=user.headers), 401, "token_invalid")


async def test_logout_all_in_one_process_revokes_tokens_in_another(two_processes: Any) -> None:
    a, b, client_a, client_b, _ = two_processes
    user, path = await user_with_a_note(a, client_a)
    await read_through(b, client_b, user, path)

    assert (await client_a.post("/v1/auth/logout-all", headers=user.headers)).status_code == 204

    # In the process that did it: at once, no event needed.
    assert_problem(await client_a.get(path, headers=user.headers), 401, "token_invalid")
    await feed_of(b).settled()
    assert_problem(await client_b.get(path, headers=user.headers), 401, "token_invalid")


async def test_a_change_made_outside_the_api_reaches_every_process(two_processes: Any) -> None:
    """Ops scripts and mongosh write to MongoDB directly."""
    a, b, client_a, client_b, _ = two_processes
    user, path = await user_with_a_note(a, client_a)
    for client in (client_a, client_b):
        assert (await client.get(path, headers=user.headers)).status_code == 200

    settings = container_of(a).settings
    script: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        await script[settings.mongodb_db]["users"].update_one(
            {"_id": ObjectId(user.id)}, {"$inc": {"token_version": 1}}
        )
    finally:
        await script.close()

    for app, client in ((a, client_a), (b, client_b)):
        # Every change committed so far applied, that one included (waiting for "one more
        # event" could be met by an earlier one still on its way: the sign-in's).
        await feed_of(app).settled()
        assert_problem(await client.get(path, headers=user.headers), 401, "token_invalid")


async def test_closing_a_collection_in_one_process_closes_it_in_another(
    two_processes: Any,
) -> None:
    _, b, client_a, client_b, admin = two_processes
    public = await client_a.patch(
        "/v1/collections/notes", json={"access": {"read": "public"}}, headers=admin.headers
    )
    assert public.status_code == 200, public.text
    path = await note_of(client_a, admin)
    # Anonymous reads work while the collection is public (b caches that declaration).
    assert (await client_b.get(path)).status_code == 200

    closed = await client_a.patch(
        "/v1/collections/notes", json={"access": {"read": "owner"}}, headers=admin.headers
    )
    assert closed.status_code == 200

    assert (await client_a.get(path)).status_code == 401
    await feed_of(b).settled()
    assert (await client_b.get(path)).status_code == 401


async def test_without_the_change_stream_every_request_reads_the_database(
    two_processes: Any,
) -> None:
    """What happens when the stream fails (database down, no replica set): the cache is
    emptied and not used, so nothing is served from memory the stream cannot vouch for."""
    a, b, client_a, client_b, _ = two_processes
    user, path = await user_with_a_note(a, client_a)
    assert (await client_b.get(path, headers=user.headers)).status_code == 200
    feed = feed_of(b)
    await feed.stop()
    assert not feed.trusted()
    assert len(container_of(b).users.principals or []) == 0

    await (
        container_of(a)
        .db["users"]
        .update_one({"_id": ObjectId(user.id)}, {"$set": {"disabled": True}})
    )

    # No event needed: b reads the account again.
    assert_problem(await client_b.get(path, headers=user.headers), 401, "token_invalid")


async def test_turned_off_the_cache_is_not_built(database_url: str) -> None:
    settings = make_settings(database_url, read_cache=False)
    async with running_app(settings) as app, http_client(app) as client:
        user = await signed_in(app, client)
        assert container_of(app).feed is None
        assert container_of(app).users.principals is None
        assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200


async def test_a_read_that_overlaps_an_invalidation_is_not_kept() -> None:
    """The read may have seen the state from before the change: keeping it would keep
    the stale state until the next change."""
    cache: ReadCache[str, str] = ReadCache(max_entries=10)
    cache.follow(lambda: True)
    release = asyncio.Event()
    reads = 0

    async def read(value: str) -> str:
        nonlocal reads
        reads += 1
        await release.wait()
        return value

    in_flight = asyncio.create_task(cache.load("k", lambda: read("old")))
    await asyncio.sleep(0)  # let the load start and block in read()
    assert reads == 1
    cache.invalidate("k")
    release.set()
    assert await in_flight == "old"

    assert await cache.load("k", lambda: read("new")) == "new"
    assert await cache.load("k", lambda: read("newer")) == "new"
    assert reads == 2


async def test_the_cache_holds_at_most_its_size() -> None:
    cache: ReadCache[int, int] = ReadCache(max_entries=3)
    cache.follow(lambda: True)

    async def value(i: int) -> int:
        return i

    for i in range(10):
        await cache.load(i, lambda i=i: value(i))  # type: ignore[misc]
    assert len(cache) == 3
    assert 9 in cache and 0 not in cache


def test_a_remembered_token_still_expires(settings: Any) -> None:
    issued = utc_now()
    token = issue_access_token(
        settings, user_id=str(ObjectId()), token_version=0, session_id=None, now=issued
    )
    clock = time.time
    verifier = AccessTokenVerifier(settings, max_entries=10, now=lambda: clock())
    claims = verifier.verify(token)
    assert verifier.verify(token) == claims

    clock = lambda: float(claims.expires_at)  # noqa: E731 - the second it expires
    with pytest.raises(TokenExpired):
        verifier.verify(token)


def test_a_token_that_fails_verification_is_not_remembered(settings: Any) -> None:
    claims = {"sub": "x", "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, "another key of at least thirty-two bytes", algorithm="HS256")
    verifier = AccessTokenVerifier(settings, max_entries=10)
    for _ in range(2):
        with pytest.raises(TokenInvalid):
            verifier.verify(forged)
    assert len(verifier) == 0


async def test_this_process_sees_its_own_revocations_without_the_stream(
    two_processes: Any,
) -> None:
    """The process that makes a change drops its cached copy when the write returns: its
    next request sees the change even if the stream's event were never to come."""
    a, _, client_a, _, admin = two_processes
    user, path = await user_with_a_note(a, client_a)
    other, other_path = await user_with_a_note(a, client_a)
    await stop_following_but_trust(feed_of(a))
    for account, doc in ((user, path), (other, other_path)):
        assert (await client_a.get(doc, headers=account.headers)).status_code == 200
    assert other.id in container_of(a).users.principals  # type: ignore[operator]

    assert (await client_a.post("/v1/auth/logout-all", headers=user.headers)).status_code == 204
    assert_problem(await client_a.get(path, headers=user.headers), 401, "token_invalid")

    disabled = await client_a.patch(
        f"/v1/users/{other.id}", json={"disabled": True}, headers=admin.headers
    )
    assert disabled.status_code == 200
    assert_problem(await client_a.get(other_path, headers=other.headers), 401, "token_invalid")

    opened = await client_a.patch(
        "/v1/collections/notes", json={"access": {"read": "public"}}, headers=admin.headers
    )
    assert opened.status_code == 200
    assert (await client_a.get(path)).status_code == 200


async def test_a_user_id_spelled_in_upper_case_names_the_same_account(
    two_processes: Any,
) -> None:
    """ObjectId accepts upper-case hex; the cache, the self-checks and document ownership
    must all treat it as the same account."""
    a, _, client_a, _, admin = two_processes
    user, path = await user_with_a_note(a, client_a)
    await stop_following_but_trust(feed_of(a))
    assert (await client_a.get(path, headers=user.headers)).status_code == 200

    disabled = await client_a.patch(
        f"/v1/users/{user.id.upper()}", json={"disabled": True}, headers=admin.headers
    )
    assert disabled.status_code == 200
    assert_problem(await client_a.get(path, headers=user.headers), 401, "token_invalid")

    self_disable = await client_a.patch(
        f"/v1/users/{admin.id.upper()}", json={"disabled": True}, headers=admin.headers
    )
    assert_problem(self_disable, 403, "forbidden")

    deleted = await client_a.delete(f"/v1/users/{user.id.upper()}", headers=admin.headers)
    assert deleted.status_code == 204
    # The account's documents went with it.
    assert (await client_a.get(path, headers=admin.headers)).status_code == 404


async def test_deleting_a_user_in_one_process_locks_them_out_of_another(
    two_processes: Any,
) -> None:
    a, b, client_a, client_b, admin = two_processes
    user, path = await user_with_a_note(a, client_a)
    await read_through(b, client_b, user, path)

    assert (await client_a.delete(f"/v1/users/{user.id}", headers=admin.headers)).status_code == 204

    await feed_of(b).settled()
    assert_problem(await client_b.get(path, headers=user.headers), 401, "token_invalid")


async def test_dropping_the_declarations_outside_the_api_empties_every_cache(
    two_processes: Any,
) -> None:
    """An event without a document key (drop, rename) may have changed anything."""
    a, b, client_a, client_b, _ = two_processes
    user, path = await user_with_a_note(a, client_a)
    await read_through(b, client_b, user, path)

    await container_of(a).db.drop_collection("collections")

    await feed_of(b).settled()
    assert_problem(await client_b.get(path, headers=user.headers), 404, "collection_not_found")


async def test_changing_a_collection_starts_from_its_stored_declaration(
    two_processes: Any,
) -> None:
    """A change must not write back a cached copy that another process has just changed."""
    _, b, client_a, client_b, admin = two_processes
    await stop_following_but_trust(feed_of(b))  # b will not hear of a's change
    assert (await client_b.get("/v1/collections/notes", headers=admin.headers)).status_code == 200
    assert "notes" in container_of(b).collections.repository.cache  # type: ignore[operator]

    made_public = await client_a.patch(
        "/v1/collections/notes", json={"access": {"read": "public"}}, headers=admin.headers
    )
    assert made_public.status_code == 200
    described = await client_b.patch(
        "/v1/collections/notes", json={"description": "shared notes"}, headers=admin.headers
    )
    assert described.status_code == 200
    assert described.json()["access"]["read"] == "public"
    assert described.json()["description"] == "shared notes"


async def test_signing_out_in_one_process_kills_the_access_token_in_another(
    two_processes: Any,
) -> None:
    a, b, client_a, client_b, _ = two_processes
    user, path = await user_with_a_note(a, client_a)
    await read_through(b, client_b, user, path)

    out = await client_a.post("/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert out.status_code == 204

    await feed_of(b).settled()
    assert_problem(await client_b.get(path, headers=user.headers), 401, "token_invalid")

"""Realtime events (product §9): a write through one server process reaches streams on
another; access rules, filters, resume, tickets, caps and sign-out all hold.

Process A is the in-process app (`client`); process B is `python -m app` in a child
process on the same database, started once for the module. Streams are read from B over
real HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.accounts.models import Role
from app.accounts.principal import Principal
from app.clock import utc_now
from app.collections.schemas import CollectionIn
from app.realtime.hub import Change, RealtimeHub, Subscriber, network_of
from tests.support.accounts import PASSWORD, Account
from tests.support.browser import BROWSER_ARGS, CHROMIUM
from tests.support.problems import assert_problem
from tests.support.servers import ServerProcess, api_server
from tests.support.waiting import until

# A guard against a hang, not a measurement: every wait below ends on an event.
HANG_GUARD = 30


@dataclass
class Event:
    event: str
    id: str | None
    data: Any


class EventReader:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> Event:
        async with asyncio.timeout(HANG_GUARD):
            kind, event_id, data = "message", None, list[str]()
            async for line in self._lines:
                if not line:
                    if data:
                        return Event(kind, event_id, json.loads("\n".join(data)))
                    continue
                if line.startswith(":"):
                    continue  # heartbeat
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    kind = value
                elif name == "id":
                    event_id = value
                elif name == "data":
                    data.append(value)
        raise AssertionError("the stream closed")

    async def next_change(self) -> Event:
        """The next event that is not a `ready`."""
        while (event := await self.next()).event == "ready":
            pass
        return event


@dataclass
class ProcessB:
    """Process B, kept for the module: starting uvicorn costs about a second a test."""

    stack: ExitStack = field(default_factory=ExitStack)
    url: str = ""
    process: ServerProcess | None = None
    # The shared app (process A) B was started beside: the same one means the same
    # database, never dropped in between.
    app: FastAPI | None = None


@pytest.fixture(scope="module")
def process_b() -> Iterator[ProcessB]:
    b = ProcessB()
    with b.stack:  # stops B after the module's last test
        yield b


@pytest.fixture
async def server_b(settings: Any, app: FastAPI, process_b: ProcessB) -> str:
    """Process B's URL. The first test that asks starts it, once process A (the `app`
    fixture) has made the database; every later one first waits for B to catch up with
    the wipe that ended the test before (`caught_up`)."""
    if process_b.process is None:
        env = {
            "JWT_SECRET": settings.jwt_secret,
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_KIB": "64",
            "REALTIME_MAX_STREAMS_PER_USER": "2",
            "REALTIME_MAX_STREAMS_PER_ADDRESS": "2",
        }
        assert settings.mongodb_url is not None
        server = api_server(settings.mongodb_url, settings.mongodb_db, **env)
        # In a thread: process A (this loop) keeps serving while B starts.
        url, process = await asyncio.to_thread(process_b.stack.enter_context, server)
        process_b.url, process_b.process, process_b.app = url, process, app
        return url
    assert app is process_b.app, "process B serves the shared app's database only"
    if process_b.process.poll() is not None:
        assert process_b.process.stderr is not None
        pytest.fail(f"process B exited: {process_b.process.stderr.read().decode()[-2000:]}")
    await caught_up(app, process_b.url)
    await no_streams_open(process_b.url)
    return process_b.url


async def no_streams_open(base: str) -> None:
    """Return once B has freed the slots of every stream the tests before opened (it
    frees one when it notices the client left), so caps start from zero."""
    async with httpx.AsyncClient(base_url=base) as http:

        async def empty() -> bool:
            metrics = (await http.get("/metrics")).text
            open_now = re.findall(r"^docstore_realtime_streams(?:\{[^}]*\})? (\S+)$", metrics, re.M)
            return bool(open_now) and sum(float(v) for v in open_now) == 0

        await until(empty, within=30)


async def caught_up(app: FastAPI, base: str) -> None:
    """Return once process B has applied every change made to the database so far.

    The wipe between tests deletes and drops through process A. B's read caches forget
    what it removed only as B's change stream delivers it, a moment later (a database's
    stream reports each deletion and collection drop in order and goes on; no
    `invalidate`), so a test could otherwise meet the last one's declarations in B. A
    change stream delivers in order: once B has acted on a change made now, it has
    applied the wipe. The change: deleting a user whose stream on B then ends
    (`user_deleted` is decided after B's cache has forgotten the user). What it makes
    it removes; its names are its own, so whatever B still holds of them is never read.
    """
    container = app.state.container
    tag = uuid.uuid4().hex[:12]
    user = await container.auth.create_user(
        email=f"sentinel-{tag}@example.com", password=PASSWORD, name="Sentinel", role=Role.USER
    )
    name = f"sentinel_{tag}"
    await container.collections.create(CollectionIn(name=name))
    principal = await container.auth.users.get_principal(user.id)
    ticket = await container.realtime.issue_ticket(principal)
    async with stream(base, name, None, ticket=ticket) as events:
        assert await container.auth.users.delete(user.id)
        end = await events.next_change()
        assert (end.event, end.data) == ("end", {"reason": "user_deleted"})
    await container.collections.delete(name)


@asynccontextmanager
async def stream(
    base: str,
    name: str,
    account: Account | None = None,
    **params: str,
) -> AsyncIterator[EventReader]:
    headers = account.headers if account is not None else {}
    last = params.pop("last_event_id_header", None)
    if last is not None:
        headers = {**headers, "Last-Event-ID": last}
    async with (
        httpx.AsyncClient(base_url=base, timeout=HANG_GUARD) as http,
        http.stream("GET", f"/v1/collections/{name}/events", headers=headers, params=params) as r,
    ):
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(r)
        reader.ready = await reader.next()  # type: ignore[attr-defined]
        assert reader.ready.event == "ready"  # type: ignore[attr-defined]
        yield reader


async def declare(client: httpx.AsyncClient, admin: Account, name: str, read: str) -> None:
    body = {"name": name, "access": {"read": read, "write": "authenticated"}}
    response = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text


async def create(client: httpx.AsyncClient, who: Account, name: str, data: Any) -> str:
    url = f"/v1/collections/{name}/documents"
    response = await client.post(url, json=data, headers=who.headers)
    assert response.status_code == 201, response.text
    doc_id: str = response.json()["id"]
    return doc_id


async def test_a_write_on_one_process_reaches_a_stream_on_another(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "notes", "owner")
    async with stream(server_b, "notes", user) as events:
        doc_id = await create(client, user, "notes", {"text": "hello"})
        created = await events.next_change()
        assert created.event == "created"
        assert created.data["id"] == doc_id and created.data["data"] == {"text": "hello"}
        assert created.id
        url = f"/v1/collections/notes/documents/{doc_id}"
        assert (await client.patch(url, json={"text": "bye"}, headers=user.headers)).is_success
        updated = await events.next_change()
        assert (updated.event, updated.data["data"], updated.data["version"]) == (
            "updated",
            {"text": "bye"},
            2,
        )
        assert (await client.delete(url, headers=user.headers)).status_code == 204
        deleted = await events.next_change()
        assert (deleted.event, deleted.data) == ("deleted", {"id": doc_id})


async def test_another_users_changes_never_arrive_deletions_included(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account, server_b: str
) -> None:
    await declare(client, admin, "private", "owner")
    async with (
        stream(server_b, "private", user) as mine,
        stream(server_b, "private", admin) as all_,
    ):
        # The admin reads everything: each change arrives there before the next is made.
        theirs = await create(client, other_user, "private", {"secret": 1})
        assert (await all_.next_change()).event == "created"
        url = f"/v1/collections/private/documents/{theirs}"
        await client.patch(url, json={"secret": 2}, headers=other_user.headers)
        assert (await all_.next_change()).event == "updated"
        assert (await client.delete(url, headers=other_user.headers)).status_code == 204
        assert (await all_.next_change()).event == "deleted"
        marker = await create(client, user, "private", {"mine": True})
        seen = await mine.next_change()
        assert (seen.event, seen.data["id"]) == ("created", marker)
        assert (await all_.next_change()).data["id"] == marker


async def test_sharing_makes_a_document_appear_on_a_stream_and_revoking_makes_it_disappear(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account, server_b: str
) -> None:
    rules = {"read": "owner == @user || @user in shared.read"}
    body = {"name": "lists", "access": {"write": "authenticated", "rules": rules}}
    assert (await client.post("/v1/collections", json=body, headers=admin.headers)).is_success
    async with stream(server_b, "lists", other_user) as theirs:
        doc = await create(client, user, "lists", {"title": "Groceries"})  # not theirs: no event
        shares = f"/v1/collections/lists/documents/{doc}/shares"
        grant = {"user": other_user.id, "access": "read"}
        assert (await client.post(shares, json=grant, headers=user.headers)).status_code == 201
        appeared = await theirs.next_change()
        assert (appeared.event, appeared.data["id"]) == ("created", doc)
        assert appeared.data["data"] == {"title": "Groceries"}
        revoked = await client.delete(f"{shares}/users/{other_user.id}", headers=user.headers)
        assert revoked.status_code == 204, revoked.text
        gone = await theirs.next_change()
        assert (gone.event, gone.data["id"]) == ("deleted", doc)
        # Changes it can no longer see stay away; the next one it can, arrives.
        url = f"/v1/collections/lists/documents/{doc}"
        await client.patch(url, json={"title": "Secret"}, headers=user.headers)
        theirs_now = await create(client, other_user, "lists", {"title": "Mine"})
        seen = await theirs.next_change()
        assert (seen.event, seen.data["id"]) == ("created", theirs_now)


async def test_filter_selects_created_and_updated_documents(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "tasks", "authenticated")
    open_only = json.dumps({"data.done": False})
    async with stream(server_b, "tasks", user, filter=open_only) as events:
        await create(client, user, "tasks", {"done": True})
        wanted = await create(client, user, "tasks", {"done": False})
        first = await events.next_change()
        assert (first.event, first.data["id"]) == ("created", wanted)


async def test_resume_with_last_event_id_gives_exactly_the_missed_events(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "log", "owner")
    async with stream(server_b, "log", user) as events:
        first = await create(client, user, "log", {"n": 0})
        seen = await events.next_change()
        assert seen.data["id"] == first
        last_id = seen.id
    assert last_id is not None
    missed = [await create(client, user, "log", {"n": n}) for n in (1, 2, 3)]
    async with stream(server_b, "log", user, last_event_id_header=last_id) as resumed:
        # `ready` leaves the client's id alone: a drop before the replay loses nothing.
        assert resumed.ready.id is None  # type: ignore[attr-defined]
        got = [(await resumed.next_change()).data["id"] for _ in missed]
        assert got == missed
        after = await create(client, user, "log", {"n": 4})
        # Nothing repeated: the next event is the new write.
        assert (await resumed.next_change()).data["id"] == after


async def test_resume_from_the_ready_id_loses_nothing_written_while_away(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "quiet", "owner")
    async with stream(server_b, "quiet", user) as events:
        ready_id = events.ready.id  # type: ignore[attr-defined]
    written = await create(client, user, "quiet", {"n": 1})
    async with stream(server_b, "quiet", user, last_event_id=ready_id) as resumed:
        assert (await resumed.next_change()).data["id"] == written


async def test_joining_or_leaving_a_team_tells_the_members_streams_to_list_again(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    """Team rules may now show the member other documents, with no document changing:
    the member's streams say `reset` (list again); other users' streams say nothing."""
    container = app.state.container
    await declare(client, admin, "tasks", "authenticated")
    owner = await container.auth.users.get_principal(admin.id)
    team = (await container.teams.create(owner, "Crew")).team.id
    await caught_up(app, server_b)  # B has applied the team's making (the admin joined it)
    async with stream(server_b, "tasks", user) as mine, stream(server_b, "tasks", admin) as theirs:
        await container.teams.repository.add_member(team, user.id, "member", now=utc_now())
        joined = await mine.next_change()
        assert (joined.event, joined.data) == ("reset", {"reason": "membership_changed"})
        assert joined.id is not None  # a resume point, as every other event
        await container.teams.repository.remove_member(team, user.id)
        left = await mine.next_change()
        assert (left.event, left.data) == ("reset", {"reason": "membership_changed"})
        # The admin's stream saw none of it; the next thing it sees is a document.
        made = await create(client, user, "tasks", {"n": 1})
        assert (await theirs.next_change()).data["id"] == made


async def test_an_unknown_last_event_id_resets(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "r", "owner")
    for forged in ({"last_event_id_header": "forged.id"}, {"last_event_id": "a.\u00e9t\u00e9"}):
        async with stream(server_b, "r", user, **forged) as events:
            reset = await events.next_change()
            assert (reset.event, reset.data) == ("reset", {"reason": "unknown_event_id"})
            # It carries where the stream starts: the next reconnect resumes from there.
            assert reset.id == events.ready.id  # type: ignore[attr-defined]
            assert reset.id is not None


async def test_resume_is_not_ended_by_another_collections_deletion(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "kept", "owner")
    await declare(client, admin, "scratch", "owner")
    await create(client, user, "scratch", {"tmp": True})  # its storage exists, to drop
    db = app.state.container.db
    await db["ops_scratch"].insert_one({"an": "operator's own collection"})
    async with stream(server_b, "kept", user) as events:
        ready_id = events.ready.id  # type: ignore[attr-defined]
    dropped = await client.delete("/v1/collections/scratch", headers=admin.headers)
    assert dropped.status_code == 204, dropped.text
    await db["ops_scratch"].drop()
    written = await create(client, user, "kept", {"n": 1})
    async with stream(server_b, "kept", user, last_event_id=ready_id) as resumed:
        got = await resumed.next_change()
        assert (got.event, got.data["id"]) == ("created", written)


async def test_filters_differing_only_in_key_order_are_different_filters(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    # MongoDB compares embedded documents key by key, in order.
    await declare(client, admin, "shapes", "authenticated")
    ab = json.dumps({"data.x": {"a": 1, "b": 2}})
    ba = json.dumps({"data.x": {"b": 2, "a": 1}})
    async with (
        stream(server_b, "shapes", user, filter=ab) as first,
        stream(server_b, "shapes", user, filter=ba) as second,
    ):
        one = await create(client, user, "shapes", {"x": {"a": 1, "b": 2}})
        two = await create(client, user, "shapes", {"x": {"b": 2, "a": 1}})
        assert (await first.next_change()).data["id"] == one
        assert (await second.next_change()).data["id"] == two


async def test_a_busy_stream_still_ends_when_its_sign_in_does(
    settings: Any, app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """Without the read cache (no account change feed), the stream re-checks the sign-in
    every heartbeat even while events keep it busy."""
    await declare(client, admin, "busy", "authenticated")
    env = {
        "JWT_SECRET": settings.jwt_secret,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "64",
        "READ_CACHE": "false",
        "REALTIME_HEARTBEAT_SECONDS": "0.2",
    }
    with api_server(settings.mongodb_url, settings.mongodb_db, **env) as (url, _):
        async with stream(url, "busy", user) as events:
            response = await client.post("/v1/auth/logout-all", headers=user.headers)
            assert response.status_code == 204
            while True:  # writes keep coming until the stream ends
                await create(client, admin, "busy", {"tick": True})
                event = await events.next_change()
                if event.event == "end":
                    assert event.data == {"reason": "signed_out"}
                    break
                assert event.event == "created"


async def test_logout_everywhere_ends_the_stream(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "chat", "authenticated")
    async with stream(server_b, "chat", user) as events:
        response = await client.post("/v1/auth/logout-all", headers=user.headers)
        assert response.status_code == 204
        end = await events.next_change()
        assert (end.event, end.data) == ("end", {"reason": "signed_out"})


async def test_a_stream_opened_with_an_api_key_ends_when_a_reset_ends_the_keys(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "ledger", "authenticated")
    made = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "n", "current_password": PASSWORD},
        headers=user.headers,
    )
    as_key = dataclasses.replace(user, access_token=made.json()["key"])
    async with stream(server_b, "ledger", as_key) as events:
        # What a password reset does to the account's keys (on the other process).
        await app.state.container.auth.revoke_all_api_keys(user.id)
        end = await events.next_change()
        assert (end.event, end.data) == ("end", {"reason": "revoked"})


async def test_disabling_the_user_ends_the_stream(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "feed", "authenticated")
    async with stream(server_b, "feed", user) as events:
        response = await client.patch(
            f"/v1/users/{user.id}", json={"disabled": True}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        end = await events.next_change()
        assert (end.event, end.data) == ("end", {"reason": "user_disabled"})


async def test_a_ticket_opens_one_stream_once(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "board", "owner")
    issued = await client.post("/v1/realtime/tickets", headers=user.headers)
    assert issued.status_code == 201
    assert issued.headers["cache-control"] == "no-store"
    ticket = issued.json()["ticket"]
    assert issued.json()["expires_in"] == 30
    async with stream(server_b, "board", None, ticket=ticket) as events:
        doc_id = await create(client, user, "board", {"x": 1})
        assert (await events.next_change()).data["id"] == doc_id
        async with httpx.AsyncClient(base_url=server_b) as http:
            again = await http.get("/v1/collections/board/events", params={"ticket": ticket})
            assert_problem(again, 401, "invalid_ticket")


async def test_the_per_user_cap_answers_429(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "capped", "authenticated")
    async with (
        stream(server_b, "capped", user),
        stream(server_b, "capped", user),
        httpx.AsyncClient(base_url=server_b) as http,
    ):
        third = await http.get("/v1/collections/capped/events", headers=user.headers)
        assert_problem(third, 429, "too_many_streams")
        assert int(third.headers["retry-after"]) > 0
    # Closed streams free their places.
    async with stream(server_b, "capped", user):
        pass


async def test_anonymous_streams_have_a_per_address_cap(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "news", "public")
    async with (
        stream(server_b, "news"),
        stream(server_b, "news"),
        httpx.AsyncClient(base_url=server_b) as http,
    ):
        third = await http.get("/v1/collections/news/events")
        assert_problem(third, 429, "too_many_streams")
        assert "anonymous" in third.json()["detail"]
        # Signing in from the same address counts against the user instead.
        async with stream(server_b, "news", user):
            pass
    async with stream(server_b, "news"):
        pass


async def test_streams_end_with_shutdown_and_the_server_exits(
    settings: Any, app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "bye", "authenticated")
    env = {"JWT_SECRET": settings.jwt_secret, "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "64"}
    with api_server(settings.mongodb_url, settings.mongodb_db, **env) as (url, process):
        async with stream(url, "bye", user) as events:
            process.send_signal(signal.SIGTERM)
            end = await events.next_change()
            assert (end.event, end.data) == ("end", {"reason": "shutdown"})
        # uvicorn re-raises the signal once its graceful shutdown is done.
        assert await asyncio.to_thread(process.wait, HANG_GUARD) in (0, -signal.SIGTERM)


async def test_stream_errors_are_problems(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "closed", "owner")
    assert_problem(await client.get("/v1/collections/closed/events"), 401, "not_authenticated")
    assert_problem(
        await client.get("/v1/collections/nope/events", headers=user.headers),
        404,
        "collection_not_found",
    )
    assert_problem(
        await client.get(
            "/v1/collections/closed/events", params={"filter": "{"}, headers=user.headers
        ),
        400,
        "invalid_filter",
    )
    assert_problem(
        await client.get("/v1/collections/closed/events", params={"ticket": "rt_nope"}),
        401,
        "invalid_ticket",
    )
    assert_problem(await client.post("/v1/realtime/tickets"), 401, "not_authenticated")


@pytest.mark.own_app
async def test_without_a_change_stream_the_endpoint_answers_503(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "off", "authenticated")
    await app.state.container.realtime.hub.stop()  # as if the database had no streams
    response = await client.get("/v1/collections/off/events", headers=user.headers)
    assert_problem(response, 503, "realtime_unavailable")
    assert response.headers["retry-after"]


def test_a_slow_consumer_is_dropped_without_holding_others_back() -> None:
    caller = Principal(id="u", role=Role.USER, disabled=False, token_version=0)
    slow, fast = Subscriber("c", caller, buffer=2), Subscriber("c", caller, buffer=2)
    for n in range(3):
        change = Change({"_data": str(n)}, "c", "created")
        slow.push(change)
        fast.push(change)
        fast.pending.popleft()  # the fast one reads as it goes
    assert slow.end_reason == "slow_consumer" and not slow.pending
    assert fast.end_reason is None


async def test_changes_a_resume_replayed_are_not_sent_again() -> None:
    """The shared stream can hand over a change the private replay already sent."""
    sub = Subscriber("c", None, buffer=8)
    sub.replayed = {"1", "2"}
    for n in ("1", "2", "3", "1"):
        sub.push(Change({"_data": n}, "c", "created"))
    got = [await sub.next(HANG_GUARD) for _ in range(2)]
    assert [c.token["_data"] for c in got if c is not None] == ["3", "1"]


async def test_a_client_leaving_mid_filter_check_does_not_stall_the_others(
    app: FastAPI,
) -> None:
    service = app.state.container.realtime
    change = Change({"_data": "x"}, "c", "created", "d", {"_id": "d", "data": {"n": 1}})
    query = {"data.n": 1}
    leaving = asyncio.create_task(service._matches(change, "k", query))
    await asyncio.sleep(0)  # it has started the check and waits on the database
    leaving.cancel()
    async with asyncio.timeout(HANG_GUARD):
        assert await service._matches(change, "k", query) is True


async def test_anonymous_stream_of_a_public_collection(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    await declare(client, admin, "news", "public")
    async with stream(server_b, "news") as events:
        doc_id = await create(client, user, "news", {"title": "hi"})
        assert (await events.next_change()).data["id"] == doc_id


async def test_a_browser_eventsource_with_a_ticket_sees_a_write(
    client: httpx.AsyncClient, admin: Account, user: Account, server_b: str
) -> None:
    """An EventSource with a ticket, as the README shows, in headless Chromium."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    await declare(client, admin, "orders", "owner")
    ticket = (await client.post("/v1/realtime/tickets", headers=user.headers)).json()["ticket"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{server_b}/healthz")  # same origin as the stream
            await page.evaluate(
                """(url) => {
                    window.seen = [];
                    const source = new EventSource(url);
                    source.addEventListener("ready", () => { window.ready = true; });
                    source.addEventListener("created", (e) => {
                        window.seen.push(JSON.parse(e.data));
                    });
                }""",
                f"{server_b}/v1/collections/orders/events?ticket={ticket}",
            )
            await page.wait_for_function("window.ready === true", timeout=HANG_GUARD * 1000)
            doc_id = await create(client, user, "orders", {"status": "ready"})
            await page.wait_for_function("window.seen.length > 0", timeout=HANG_GUARD * 1000)
            seen = await page.evaluate("window.seen")
            assert [(d["id"], d["data"]) for d in seen] == [(doc_id, {"status": "ready"})]
        finally:
            await browser.close()


async def test_the_hub_outlives_an_unexpected_error(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """A bug in one change's handling ends the open streams (their clients resume from
    their last id) and restarts the shared stream: it never dies quietly while new
    streams are still accepted."""
    hub = app.state.container.realtime.hub
    await declare(client, admin, "fragile", "authenticated")
    first = await hub.subscribe("fragile", None, address="198.51.100.1")
    dispatch = hub._dispatch

    def fails_once(change: Change) -> None:
        hub._dispatch = dispatch
        raise RuntimeError("a bug")

    hub._dispatch = fails_once
    try:
        await create(client, user, "fragile", {"n": 1})
        assert await first.next(HANG_GUARD) is None
        assert first.end_reason == "server_unavailable"
    finally:
        hub._dispatch = dispatch
        hub.unsubscribe(first)
    async with asyncio.timeout(HANG_GUARD):
        await hub.wait_for(lambda: hub.available)
    second = await hub.subscribe("fragile", None, address="198.51.100.1")
    try:
        written = await create(client, user, "fragile", {"n": 2})
        change = await second.next(HANG_GUARD)
        assert change is not None and change.doc_id == written
    finally:
        hub.unsubscribe(second)


async def test_the_shared_stream_runs_only_while_someone_listens(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """With no subscriber the hub closes its stream (the database serves it nothing);
    the next subscriber opens it again and gets every change from its `ready` on."""
    container = app.state.container
    hub = RealtimeHub(
        container.db,
        max_streams=10,
        max_per_user=5,
        max_per_address=5,
        buffer=10,
        poll_ms=50,
        idle_close_seconds=0,
    )
    await declare(client, admin, "quiet", "authenticated")
    await hub.start()
    try:
        async with asyncio.timeout(HANG_GUARD):
            await hub.wait_for(lambda: not hub.streaming)
        opens = hub.opens
        sub = await hub.subscribe("quiet", None, address="198.51.100.2")
        assert hub.streaming and hub.opens == opens + 1
        assert sub.start is not None  # the `ready` id: where the reopened stream began
        written = await create(client, user, "quiet", {"n": 1})
        change = await sub.next(HANG_GUARD)
        assert change is not None and change.doc_id == written
        hub.unsubscribe(sub)
        async with asyncio.timeout(HANG_GUARD):
            await hub.wait_for(lambda: not hub.streaming)
        assert hub.opens == opens + 1
        # A client that leaves while its stream waits for the shared one frees its place.
        waiting = asyncio.create_task(hub.subscribe("quiet", None, address="198.51.100.2"))
        await asyncio.sleep(0)  # let it register and start waiting
        assert hub.count == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert hub.count == 0
    finally:
        await hub.stop()


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("testclient", "testclient"),
    ],
)
def test_anonymous_streams_count_per_ipv4_address_or_ipv6_64(address: str, network: str) -> None:
    assert network_of(address) == network

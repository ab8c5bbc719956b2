"""Faults: the database goes away and comes back; the server is asked to stop mid-request."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from app.accounts.models import Role
from app.db.embedded import EmbeddedDatabase
from tests.support.accounts import signed_in
from tests.support.apps import SharedApps, http_client, make_settings, running_app
from tests.support.databases import fail_next, stop_later
from tests.support.problems import assert_problem
from tests.support.servers import ServerProcess, api_server
from tests.support.wire_proxy import LosingProxy


@pytest.fixture(autouse=True)
async def alone(shared_apps: SharedApps) -> None:
    """The process-wide gauges (read cache on, ...) are then the app under test's own."""
    await shared_apps.close()


@pytest.fixture
def database(tmp_path: Path) -> Any:
    """A database of this test's own, on disk, that the test may stop and restart."""
    server = EmbeddedDatabase(tmp_path / "db", test_commands=True)
    server.start()
    yield server
    stop_later(server)


async def eventually_ready(client: httpx.AsyncClient) -> None:
    for _ in range(100):  # the driver rediscovers the server within a few checks
        if (await client.get("/readyz")).status_code == 200:
            return
    pytest.fail("the API did not recover after the database came back")


async def test_a_database_outage_answers_503_and_the_process_recovers(
    database: EmbeddedDatabase,
) -> None:
    settings = make_settings(database.url, mongodb_timeout_ms=1000)
    async with running_app(settings, drop_database=False) as app, http_client(app) as client:
        admin = await signed_in(app, client, role=Role.ADMIN)
        await client.post("/v1/collections", json={"name": "notes"}, headers=admin.headers)
        doc = (
            await client.post(
                "/v1/collections/notes/documents", json={"a": 1}, headers=admin.headers
            )
        ).json()
        url = f"/v1/collections/notes/documents/{doc['id']}"

        feed = app.state.container.feed
        database.stop()
        # The read cache goes off with its change stream: nothing is served from memory
        # that the stream can no longer vouch for.
        # (Waiting for `opened` to clear, not for the lease to lapse: stopping the database
        # blocks this loop about 2 s, as long as the lease, and the metric below follows
        # the feed noticing the failure, not the lease.)
        await asyncio.wait_for(feed.wait_for(lambda: not feed.opened.is_set()), timeout=10)
        assert not feed.trusted()
        # Fails fast (a short server-selection timeout), never hangs.
        down = await asyncio.wait_for(client.get(url, headers=admin.headers), timeout=5)
        assert_problem(down, 503, "database_unavailable")
        assert down.headers["retry-after"]
        write = await asyncio.wait_for(
            client.post("/v1/collections/notes/documents", json={"a": 2}, headers=admin.headers),
            timeout=5,
        )
        assert_problem(write, 503, "database_unavailable")
        assert_problem(await client.get("/readyz"), 503, "database_unavailable")
        metrics = (await client.get("/metrics")).text
        assert 'docstore_database_errors_total{kind="unavailable"}' in metrics
        assert "docstore_read_cache_on 0.0" in metrics

        database.start()  # same port, same data
        await eventually_ready(client)
        again = await client.get(url, headers=admin.headers)
        assert again.status_code == 200
        assert again.json()["data"] == {"a": 1}

        # The read cache comes back with the stream.
        await asyncio.wait_for(feed.wait_for(lambda: feed.opens >= 2), timeout=30)
        assert feed.trusted()
        assert "docstore_read_cache_on 1.0" in (await client.get("/metrics")).text


async def test_acknowledged_writes_survive_a_database_restart(
    database: EmbeddedDatabase,
) -> None:
    settings = make_settings(database.url, mongodb_timeout_ms=1000)
    async with running_app(settings, drop_database=False) as app, http_client(app) as client:
        admin = await signed_in(app, client, role=Role.ADMIN)
        await client.post("/v1/collections", json={"name": "ledger"}, headers=admin.headers)
        url = "/v1/collections/ledger/documents"
        acknowledged = {}
        for i in range(40):
            response = await client.post(url, json={"i": i}, headers=admin.headers)
            assert response.status_code == 201
            acknowledged[response.json()["id"]] = i
        patched = await client.patch(
            f"{url}/{next(iter(acknowledged))}", json={"i": -1}, headers=admin.headers
        )
        assert patched.json()["version"] == 2

        database.stop()
        database.start()
        await eventually_ready(client)
        stored = {
            d["id"]: d
            for d in (await client.get(url, params={"limit": 100}, headers=admin.headers)).json()[
                "items"
            ]
        }
        assert set(stored) == set(acknowledged)
        assert stored[next(iter(acknowledged))]["data"] == {"i": -1}
        assert stored[next(iter(acknowledged))]["version"] == 2


def test_sigterm_lets_an_in_flight_request_finish(database: EmbeddedDatabase) -> None:
    settings = make_settings(database.url)
    with api_server(database.url, settings.mongodb_db) as (base, server):
        held_request_survives_sigterm(database, settings.mongodb_db, base, server)


def held_request_survives_sigterm(
    database: EmbeddedDatabase, db_name: str, base: str, server: ServerProcess
) -> None:
    admin_db: MongoClient[dict[str, Any]] = MongoClient(database.url, appname="fault-test")
    try:
        admin_db[db_name]["collections"].insert_one(
            {
                "_id": "pub",
                "description": "",
                "json_schema": None,
                "indexes": [],
                "access": {"read": "public", "write": "owner"},
                "created_at": "2026-01-01",
                "updated_at": "2026-01-01",
            }
        )
        # The server's next `find` (reading the collection) is held for two seconds.
        fail_next(admin_db, "find", blockConnection=True, blockTimeMS=2000, appName="docstore")
        result: dict[str, Any] = {}

        def slow_request() -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                result["response"] = client.get("/v1/collections/pub/documents")

        request = threading.Thread(target=slow_request)
        request.start()
        with httpx.Client(base_url=base, timeout=5) as probe:
            for _ in range(500):  # until the held request is being handled
                gauge = [
                    line
                    for line in probe.get("/metrics").text.splitlines()
                    if line.startswith("docstore_http_requests_in_progress ")
                ]
                if gauge and float(gauge[0].split()[1]) >= 2:  # it and this scrape
                    break
            else:
                pytest.fail("the slow request never reached the server")
        server.send_signal(signal.SIGTERM)
        request.join(30)
        # uvicorn shuts down gracefully, then re-raises the signal for its exit status.
        assert server.wait(30) in (0, -signal.SIGTERM)
        assert server.stderr is not None
        assert "Traceback" not in server.stderr.read().decode()
        response = result["response"]
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "next_cursor": None}
    finally:
        admin_db.close()


@pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URL")),
    reason="the proxy fronts the embedded database (one host, no TLS)",
)
@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("post", {"inc": {"n": 1}}, 1),  # POST .../update
        ("patch", {"n": 5}, 5),  # merge patch, with If-Match
    ],
)
async def test_a_write_whose_answer_was_lost_is_applied_once(
    database_url: str, method: str, body: dict[str, Any], expected: int
) -> None:
    def is_the_update(command: dict[str, Any]) -> bool:
        return str(command.get("update", "")).endswith("counters")

    async with LosingProxy(database_url, is_the_update, forget_retries=True) as proxy:
        settings = make_settings(proxy.url)
        async with running_app(settings) as app, http_client(app) as client:
            admin = await signed_in(app, client, role=Role.ADMIN)
            body_in = {"name": "counters", "access": {"read": "owner", "write": "owner"}}
            await client.post("/v1/collections", json=body_in, headers=admin.headers)
            created = await client.post(
                "/v1/collections/counters/documents", json={"n": 0}, headers=admin.headers
            )
            url = f"/v1/collections/counters/documents/{created.json()['id']}"
            proxy.arm()
            # The database applies the write; the driver loses the answer and retries it
            # on a new connection, where the version it was conditioned on has moved on
            # (and the server cannot tell it is a retry): "matched 0", yet it landed.
            # Without If-Match a lost race is re-applied; with it, it is a 412: neither may
            # happen to a write that landed.
            if method == "post":
                path, headers = f"{url}/update", admin.headers
            else:
                path, headers = url, {**admin.headers, "If-Match": created.headers["etag"]}
            changed = await getattr(client, method)(path, json=body, headers=headers)
            assert proxy.lost == 1
            assert changed.status_code == 200, changed.text
            stored = (await client.get(url, headers=admin.headers)).json()
            assert (stored["data"]["n"], stored["version"]) == (expected, 2)

"""Health probes, problem+json for every failure, request ids, body limits."""

from __future__ import annotations

import inspect
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.container import Container
from app.observability.logging import JsonFormatter
from tests.support.accounts import PASSWORD, Account
from tests.support.apps import http_client, make_settings, running_app
from tests.support.databases import own_database
from tests.support.problems import assert_problem


async def test_healthz_answers_without_a_database_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_answers_503_when_the_database_is_gone() -> None:
    with own_database() as server:
        settings = make_settings(server.url, mongodb_timeout_ms=300)
        # The server dies inside the test, taking its in-memory data with it.
        async with running_app(settings, drop_database=False) as app, http_client(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            server.stop()
            response = await client.get("/readyz")
            assert_problem(response, 503, "database_unavailable")
            # Liveness does not depend on the database.
            assert (await client.get("/healthz")).status_code == 200


async def test_unknown_route_is_a_problem_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"


async def test_wrong_method_is_a_problem_405_listing_every_allowed_method(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await client.delete("/v1/auth/login"), 405, "method_not_allowed")
    response = await client.put("/v1/users/me")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET, PATCH"


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})
    assert echoed.headers["x-request-id"] == "trace-abc.123"
    # An id that could break log lines or headers is replaced, not echoed.
    for unsafe in ("has space", "x" * 200, "new\\nline"):
        generated = await client.get("/healthz", headers={"X-Request-ID": unsafe})
        assert generated.headers["x-request-id"] != unsafe
        assert len(generated.headers["x-request-id"]) == 32


async def test_malformed_json_is_a_422_naming_the_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
async def test_json_without_a_json_number_is_refused_everywhere(
    client: httpx.AsyncClient, admin: Account, number: bytes
) -> None:
    """Python's parser takes these; JSON does not, and they could not be stored or sent."""
    headers = {**admin.headers, "Content-Type": "application/json"}
    schema = b'{"name": "c", "schema": {"type": "object", "maximum": ' + number + b"}}"
    for url, body in (
        ("/v1/collections", schema),
        ("/v1/auth/login", b'{"email": "a@example.com", "password": ' + number + b"}"),
    ):
        response = await client.post(url, content=body, headers=headers)
        problem = assert_problem(response, 422, "validation_failed")
        assert problem["errors"][0]["type"] == "json_invalid"
    listed = await client.get("/v1/collections", headers=admin.headers)
    assert listed.json()["items"] == []


async def test_invalid_utf8_is_a_client_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login",
        content=b'{"email": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_a_non_json_body_is_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/v1/auth/login", content=b"hello", headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


async def test_an_oversized_body_is_413_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    big = b'{"email": "a@example.com", "password": "' + b"x" * 2_000_000 + b'", "name": "A"}'
    response = await client.post(
        "/v1/auth/register", content=big, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")
    assert await app.state.container.db["users"].count_documents({}) == 0


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 50_000

    response = await client.post(
        "/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_an_unexpected_exception_is_a_problem_500_with_request_id(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="docstore.access")
    async with running_app(make_settings(database_url)) as app:

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("kaboom")

        async with http_client(app) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-500"
    assert "kaboom" not in response.text
    # 5xx access lines are errors, with the problem code.
    access = [r for r in caplog.records if r.name == "docstore.access"][-1]
    assert access.levelname == "ERROR" and access.__dict__["code"] == "internal_error"


async def test_access_is_logged_as_json_with_the_user(
    client: httpx.AsyncClient, user: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="docstore.access")
    await client.get("/v1/users/me", headers={**user.headers, "X-Request-ID": "log-me"})
    records = [r for r in caplog.records if r.name == "docstore.access"]
    record = records[-1]
    assert record.__dict__["route"] == "/v1/users/me"
    assert record.__dict__["status"] == 200
    assert record.__dict__["user_id"] == user.id
    assert record.__dict__["client"] == "203.0.113.7"  # the test transport's peer
    assert record.levelname == "INFO" and "code" not in record.__dict__

    # An error names its problem code.
    await client.get("/v1/collections/none/documents/x", headers=user.headers)
    record = [r for r in caplog.records if r.name == "docstore.access"][-1]
    assert record.__dict__["status"] == 404
    assert record.__dict__["code"] == "collection_not_found"
    assert record.levelname == "INFO"


async def test_metrics_tell_whether_a_change_pump_leads_and_when_it_last_saved(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """What to alert on: no process leading (no background jobs anywhere: no webhooks, no
    history), or a leader whose checkpoint has stopped moving."""
    pump = app.state.container.pump
    await pump.settled()  # it leads and follows the stream
    text = (await client.get("/metrics")).text

    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found is not None, f"{name} is not in /metrics"
        return float(found.group(1))

    assert pump.leading and value("docstore_change_pump_leading") >= 1
    assert 0 < value("docstore_change_pump_checkpoint_timestamp_seconds") <= time.time()


async def test_a_failing_chore_stops_neither_the_pump_nor_the_other_chores(
    container: Container,
) -> None:
    """The leader's chores (trash purges, audit sealing) each run on their own: one that
    raises is logged, and the stream and the next chores go on."""
    import asyncio

    from app.db.change_pump import ChangePump

    ran = asyncio.Event()

    async def broken() -> None:
        raise ValueError("a chore's bug")

    async def after() -> None:
        ran.set()

    # Its own pump, on its own state collection's database: the app's keeps leading.
    pump = ChangePump(
        container.db.client["chores_" + container.settings.mongodb_db[-12:]],
        [],
        container.pump.clock,
        chores=[broken, after],
        chores_seconds=0,
    )
    pump.start()
    try:
        await asyncio.wait_for(ran.wait(), timeout=30)
        ran.clear()
        await asyncio.wait_for(ran.wait(), timeout=30)  # a second round: still leading
        assert pump.leading
    finally:
        await pump.stop()
        await container.db.client.drop_database("chores_" + container.settings.mongodb_db[-12:])


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            series, value = line.rsplit(" ", 1)
            got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if got == wanted:
                return float(value)
    return 0.0


async def test_metrics_count_requests_and_latency_by_route_template(
    client: httpx.AsyncClient, user: Account
) -> None:
    before = (await client.get("/metrics")).text
    for _ in range(3):
        await client.get("/v1/users/me", headers=user.headers)
    await client.get(f"/v1/users/{user.id}", headers=user.headers)  # 403, templated route
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert (
        delta("docstore_http_requests_total", method="GET", route="/v1/users/me", status="200") == 3
    )
    assert (
        delta(
            "docstore_http_requests_total", method="GET", route="/v1/users/{user_id}", status="403"
        )
        == 1
    )
    assert (
        delta("docstore_http_request_duration_seconds_count", method="GET", route="/v1/users/me")
        == 3
    )
    assert user.id not in after  # raw paths never become labels


async def test_logs_are_one_json_object_per_line(client: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("docstore.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        await client.get("/healthz", headers={"X-Request-ID": "line-1"})
        await client.get("/nowhere", headers={"X-Request-ID": "line-2"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["request_id"] for e in entries] == ["line-1", "line-2"]
    assert entries[0] | {"duration_ms": 0, "ts": ""} == {
        "ts": "",
        "level": "info",
        "logger": "docstore.access",
        "msg": "request",
        "request_id": "line-1",
        "method": "GET",
        "path": "/healthz",
        "route": "/healthz",
        "status": 200,
        "duration_ms": 0,
        "client": "203.0.113.7",
        "user_id": None,
    }
    assert entries[1]["status"] == 404 and entries[1]["route"] is None
    assert entries[1]["code"] == "not_found"


def test_no_route_sends_work_to_a_thread_per_request() -> None:
    """FastAPI runs a plain `def` endpoint or dependency in a worker thread: a thread hop
    on every request (it cost a quarter of the API's CPU on GET by id). All must be async."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from app.main import create_app

    def is_async(call: object) -> bool:
        # A dependency may be an object with an async __call__ (OAuth2PasswordBearer).
        return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)

    def sync_calls(dependant: Dependant) -> list[str]:
        call = dependant.call
        found = [] if call is None or is_async(call) else [getattr(call, "__qualname__", "?")]
        for sub in dependant.dependencies:
            found += sync_calls(sub)
        return found

    def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            # FastAPI keeps an included router whole; its routes are one level down.
            elif (included := getattr(route, "original_router", None)) is not None:
                yield from api_routes(included.routes)

    routes = list(api_routes(create_app().routes))
    assert any(route.path.endswith("{doc_id:doc_id}") for route in routes)
    offenders = {route.path: calls for route in routes if (calls := sync_calls(route.dependant))}
    assert offenders == {}


# -- security headers ----------------------------------------------------------------------


async def test_every_response_says_nosniff_and_bodiless_ones_have_no_media_type(
    client: httpx.AsyncClient, user: Account
) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/v1/users/me", headers=user.headers),
        await client.get("/v1/nothing-here"),
        await client.get("/v1/users/me"),
        await client.post("/v1/auth/logout-all", headers=user.headers),
    ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
    no_content = responses[-1]
    assert no_content.status_code == 204
    assert "content-type" not in no_content.headers


async def test_token_responses_are_not_cached(client: httpx.AsyncClient, user: Account) -> None:
    login = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    form = {"grant_type": "password", "username": user.email, "password": PASSWORD}
    token = await client.post("/v1/auth/token", data=form)
    changed = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    for response in (login, refreshed, token, changed):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"


async def test_a_trailing_slash_redirects_relatively_whatever_the_host_header(
    client: httpx.AsyncClient, admin: Account
) -> None:
    evil = {**admin.headers, "Host": "evil.example"}
    response = await client.get("/v1/collections/?x=1", headers=evil)
    assert response.status_code == 308
    assert response.headers["location"] == "/v1/collections?x=1"
    # Never a redirect off-site, nor to a path that serves nothing.
    for path in ("//evil.example/", "/v1/nothing-here/"):
        assert_problem(await client.get(path, headers=evil), 404, "not_found")


async def test_metrics_token_closes_the_metrics(database_url: str) -> None:
    token = "metrics-" + "s" * 24
    settings = make_settings(database_url, metrics_token=token)
    async with running_app(settings) as app, http_client(app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            response = await client.get("/metrics", headers=headers)
            body = assert_problem(response, 401, "not_authenticated")
            assert token not in json.dumps(body)
        allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
        assert "docstore_http_requests" in allowed.text or "# HELP" in allowed.text


def _loop_lag_total() -> tuple[float, float]:
    from app.observability.metrics import LOOP_LAG

    samples = {s.name: s.value for m in LOOP_LAG.collect() for s in m.samples}
    return samples["docstore_event_loop_lag_seconds_count"], samples[
        "docstore_event_loop_lag_seconds_sum"
    ]


async def test_a_blocked_event_loop_shows_in_the_lag_metric(app: FastAPI) -> None:
    import asyncio
    import time

    from app.observability.loop_lag import REQUESTS

    monitor = app.state.container.loop_lag
    REQUESTS.began()  # a request in flight: the monitor samples at its busy pace
    try:
        monitor.sampled.clear()
        await asyncio.wait_for(monitor.sampled.wait(), timeout=10)
        _, total = _loop_lag_total()
        monitor.sampled.clear()
        time.sleep(0.3)  # the stimulus: block the loop the app runs on (not synchronisation)
        await asyncio.wait_for(monitor.sampled.wait(), timeout=10)
        assert _loop_lag_total()[1] - total >= 0.2
    finally:
        REQUESTS.ended()


async def test_an_idle_process_parks_the_lag_monitor_until_a_request_begins() -> None:
    """No request: the monitor waits (no wake 20 times a second); a request wakes it."""
    import asyncio

    from app.observability.loop_lag import Activity, LoopLagMonitor

    activity = Activity()
    monitor = LoopLagMonitor(interval=0.01, idle_interval=3600, linger=0, activity=activity)
    monitor.start()
    try:
        for _ in range(1000):  # until its task has run and found nothing to do
            if activity.parked is not None:
                break
            await asyncio.sleep(0)
        assert activity.parked is not None and not monitor.sampled.is_set()
        activity.began()
        await asyncio.wait_for(monitor.sampled.wait(), timeout=10)
        assert monitor.idle_samples == 0  # sampled at the request's pace, not the idle one
        activity.ended()
    finally:
        await monitor.stop()

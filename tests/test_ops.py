"""Health probes, problem+json for every failure, request ids, body limits."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.db.embedded import MEMORY, EmbeddedDatabase
from tests.conftest import Account, assert_problem, http_client, make_settings, running_app


async def test_healthz_answers_without_a_database_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_answers_503_when_the_database_is_gone() -> None:
    server = EmbeddedDatabase(MEMORY)
    server.start()
    try:
        settings = make_settings(server.url, mongodb_timeout_ms=300)
        # The server dies inside the test, taking its in-memory data with it.
        async with running_app(settings, drop_database=False) as app, http_client(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            server.stop()
            response = await client.get("/readyz")
            assert_problem(response, 503, "database_unavailable")
            # Liveness does not depend on the database.
            assert (await client.get("/healthz")).status_code == 200
    finally:
        server.stop()


async def test_unknown_route_is_a_problem_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"


async def test_wrong_method_is_a_problem_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/v1/auth/login"), 405, "method_not_allowed")


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
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 50_000

    response = await client.post(
        "/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_an_unexpected_exception_is_a_problem_500_with_request_id(
    database_url: str,
) -> None:
    async with running_app(make_settings(database_url)) as app:

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("kaboom")

        async with http_client(app) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-500"
    assert "kaboom" not in response.text


async def test_openapi_documents_every_operation_with_an_id_and_tag(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    ids = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation.get("operationId"), (method, path)
            assert operation.get("tags"), (method, path)
            ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))
    assert "Problem" in spec["components"]["schemas"]


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

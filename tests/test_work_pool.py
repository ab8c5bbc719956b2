"""Big document changes are worked out in worker processes (app/documents/offload.py):
the same answers and errors as in place, and a pool that survives a dead worker.

How much that keeps the event loop free is a benchmark, not a test: `make bench` polls
/healthz while 60,000-value updates run (README, bench figures)."""

from __future__ import annotations

import os
import pickle
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest

from app.collections.validation import SchemaViolation
from app.container import Container
from app.documents.offload import WorkPool, checked
from app.documents.operators import apply_update, parse_update
from app.documents.validation import DataLimits
from app.errors import FieldError, RateLimited, ValidationFailed
from app.files.names import RangeNotSatisfiable
from tests.support.accounts import Account
from tests.support.problems import assert_problem

E = TypeVar("E", bound=Exception)

SCHEMA = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"type": "integer", "maximum": 10**9}},
        "name": {"type": "string", "maxLength": 20},
    },
}
LIMITS = DataLimits(max_bytes=1024 * 1024, max_depth=32)
DOCS = "/v1/collections/big/documents"
MANY = list(range(20_000))  # about 120 KB of JSON: over the 64 KB that goes to the pool


@pytest.fixture
async def pool() -> AsyncIterator[WorkPool]:
    work = WorkPool(1)
    yield work
    work.close()


async def test_a_refusal_crosses_the_process_boundary_whole(pool: WorkPool) -> None:
    change = partial(
        apply_update,
        operations=parse_update({"push": {"items": 10**10}}),
        max_bytes=LIMITS.max_bytes,
    )
    with pytest.raises(SchemaViolation) as caught:
        await pool.run(checked, {"items": MANY}, change, LIMITS, SCHEMA)
    refusal = caught.value
    assert (refusal.status, refusal.code) == (422, "schema_violation")
    assert refusal.errors and isinstance(refusal.errors[0], FieldError)
    assert refusal.errors[0].loc == ["data", "items", len(MANY)]

    fitting = partial(change, operations=parse_update({"push": {"items": 5}}))
    done = await pool.run(checked, {"items": MANY}, fitting, LIMITS, SCHEMA)
    assert done == {"items": [*MANY, 5]}


async def test_a_dead_worker_is_replaced_for_the_next_request(pool: WorkPool) -> None:
    with pytest.raises(BrokenProcessPool):
        await pool.run(os._exit, 1)
    assert await pool.run(checked, {"name": "after"}, None, LIMITS, SCHEMA) == {"name": "after"}


async def test_a_closed_pool_takes_no_more_work(pool: WorkPool) -> None:
    assert await pool.run(os.getpid) != os.getpid()
    pool.close()
    with pytest.raises(RuntimeError, match="shutting down"):
        await pool.run(os.getpid)


def _field_paths(body: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in body["errors"]]


@pytest.mark.own_app  # it looks at whether the pool has started
async def test_big_changes_through_the_api_answer_as_small_ones_do(
    client: httpx.AsyncClient, container: Container, admin: Account, user: Account
) -> None:
    declared = await client.post(
        "/v1/collections", json={"name": "big", "schema": SCHEMA}, headers=admin.headers
    )
    assert declared.status_code == 201, declared.text
    small = await client.post(DOCS, json={"items": [1]}, headers=user.headers)
    assert small.status_code == 201, small.text
    assert container.documents.work._pool is None  # small work stays in place

    made = await client.post(DOCS, json={"items": MANY}, headers=user.headers)
    assert made.status_code == 201, made.text
    assert container.documents.work._pool is not None  # it went to a worker process
    path = f"{DOCS}/{made.json()['id']}"

    grown = await client.post(
        f"{path}/update", json={"push": {"items": {"each": [-1, -2]}}}, headers=user.headers
    )
    assert grown.status_code == 200, grown.text
    assert grown.json()["data"]["items"][-2:] == [-1, -2] and grown.json()["version"] == 2

    too_big = await client.post(
        f"{path}/update", json={"push": {"items": 10**10}}, headers=user.headers
    )
    refusal = assert_problem(too_big, 422, "schema_violation")
    assert _field_paths(refusal) == [["data", "items", len(MANY) + 2]]
    patched = await client.patch(
        path,
        json=[{"op": "add", "path": "/name", "value": "x" * 21}],
        headers={**user.headers, "Content-Type": "application/json-patch+json"},
    )
    assert_problem(patched, 422, "schema_violation")
    unchanged = await client.get(path, headers=user.headers)
    assert unchanged.json()["version"] == 2 and "name" not in unchanged.json()["data"]

    bulk = await client.post(
        f"{DOCS}/bulk",
        json={"documents": [{"items": MANY}, {"name": "y" * 21}, {"name": "fine"}]},
        headers=user.headers,
    )
    assert bulk.status_code == 200, bulk.text
    outcomes = [(item["status"], item["code"]) for item in bulk.json()["results"]]
    assert outcomes == [(201, None), (422, "schema_violation"), (201, None)]


def round_trip(error: E) -> E:
    """What the process pool does to an error on its way back (our own bytes)."""
    back: E = pickle.loads(pickle.dumps(error))  # noqa: S301
    return back


def test_errors_cross_a_process_boundary_whole() -> None:
    """What a worker process raises is pickled back: every part the edge turns into a
    response must survive (a 416's size becomes Content-Range)."""
    limited = round_trip(RateLimited("slow down", retry_after=7))
    assert (type(limited), limited.status, limited.retry_after) == (RateLimited, 429, 7)
    refused = round_trip(RangeNotSatisfiable("no such range", size=10))
    assert (type(refused), refused.status, refused.size) == (RangeNotSatisfiable, 416, 10)
    invalid = ValidationFailed("bad", errors=[FieldError(loc=["body", 0], msg="m", type="t")])
    back = round_trip(invalid)
    assert (back.code, back.errors) == (invalid.code, invalid.errors)

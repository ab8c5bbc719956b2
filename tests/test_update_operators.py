"""Update operators (POST .../documents/{id}/update): semantics, errors, and atomicity
under concurrency against the real database."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.documents.operators import apply_update, parse_update
from app.errors import AppError, ValidationFailed
from tests.support.accounts import Account
from tests.support.problems import assert_problem

COUNTERS = {
    "type": "object",
    "properties": {
        "likes": {"type": "integer", "minimum": 0},
        "seats": {"type": "integer", "maximum": 10},
        "tags": {"type": "array", "items": {"type": "string"}},
        "title": {"type": "string"},
    },
}


def updated(data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return apply_update(data, parse_update(body), 256 * 1024)


def test_operators_follow_mongodb_semantics() -> None:
    data = {"n": 1, "low": 5, "tags": ["a"], "nested": {"x": 1}, "list": [1, 2, 2, 3]}
    assert updated(data, {"inc": {"n": 2, "fresh": 1.5}}) == {
        **data,
        "n": 3,
        "fresh": 1.5,
    }
    assert updated(data, {"min": {"low": 3}})["low"] == 3
    assert updated(data, {"min": {"low": 9}})["low"] == 5
    assert updated(data, {"max": {"low": 9, "new": 1}})["new"] == 1
    assert updated(data, {"set": {"deep.er.path": True}})["deep"] == {"er": {"path": True}}
    assert "nested" not in updated(data, {"unset": ["nested", "absent.path"]})
    assert updated(data, {"push": {"tags": "b"}})["tags"] == ["a", "b"]
    assert updated(data, {"push": {"tags": {"each": ["b", "c", "d"], "slice": -2}}})["tags"] == [
        "c",
        "d",
    ]
    assert updated(data, {"add_to_set": {"tags": {"each": ["a", "b", "b"]}}})["tags"] == ["a", "b"]
    assert updated(data, {"pull": {"list": 2}})["list"] == [1, 3]
    assert updated(data, {"set": {"list.0": 9}})["list"] == [9, 2, 2, 3]
    assert updated(data, {"inc": {"nested.x": 1}})["nested"] == {"x": 2}
    assert data["n"] == 1 and data["tags"] == ["a"]  # the input is never changed


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "one or more of"),
        ({"rename": {"a": "b"}}, "unknown operator"),
        ({"inc": {"a": "1"}}, "needs a number"),
        ({"inc": {"a": True}}, "needs a number"),
        ({"set": {"a.$b": 1}}, "not a data path"),
        ({"set": {"a..b": 1}}, "not a data path"),
        ({"set": {"a\x00": 1}}, "not a data path"),
        ({"set": {".".join(["a"] * 40): 1}}, "segments deep"),
        ({"inc": {"a": 1}, "set": {"a": 2}}, "touch the same path"),
        ({"set": {"a": 1, "a.b": 2}}, "touch the same path"),
        ({"push": {"a": {"each": 1}}}, "each is a list"),
        ({"push": {"a": {"each": [1], "slice": "2"}}}, "slice is an integer"),
        ({"add_to_set": {"a": {"each": [1], "slice": 2}}}, "unexpected 'slice'"),
    ],
)
def test_bad_updates_are_refused_with_a_reason(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_update(body)
    assert fragment in caught.value.detail


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inc": {"title": 1}}, "inc needs a number there"),
        ({"push": {"title": 1}}, "push needs an array"),
        ({"set": {"title.x": 1}}, "goes through a str"),
        ({"min": {"title": 1}}, "cannot compare"),
        ({"set": {"tags.5": "x"}}, "past the end"),
    ],
)
def test_updates_that_cannot_apply_say_where(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        updated({"title": "t", "tags": ["a"]}, body)
    assert fragment in caught.value.detail


async def declare(client: httpx.AsyncClient, admin: Account, **extra: Any) -> None:
    response = await client.post(
        "/v1/collections", json={"name": "counters", **extra}, headers=admin.headers
    )
    assert response.status_code == 201, response.text


DOCS = "/v1/collections/counters/documents"


async def create(client: httpx.AsyncClient, user: Account, data: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(DOCS, json=data, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_update_bumps_the_version_and_honours_if_match(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, schema=COUNTERS)
    doc = await create(client, user, {"likes": 0, "tags": []})
    path = f"{DOCS}/{doc['id']}/update"

    response = await client.post(
        path, json={"inc": {"likes": 1}, "add_to_set": {"tags": "x"}}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"likes": 1, "tags": ["x"]}
    assert response.json()["version"] == 2 and response.headers["etag"] == '"2"'

    stale = await client.post(
        path, json={"inc": {"likes": 1}}, headers={**user.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412, "precondition_failed")
    fresh = await client.post(
        path, json={"inc": {"likes": 1}}, headers={**user.headers, "If-Match": '"2"'}
    )
    assert fresh.json()["data"]["likes"] == 2

    # Breaking the schema, a type error, another user, an unknown document: 4xx, unchanged.
    negative = await client.post(path, json={"inc": {"likes": -5}}, headers=user.headers)
    assert_problem(negative, 422, "schema_violation")
    wrong_type = await client.post(path, json={"push": {"likes": 1}}, headers=user.headers)
    assert_problem(wrong_type, 422, "validation_failed")
    theirs = await client.post(path, json={"inc": {"likes": 1}}, headers=other_user.headers)
    assert_problem(theirs, 404, "document_not_found")
    missing = await client.post(f"{DOCS}/nope/update", json={"inc": {"a": 1}}, headers=user.headers)
    assert_problem(missing, 404, "document_not_found")
    conflict = await client.post(
        path, json={"inc": {"likes": 1}, "set": {"likes": 3}}, headers=user.headers
    )
    assert_problem(conflict, 422, "validation_failed")
    stored = await client.get(f"{DOCS}/{doc['id']}", headers=user.headers)
    assert stored.json()["version"] == 3 and stored.json()["data"] == {"likes": 2, "tags": ["x"]}


async def test_fifty_concurrent_increments_are_all_counted(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, schema=COUNTERS, access={"read": "owner", "write": "owner"})
    doc = await create(client, user, {"likes": 0})
    path = f"{DOCS}/{doc['id']}/update"

    async def like() -> int:
        response = await client.post(path, json={"inc": {"likes": 1}}, headers=user.headers)
        return response.status_code

    assert await asyncio.gather(*(like() for _ in range(50))) == [200] * 50
    stored = (await client.get(f"{DOCS}/{doc['id']}", headers=user.headers)).json()
    # Both at once, so a failure shows whether an increment was lost or applied twice.
    assert (stored["data"]["likes"], stored["version"]) == (50, 51)


async def test_twenty_concurrent_add_to_set_keep_every_value(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    doc = await create(client, user, {"tags": []})
    path = f"{DOCS}/{doc['id']}/update"
    results = await asyncio.gather(
        *(
            client.post(path, json={"add_to_set": {"tags": f"t{i}"}}, headers=user.headers)
            for i in range(20)
        )
    )
    assert [r.status_code for r in results] == [200] * 20
    stored = (await client.get(f"{DOCS}/{doc['id']}", headers=user.headers)).json()
    assert sorted(stored["data"]["tags"]) == sorted(f"t{i}" for i in range(20))


async def test_the_schema_holds_under_concurrency(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    """20 concurrent bookings of a 10-seat event: exactly 10 succeed, 10 are refused, and
    the stored document never breaks its schema (seats <= 10)."""
    await declare(client, admin, schema=COUNTERS)
    doc = await create(client, user, {"seats": 0})
    path = f"{DOCS}/{doc['id']}/update"
    results = await asyncio.gather(
        *(client.post(path, json={"inc": {"seats": 1}}, headers=user.headers) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 10 + [422] * 10
    assert {r.json()["code"] for r in results if r.status_code == 422} == {"schema_violation"}
    stored = (await client.get(f"{DOCS}/{doc['id']}", headers=user.headers)).json()
    assert stored["data"]["seats"] == 10 and stored["version"] == 11


def test_set_membership_is_by_json_value() -> None:
    data = {"s": [1, {"a": 1, "b": [2.0]}], "p": [1, 1.0, True, {"k": 1}]}
    added = updated(data, {"add_to_set": {"s": {"each": [1.0, {"b": [2], "a": 1}, True, "1"]}}})
    assert added["s"] == [1, {"a": 1, "b": [2.0]}, True, "1"]
    assert updated(data, {"pull": {"p": 1}})["p"] == [True, {"k": 1}]
    assert updated(data, {"pull": {"p": {"k": 1.0}}})["p"] == [1, 1.0, True]


def test_an_update_that_scans_or_adds_too_much_is_413_before_the_work() -> None:
    many = list(range(40_000))  # 40k nodes: past 4x a 64 KiB document limit
    for body in (
        {"add_to_set": {"s": {"each": many}}},
        {"push": {"s": {"each": many}}},
        {"set": {"s": many}},
    ):
        with pytest.raises(AppError) as refused:
            apply_update({"s": []}, parse_update(body), 64 * 1024)
        assert refused.value.status == 413
        assert refused.value.errors[0].type == "too_much_work"
        assert refused.value.errors[0].loc == ["body", next(iter(body)), "s"]
    # Scanning a big stored array counts too, not only what the body brings.
    with pytest.raises(AppError) as refused:
        apply_update({"s": many}, parse_update({"add_to_set": {"s": -1}}), 64 * 1024)
    assert refused.value.errors[0].type == "too_much_work"


async def test_a_huge_add_to_set_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, schema=COUNTERS)
    path = f"{DOCS}/{(await create(client, user, {'tags': ['a']}))['id']}"
    body = {"add_to_set": {"tags": {"each": [f"t{i}" for i in range(90_000)]}}}
    response = await client.post(f"{path}/update", json=body, headers=user.headers)
    problem = assert_problem(response, 413, "payload_too_large")
    assert problem["errors"][0]["type"] == "too_much_work"
    after = await client.get(path, headers=user.headers)
    assert after.json()["version"] == 1 and after.json()["data"] == {"tags": ["a"]}

"""POST /v1/collections/{name}/documents/aggregate: groups, date buckets, metrics, only
over what the caller may read, and bounded."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.container import Container
from tests.support.accounts import Account, MakeAccount
from tests.support.problems import assert_problem

AGG = "/v1/collections/orders/documents/aggregate"
DOCS = "/v1/collections/orders/documents"

ORDERS: list[dict[str, Any]] = [
    {"status": "paid", "total": 10, "when": "2026-11-03T10:00:00Z"},
    {"status": "paid", "total": 30.5, "when": "2026-11-20T08:00:00+02:00"},
    {"status": "paid", "total": 5, "when": "2026-12-01T00:00:00Z"},
    {"status": "open", "total": 7, "when": "not a date"},
    {"status": "open", "total": "n/a"},
    {"total": 1},
]


async def declare(
    client: httpx.AsyncClient, admin: Account, access: dict[str, Any] | None = None
) -> None:
    body = {"name": "orders", "access": access or {"read": "owner", "write": "authenticated"}}
    made = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert made.status_code == 201, made.text


async def add(client: httpx.AsyncClient, who: Account, items: list[dict[str, Any]]) -> None:
    for data in items:
        made = await client.post(DOCS, json=data, headers=who.headers)
        assert made.status_code == 201, made.text


async def test_groups_by_a_field_with_every_metric(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, ORDERS)
    answer = await client.post(
        AGG,
        json={
            "group_by": [{"name": "status", "field": "data.status"}],
            "metrics": [
                {"name": "orders", "op": "count"},
                {"name": "revenue", "op": "sum", "field": "data.total"},
                {"name": "average", "op": "avg", "field": "data.total"},
                {"name": "least", "op": "min", "field": "data.total"},
                {"name": "most", "op": "max", "field": "data.total"},
            ],
            "sort": [{"by": "orders", "order": "desc"}],
        },
        headers=user.headers,
    )
    assert answer.status_code == 200, answer.text
    groups = answer.json()["groups"]
    assert groups[0] == {
        "key": {"status": "paid"},
        "values": {"orders": 3, "revenue": 45.5, "average": 45.5 / 3, "least": 5, "most": 30.5},
    }
    open_group = next(g for g in groups if g["key"]["status"] == "open")
    # Text is not a number: sum and avg skip it; min and max compare across types.
    assert open_group["values"]["orders"] == 2 and open_group["values"]["revenue"] == 7
    assert open_group["values"]["average"] == 7
    assert {"key": {"status": None}, "values": pytest.approx({"orders": 1})} in [
        {"key": g["key"], "values": {"orders": g["values"]["orders"]}} for g in groups
    ]
    assert answer.json()["more"] is False


async def test_date_buckets_of_rfc3339_text_and_of_creation_times(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, ORDERS)
    answer = await client.post(
        AGG,
        json={
            "group_by": [{"name": "month", "field": "data.when", "bucket": "month"}],
            "metrics": [{"name": "n", "op": "count"}],
        },
        headers=user.headers,
    )
    assert answer.status_code == 200, answer.text
    months = {g["key"]["month"]: g["values"]["n"] for g in answer.json()["groups"]}
    # 2026-11-20T08:00+02:00 is 06:00 UTC, still November; no date (or none): null.
    assert months == {None: 3, "2026-11": 2, "2026-12": 1}
    assert [g["key"]["month"] for g in answer.json()["groups"]] == [None, "2026-11", "2026-12"]
    for bucket, width in (("day", 10), ("week", 8), ("year", 4), ("hour", 13)):
        made = await client.post(
            AGG,
            json={
                "group_by": [{"name": "at", "field": "created_at", "bucket": bucket}],
                "metrics": [{"name": "n", "op": "count"}],
            },
            headers=user.headers,
        )
        (group,) = made.json()["groups"]  # all made just now
        assert group["values"]["n"] == len(ORDERS) and len(group["key"]["at"]) == width


async def test_without_keys_one_group_of_every_match_and_limit_says_more(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, ORDERS)
    everything = await client.post(
        AGG,
        json={"filter": {"data.status": "paid"}, "metrics": [{"name": "n", "op": "count"}]},
        headers=user.headers,
    )
    assert everything.json() == {"groups": [{"key": {}, "values": {"n": 3}}], "more": False}
    limited = await client.post(
        AGG,
        json={
            "group_by": [{"name": "total", "field": "data.total"}],
            "metrics": [{"name": "n", "op": "count"}],
            "sort": [{"by": "total", "order": "desc"}],
            "limit": 2,
        },
        headers=user.headers,
    )
    body = limited.json()
    assert [g["key"]["total"] for g in body["groups"]] == ["n/a", 30.5]
    assert body["more"] is True


async def test_only_documents_the_caller_may_read_are_counted(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, ORDERS)
    await add(client, other_user, [{"status": "paid", "total": 1000}])
    count = {
        "metrics": [{"name": "n", "op": "count"}, {"name": "t", "op": "max", "field": "data.total"}]
    }
    mine = (await client.post(AGG, json=count, headers=user.headers)).json()
    theirs = (await client.post(AGG, json=count, headers=other_user.headers)).json()
    every = (await client.post(AGG, json=count, headers=admin.headers)).json()
    assert mine["groups"][0]["values"]["n"] == len(ORDERS)
    assert theirs["groups"][0]["values"] == {"n": 1, "t": 1000}
    assert every["groups"][0]["values"]["n"] == len(ORDERS) + 1
    nobody = await client.post(AGG, json=count)
    assert_problem(nobody, 401, "not_authenticated")


async def test_a_field_hidden_in_some_documents_cannot_be_grouped_or_measured(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    access = {
        "read": "authenticated",
        "write": "authenticated",
        "fields": [{"path": "data.total", "read": "owner == @user"}],
    }
    await declare(client, admin, access)
    await add(client, user, ORDERS[:2])
    for body in (
        {
            "group_by": [{"name": "t", "field": "data.total"}],
            "metrics": [{"name": "n", "op": "count"}],
        },
        {"metrics": [{"name": "s", "op": "sum", "field": "data.total"}]},
        {"filter": {"data.total": 10}, "metrics": [{"name": "n", "op": "count"}]},
    ):
        refused = await client.post(AGG, json=body, headers=user.headers)
        assert_problem(refused, 403, "field_forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {"metrics": []},
        {"metrics": [{"name": "n", "op": "count", "field": "data.x"}]},
        {"metrics": [{"name": "s", "op": "sum"}]},
        {"metrics": [{"name": "s", "op": "median", "field": "data.x"}]},
        {"metrics": [{"name": "s", "op": "sum", "field": "title"}]},
        {"metrics": [{"name": "s", "op": "sum", "field": "data.$where"}]},
        {"metrics": [{"name": "bad name", "op": "count"}]},
        {
            "group_by": [{"name": "n", "field": "data.a"}],
            "metrics": [{"name": "n", "op": "count"}],
        },
        {"metrics": [{"name": "n", "op": "count"}], "sort": [{"by": "nothing"}]},
        {
            "group_by": [{"name": "d", "field": "data.a", "bucket": "fortnight"}],
            "metrics": [{"name": "n", "op": "count"}],
        },
        {
            "group_by": [{"name": f"k{i}", "field": "data.a"} for i in range(4)],
            "metrics": [{"name": "n", "op": "count"}],
        },
        {"metrics": [{"name": "n", "op": "count"}], "limit": 1001},
        {"metrics": [{"name": "n", "op": "count"}], "pipeline": [{"$out": "x"}]},
    ],
)
async def test_bad_aggregations_are_422(
    body: dict[str, Any], client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    answer = await client.post(AGG, json=body, headers=user.headers)
    assert_problem(answer, 422, "validation_failed")


async def test_a_filter_outside_the_language_is_400(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    answer = await client.post(
        AGG,
        json={"filter": {"$where": "sleep(1000)"}, "metrics": [{"name": "n", "op": "count"}]},
        headers=user.headers,
    )
    assert answer.status_code == 400, answer.text


async def test_too_many_groups_is_refused(
    client: httpx.AsyncClient, admin: Account, user: Account, container: Container
) -> None:
    await declare(client, admin)
    await add(client, user, ORDERS)
    container.settings.aggregate_max_groups = 3
    try:
        answer = await client.post(
            AGG,
            json={
                "group_by": [{"name": "t", "field": "data.total"}],
                "metrics": [{"name": "n", "op": "count"}],
            },
            headers=user.headers,
        )
    finally:
        container.settings.aggregate_max_groups = 10_000
    assert_problem(answer, 422, "too_many_groups")


async def test_an_unknown_collection_is_404(client: httpx.AsyncClient, user: Account) -> None:
    answer = await client.post(
        "/v1/collections/nothing/documents/aggregate",
        json={"metrics": [{"name": "n", "op": "count"}]},
        headers=user.headers,
    )
    assert_problem(answer, 404, "collection_not_found")


async def test_aggregate_is_not_a_document_id(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    await declare(client, admin)
    refused = await client.put(f"{DOCS}/aggregate", json={"x": 1}, headers=admin.headers)
    assert refused.status_code in (404, 405, 422), refused.text


async def test_names_are_the_clients_own_even_odd_ones(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, ORDERS[:2])
    answer = await client.post(
        AGG,
        json={
            "group_by": [{"name": "_id", "field": "data.status"}],
            "metrics": [{"name": "k0", "op": "count"}],
        },
        headers=user.headers,
    )
    assert answer.json()["groups"] == [{"key": {"_id": "paid"}, "values": {"k0": 2}}]

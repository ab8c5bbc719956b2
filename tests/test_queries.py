"""Listing documents: filter language, sort, projection, keyset paging, count, indexes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.accounts.models import Role
from app.container import Container
from app.documents.filters import compile_sort
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.databases import own_database
from tests.support.problems import assert_problem

URL = "/v1/collections/items/documents"


@pytest.fixture
async def items(client: httpx.AsyncClient, admin: Account) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1/collections",
        json={
            "name": "items",
            "access": {"read": "authenticated", "write": "authenticated"},
            "indexes": [{"name": "by_score", "fields": ["-data.score", "created_at"]}],
        },
        headers=admin.headers,
    )
    assert response.status_code == 201
    data = [
        {"name": "alpha", "score": 5, "tags": ["a", "b"], "color": "red"},
        {"name": "beta", "score": 9, "tags": ["b"], "color": "blue"},
        {"name": "gamma", "score": 1, "tags": [], "color": "red"},
        {"name": "delta", "score": 9, "tags": ["c"]},
        {"name": "Epsilon", "score": 3, "tags": ["a"], "color": "green"},
    ]
    bulk = await client.post(f"{URL}/bulk", json={"documents": data}, headers=admin.headers)
    assert bulk.json()["created"] == 5
    listed = await client.get(URL, params={"limit": 100}, headers=admin.headers)
    return list(listed.json()["items"])


async def names(client: httpx.AsyncClient, account: Account, **params: Any) -> list[str]:
    if "filter" in params and not isinstance(params["filter"], str):
        params["filter"] = json.dumps(params["filter"])
    response = await client.get(URL, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return [item["data"].get("name") for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"data.color": "red"}, {"alpha", "gamma"}),
        ({"data.score": {"$gte": 5}}, {"alpha", "beta", "delta"}),
        ({"data.score": {"$in": [1, 3]}}, {"gamma", "Epsilon"}),
        ({"data.color": {"$exists": False}}, {"delta"}),
        ({"data.tags": {"$all": ["a", "b"]}}, {"alpha"}),
        ({"data.tags": {"$size": 0}}, {"gamma"}),
        ({"data.name": {"$regex": "^e", "$options": "i"}}, {"Epsilon"}),
        ({"$or": [{"data.score": 1}, {"data.color": "blue"}]}, {"gamma", "beta"}),
        ({"data.score": {"$not": {"$gt": 3}}}, {"gamma", "Epsilon"}),
        (
            {"$nor": [{"data.color": "red"}, {"data.color": {"$exists": False}}]},
            {"beta", "Epsilon"},
        ),
    ],
)
async def test_filters_select_the_right_documents(
    client: httpx.AsyncClient,
    user: Account,
    items: list[dict[str, Any]],
    query: dict[str, Any],
    expected: set[str],
) -> None:
    assert set(await names(client, user, filter=query, limit=100)) == expected
    count = await client.get(
        f"{URL}/count", params={"filter": json.dumps(query)}, headers=user.headers
    )
    assert count.json() == {"count": len(expected)}


async def test_envelope_paths_and_rfc3339_dates_filter(
    client: httpx.AsyncClient, user: Account, admin: Account, items: list[dict[str, Any]]
) -> None:
    first = items[0]
    assert await names(client, user, filter={"id": first["id"]}) == [first["data"]["name"]]
    assert len(await names(client, user, filter={"owner": admin.id}, limit=100)) == 5
    since = {"created_at": {"$gte": first["created_at"]}}
    assert len(await names(client, user, filter=since, limit=100)) == 5
    future = {"created_at": {"$gt": "2999-01-01T00:00:00Z"}}
    assert await names(client, user, filter=future) == []


@pytest.mark.parametrize(
    "query",
    [
        {"$where": "sleep(1000)"},
        {"$expr": {"$gt": ["$data.score", 1]}},
        {"data.score": {"$function": {"body": "x", "args": [], "lang": "js"}}},
        {"$jsonSchema": {}},
        {"$text": {"$search": "x"}},
        {"data.score": {"$mod": [2, 0]}},
        {"data.score": {"$unknown": 1}},
        {"password_hash": "x"},
        {"data.name": {"$regex": "(a+)+$" + "x" * 300}},
        {"data.score": {"$in": list(range(1000))}},
        {"created_at": {"$gt": "yesterday"}},
        "not an object",
        [1, 2],
    ],
)
async def test_dangerous_or_malformed_filters_are_400(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]], query: Any
) -> None:
    response = await client.get(URL, params={"filter": json.dumps(query)}, headers=user.headers)
    assert_problem(response, 400, "invalid_filter")
    count = await client.get(
        f"{URL}/count", params={"filter": json.dumps(query)}, headers=user.headers
    )
    assert_problem(count, 400, "invalid_filter")


@pytest.mark.parametrize(
    "raw",
    ["{data.score: 1", "[" * 4000 + "]" * 4000, '{"data.a": 1e400}', '{"data.a": NaN}'],
)
async def test_a_filter_that_is_not_json_is_400(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]], raw: str
) -> None:
    response = await client.get(URL, params={"filter": raw}, headers=user.headers)
    assert_problem(response, 400, "invalid_filter")


async def test_the_offending_operator_is_named(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]]
) -> None:
    response = await client.get(
        URL, params={"filter": json.dumps({"data.x": {"$where": "1"}})}, headers=user.headers
    )
    assert "$where" in assert_problem(response, 400, "invalid_filter")["detail"]


async def test_sort_orders_with_an_id_tie_breaker(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]]
) -> None:
    ordered = await names(client, user, sort="-data.score,data.name", limit=100)
    assert ordered == ["beta", "delta", "alpha", "Epsilon", "gamma"]
    ascending = await names(client, user, sort="data.score", limit=100)
    assert ascending[0] == "gamma" and ascending[-2:] in (["beta", "delta"], ["delta", "beta"])


@pytest.mark.parametrize("sort", ["password_hash", "data.", "-", "data.a,data.a", "$natural"])
async def test_bad_sorts_are_400(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]], sort: str
) -> None:
    response = await client.get(URL, params={"sort": sort}, headers=user.headers)
    assert_problem(response, 400, "invalid_sort")


async def test_fields_projects_data_but_keeps_the_envelope(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]]
) -> None:
    response = await client.get(
        URL,
        params={"fields": "data.name", "sort": "data.name", "limit": 2},
        headers=user.headers,
    )
    page = response.json()
    assert page["items"][0]["data"] == {"name": "Epsilon"}
    assert set(page["items"][0]) == {
        "id",
        "collection",
        "owner",
        "team",
        "version",
        "created_at",
        "updated_at",
        "data",
    }
    # Paging still works when the sort key is not among the projected fields.
    rest = await client.get(
        URL,
        params={"fields": "data.color", "sort": "-data.score", "limit": 2},
        headers=user.headers,
    )
    nxt = await client.get(
        URL,
        params={
            "fields": "data.color",
            "sort": "-data.score",
            "limit": 2,
            "cursor": rest.json()["next_cursor"],
        },
        headers=user.headers,
    )
    assert nxt.status_code == 200
    assert len(nxt.json()["items"]) == 2


@pytest.mark.parametrize("fields", ["password_hash", "data.$x", "owner", ","])
async def test_bad_fields_are_400(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]], fields: str
) -> None:
    response = await client.get(URL, params={"fields": fields}, headers=user.headers)
    assert_problem(response, 400, "invalid_fields")


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_limit_out_of_range_is_422(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]], limit: int
) -> None:
    response = await client.get(URL, params={"limit": limit}, headers=user.headers)
    assert_problem(response, 422, "validation_failed")


async def test_cursors_are_tamper_proof_and_tied_to_their_query(
    client: httpx.AsyncClient, user: Account, items: list[dict[str, Any]]
) -> None:
    page = (
        await client.get(URL, params={"limit": 2, "sort": "data.name"}, headers=user.headers)
    ).json()
    cursor = page["next_cursor"]
    assert cursor
    forged = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    bad_pages: list[dict[str, str | int]] = [
        {"limit": 2, "sort": "data.name", "cursor": forged},
        {"limit": 2, "sort": "-data.name", "cursor": cursor},
        {"limit": 2, "sort": "data.name", "cursor": cursor, "filter": '{"data.score": 9}'},
        {"limit": 2, "cursor": "garbage"},
        {"limit": 2, "cursor": cursor.split(".")[0] + ".\u00e9t\u00e9"},  # not ASCII
    ]
    for params in bad_pages:
        response = await client.get(URL, params=params, headers=user.headers)
        assert_problem(response, 400, "invalid_cursor")


async def test_sorting_by_an_indexed_field_uses_the_index(
    container: Container, items: list[dict[str, Any]]
) -> None:
    sort = compile_sort("-data.score,created_at")
    cursor = container.db["docs_items"].find({}).sort(sort).limit(20)
    winning = (await cursor.explain())["queryPlanner"]["winningPlan"]
    plan = json.dumps(winning, default=str)
    assert '"IXSCAN"' in plan and '"by_score"' in plan
    # The index serves the whole sort: no in-memory SORT stage.
    assert '"SORT"' not in plan


# -- paging property: every match exactly once, in order, even with inserts between pages --


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # the field is absent from the document

# Sort fields hold a mix of every JSON type, arrays (empty, mixed, with duplicates, nested)
# included: MongoDB sorts an array by its smallest element ascending and its largest
# descending, an empty array before null/missing, and other values by type bracket.
_SCALARS = st.one_of(
    st.none(),
    st.integers(-2, 2),
    st.sampled_from([-1.5, 0.5, 2.0]),
    st.sampled_from(["", "a", "b"]),
    st.booleans(),
)
_OBJECTS = st.sampled_from([{}, {"k": 1}, {"k": "a"}, {"k": None}, {"j": 0}])
_ARRAYS = st.lists(st.one_of(_SCALARS, _OBJECTS, st.lists(_SCALARS, max_size=2)), max_size=3)
MIXED = st.one_of(st.just(MISSING), _SCALARS, _OBJECTS, _ARRAYS)

SORTS = [
    "data.n",
    "-data.n",
    "data.s,-data.n",
    "-data.s",
    "created_at",
    "-data.n,data.s",
    "data.n,data.s",
    "-data.s,-data.n",
    "id",
]


def _mixed_doc(n: Any, s: Any) -> dict[str, Any]:
    if isinstance(n, list) and isinstance(s, list):
        s = s[0] if s else MISSING  # MongoDB refuses to sort by two arrays of one document
    return {k: v for k, v in (("n", n), ("s", s)) if v is not MISSING}


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(st.tuples(MIXED, MIXED), min_size=0, max_size=25),
    sort=st.sampled_from(SORTS),
    page_size=st.integers(1, 7),
    inserts=st.lists(MIXED, max_size=4),
)
async def test_paging_returns_every_match_exactly_once_in_order(
    client: httpx.AsyncClient,
    admin: Account,
    values: list[tuple[Any, Any]],
    sort: str,
    page_size: int,
    inserts: list[Any],
) -> None:
    name = "paging"
    await client.delete(f"/v1/collections/{name}", headers=admin.headers)
    await client.post("/v1/collections", json={"name": name}, headers=admin.headers)
    url = f"/v1/collections/{name}/documents"
    if values:
        documents = [_mixed_doc(n, s) for n, s in values]
        body = {"documents": documents}
        bulk = await client.post(f"{url}/bulk", json=body, headers=admin.headers)
        assert bulk.status_code in (200, 201), bulk.text

    async def unpaged() -> list[str]:
        params: dict[str, str | int] = {"sort": sort, "limit": 100}
        response = await client.get(url, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return [item["id"] for item in response.json()["items"]]

    expected = await unpaged()
    seen: list[str] = []
    cursor = None
    pending = list(inserts)
    for _ in range(len(expected) + len(inserts) + 2):
        params: dict[str, Any] = {"sort": sort, "limit": page_size}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(url, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        if pending:  # other writers keep inserting while we page
            value = pending.pop()
            await client.post(url, json=_mixed_doc(value, "z"), headers=admin.headers)
    else:
        pytest.fail(f"paging did not end: {seen}")

    assert len(seen) == len(set(seen)), f"a document came twice: {seen}"
    # Every document that existed before paging came, in the order one unpaged query gives.
    assert [i for i in seen if i in set(expected)] == expected, (sort, seen, expected)
    # Documents inserted while paging may or may not come, but never out of order.
    final = await unpaged()
    assert [i for i in final if i in set(seen)] == seen, (sort, seen, final)


# MongoDB's documented order: arrays by their smallest element ascending and their largest
# descending, an empty array before null/missing, then type brackets (null < numbers <
# strings < objects < arrays < booleans).
MIXED_ORDER_DOCS: dict[str, dict[str, Any]] = {
    "empty": {"v": []},
    "missing": {},
    "neg": {"v": [-1, "z"]},
    "one": {"v": 1},
    "mix": {"v": [2.5, {"k": 1}]},
    "nested": {"v": [[0], 7]},
    "strs": {"v": ["c", "a"]},
    "str": {"v": "b"},
    "obj": {"v": {"k": 0}},
    "false": {"v": False},
    "true": {"v": [True]},
}
MIXED_ASCENDING = ["empty", "missing", "neg", "one", "mix", "nested"]
MIXED_ASCENDING += ["strs", "str", "obj", "false", "true"]
MIXED_DESCENDING = ["true", "false", "nested", "mix", "obj", "neg"]
MIXED_DESCENDING += ["strs", "str", "one", "missing", "empty"]


@pytest.mark.parametrize("page_size", [1, 2, 4, 100])
@pytest.mark.parametrize(
    ("sort", "expected"), [("data.v", MIXED_ASCENDING), ("-data.v", MIXED_DESCENDING)]
)
async def test_paging_follows_mongodb_order_for_arrays_and_mixed_types(
    client: httpx.AsyncClient, admin: Account, sort: str, expected: list[str], page_size: int
) -> None:
    await client.post("/v1/collections", json={"name": "mixed"}, headers=admin.headers)
    url = "/v1/collections/mixed/documents"
    documents = [{"name": name, **data} for name, data in MIXED_ORDER_DOCS.items()]
    await client.post(f"{url}/bulk", json={"documents": documents}, headers=admin.headers)
    got: list[str] = []
    params: dict[str, Any] = {"sort": sort, "limit": page_size}
    for _ in range(len(documents) + 1):
        page = (await client.get(url, params=params, headers=admin.headers)).json()
        got += [item["data"]["name"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert got == expected


async def test_every_query_runs_with_a_time_limit() -> None:
    """mongod's maxTimeAlwaysTimeOut failpoint times out exactly the operations that carry
    maxTimeMS: a query without a limit would succeed here and fail this test."""
    with own_database(test_commands=True) as server:
        app_settings = make_settings(server.url)
        async with (
            running_app(app_settings, drop_database=False) as app,
            http_client(app) as client,
        ):
            admin = await signed_in(app, client, role=Role.ADMIN)
            await client.post("/v1/collections", json={"name": "slow"}, headers=admin.headers)
            url = "/v1/collections/slow/documents"
            doc = (await client.post(url, json={"a": 1}, headers=admin.headers)).json()
            admin_db = app.state.container.db.client.admin
            await admin_db.command("configureFailPoint", "maxTimeAlwaysTimeOut", mode="alwaysOn")
            try:
                for path, params in (
                    (url, {}),
                    (url, {"filter": '{"data.a": 1}', "sort": "-data.a"}),
                    (f"{url}/count", {}),
                    (f"{url}/{doc['id']}", {}),
                ):
                    response = await client.get(path, params=params, headers=admin.headers)
                    assert_problem(response, 503, "query_timeout")
            finally:
                await admin_db.command("configureFailPoint", "maxTimeAlwaysTimeOut", mode="off")
            assert (await client.get(url, headers=admin.headers)).status_code == 200


@pytest.mark.parametrize(
    ("pattern", "options"),
    [("(a+)+$", ""), ("^(\\w+\\s?)*$", ""), ("(a|aa)+b", "i"), ("\\s+$", ""), ("(x)\\1", "")],
)
async def test_catastrophic_regexes_are_refused_even_for_anonymous_readers(
    client: httpx.AsyncClient, admin: Account, pattern: str, options: str
) -> None:
    public = {"name": "wall", "access": {"read": "public", "write": "authenticated"}}
    assert (await client.post("/v1/collections", json=public, headers=admin.headers)).is_success
    await client.post(
        "/v1/collections/wall/documents", json={"s": "a" * 28 + "!"}, headers=admin.headers
    )
    query = {"data.s": {"$regex": pattern, "$options": options}}
    response = await client.get(
        "/v1/collections/wall/documents", params={"filter": json.dumps(query)}
    )
    body = assert_problem(response, 400, "invalid_filter")
    assert "data.s" in body["detail"]
    # An ordinary pattern on the same field still works.
    fine = {"data.s": {"$regex": "^a+!$"}}
    response = await client.get(
        "/v1/collections/wall/documents", params={"filter": json.dumps(fine)}
    )
    assert response.status_code == 200 and len(response.json()["items"]) == 1


async def test_dates_written_around_the_api_read_alike_in_pages_and_by_id(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    """Pages decode stored dates without a time zone (repository.find_page); what they
    show must be what a read by id shows, and their cursors must page on dates."""
    from datetime import UTC, datetime, timedelta

    await client.post("/v1/collections", json={"name": "dated"}, headers=admin.headers)
    url = "/v1/collections/dated/documents"
    await client.post(
        f"{url}/bulk", json={"documents": [{"n": n} for n in range(5)]}, headers=admin.headers
    )
    start = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    for n in range(5):  # a BSON date in data, as an import around the API leaves it
        when = start + timedelta(days=n)
        await container.db["docs_dated"].update_one({"data.n": n}, {"$set": {"data.when": when}})
    got: list[dict[str, Any]] = []
    params: dict[str, Any] = {"sort": "-data.when", "limit": 2}
    for _ in range(4):
        page = (await client.get(url, params=params, headers=admin.headers)).json()
        got += page["items"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert [item["data"]["n"] for item in got] == [4, 3, 2, 1, 0]
    for item in got:
        alone = (await client.get(f"{url}/{item['id']}", headers=admin.headers)).json()
        assert item == alone
    assert got[-1]["data"]["when"] == "2026-01-02T03:04:05.678000Z"
    assert got[-1]["created_at"].endswith("Z")

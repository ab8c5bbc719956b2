"""Full-text search: GET .../documents?search=, over a collection's declared text fields,
ranked, combined with filters and access rules, paged, and kept current by every write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.support.accounts import Account
from tests.support.problems import assert_problem
from tests.support.scripts import script

DOCS = "/v1/collections/posts/documents"
SEARCH = {"fields": ["data.title", "data.body"], "language": "english"}


async def declare(
    client: httpx.AsyncClient,
    admin: Account,
    *,
    search: dict[str, Any] | None = SEARCH,
    access: dict[str, Any] | None = None,
) -> None:
    body: dict[str, Any] = {"name": "posts", "access": access or {"read": "authenticated"}}
    if search is not None:
        body["search"] = search
    made = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert made.status_code == 201, made.text


async def add(client: httpx.AsyncClient, who: Account, data: dict[str, Any]) -> str:
    made = await client.post(DOCS, json=data, headers=who.headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def found(client: httpx.AsyncClient, who: Account, text: str, **params: Any) -> list[str]:
    answer = await client.get(DOCS, params={"search": text, **params}, headers=who.headers)
    assert answer.status_code == 200, answer.text
    return [d["data"]["title"] for d in answer.json()["items"]]


async def test_words_match_by_stem_case_and_accents_best_first(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, {"title": "Cooking for runners", "body": "Pasta and rice."})
    await add(client, user, {"title": "A café by the river", "body": "We ran there daily."})
    await add(
        client, user, {"title": "Running shoes", "body": "A long review of shoes, runs and more"}
    )
    await add(client, user, {"title": "Shoes", "body": "Running in them"})
    await add(client, user, {"title": "Gardening", "body": "Nothing about it"})
    # "running", "runs" and "run" share a stem; "runners" and "ran" do not.
    # Both words beat one; in the title beats in the body; shorter beats longer.
    assert await found(client, user, "RUN shoes") == ["Running shoes", "Shoes"]
    assert await found(client, user, "run") == ["Running shoes", "Shoes"]
    assert await found(client, user, "CAFE") == ["A café by the river"]
    assert await found(client, user, "the of and") == []  # only common words
    assert await found(client, user, "kayak") == []


async def test_search_combines_with_filters_sorts_projections_and_pages(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    for n in range(5):
        await add(client, user, {"title": f"Note {n} on search", "body": "word " * n, "n": n})
    await add(client, user, {"title": "Unrelated", "body": "", "n": 9})
    assert await found(client, user, "search", filter='{"data.n": {"$gte": 3}}') == [
        "Note 3 on search",
        "Note 4 on search",
    ]
    assert await found(client, user, "search", sort="-data.n") == [
        f"Note {n} on search" for n in (4, 3, 2, 1, 0)
    ]
    narrow = await client.get(
        DOCS, params={"search": "note", "fields": "data.n", "limit": 1}, headers=user.headers
    )
    assert narrow.json()["items"][0]["data"] == {"n": 0}
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"search": "note search", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(DOCS, params=params, headers=user.headers)).json()
        seen += [d["data"]["n"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [0, 1, 2, 3, 4]  # equal words, shorter body first, each once
    other = await client.get(
        DOCS, params={"search": "other words", "cursor": cursor or "x"}, headers=user.headers
    )
    assert other.status_code == 400


async def test_search_finds_only_documents_the_caller_may_read(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, access={"read": "owner", "write": "owner"})
    await add(client, user, {"title": "My secret plan", "body": ""})
    await add(client, other_user, {"title": "Their secret plan", "body": ""})
    assert await found(client, user, "secret") == ["My secret plan"]
    assert await found(client, other_user, "secret") == ["Their secret plan"]
    assert sorted(await found(client, admin, "secret")) == ["My secret plan", "Their secret plan"]


async def test_a_field_hidden_from_some_callers_cannot_be_searched(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    access = {
        "read": "authenticated",
        "write": "authenticated",
        "fields": [{"path": "data.body", "read": "owner == @user"}],
    }
    await declare(client, admin, access=access)
    await add(client, user, {"title": "Public title", "body": "private words"})
    refused = await client.get(DOCS, params={"search": "private"}, headers=other_user.headers)
    assert_problem(refused, 403, "field_forbidden")


async def test_writes_keep_the_index_current(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    doc = await add(client, user, {"title": "Old words", "body": ""})
    changed = await client.patch(
        f"{DOCS}/{doc}", json={"title": "New phrase"}, headers=user.headers
    )
    assert changed.status_code == 200, changed.text
    assert await found(client, user, "old") == []
    assert await found(client, user, "phrase") == ["New phrase"]
    updated = await client.post(
        f"{DOCS}/{doc}/update", json={"set": {"body": "gardening tips"}}, headers=user.headers
    )
    assert updated.status_code == 200, updated.text
    assert await found(client, user, "garden") == ["New phrase"]
    bulk = await client.post(
        f"{DOCS}/bulk",
        json={"documents": [{"title": "Bulk garden", "body": ""}]},
        headers=user.headers,
    )
    assert bulk.status_code == 200, bulk.text
    assert sorted(await found(client, user, "garden")) == ["Bulk garden", "New phrase"]
    # The index never shows in documents.
    listed = (await client.get(DOCS, headers=user.headers)).json()["items"]
    assert all(set(d) >= {"id", "data"} and "_search" not in d for d in listed)


async def test_a_big_bulk_create_is_stemmed_off_the_event_loop(
    client: httpx.AsyncClient, admin: Account, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stemming a megabyte of text takes the loop a quarter of a second: a bulk create
    that big works its terms out in a worker process (which has its own Indexer)."""
    from app.documents.search import Indexer

    await declare(client, admin)

    def not_here(self: Indexer, data: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("stemmed in the server process")

    monkeypatch.setattr(Indexer, "terms", not_here)
    filler = "lorem ipsum dolor " * 400  # about 7 KB of text a document
    documents = [{"title": f"Garden {n}", "body": filler} for n in range(20)]
    bulk = await client.post(f"{DOCS}/bulk", json={"documents": documents}, headers=user.headers)
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["created"] == 20
    monkeypatch.undo()
    assert len(await found(client, user, "garden", limit=50)) == 20


async def test_documents_stored_before_search_was_declared_are_found_after_reindex(
    settings: Settings, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, search=None)
    await add(client, user, {"title": "Stored before", "body": ""})
    none = await client.get(DOCS, params={"search": "stored"}, headers=user.headers)
    assert_problem(none, 400, "search_not_enabled")
    turned_on = await client.patch(
        "/v1/collections/posts", json={"search": SEARCH}, headers=admin.headers
    )
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json()["search"] == SEARCH
    assert await found(client, user, "stored") == []
    result = script(settings, "scripts.reindex", "posts", "--batch-size", "1")
    assert result.returncode == 0, result.stderr
    assert "indexed 1 document of posts" in result.stdout
    assert await found(client, user, "stored") == ["Stored before"]
    # Another language: new stems, after another reindex.
    await client.patch(
        "/v1/collections/posts",
        json={"search": {"fields": ["data.title"], "language": "none"}},
        headers=admin.headers,
    )
    assert script(settings, "scripts.reindex", "posts").returncode == 0
    assert await found(client, user, "stored") == ["Stored before"]
    assert await found(client, user, "store") == []  # no stemming now
    off = await client.patch("/v1/collections/posts", json={"search": None}, headers=admin.headers)
    assert off.json()["search"] is None
    refused = script(settings, "scripts.reindex", "posts")
    assert refused.returncode == 1 and "search" in refused.stderr


async def test_export_and_import_keep_documents_searchable(
    settings: Settings, client: httpx.AsyncClient, admin: Account, user: Account, tmp_path: Path
) -> None:
    await declare(client, admin)
    await add(client, user, {"title": "Exported words", "body": ""})
    exported = script(settings, "scripts.export", "posts", "-o", str(tmp_path / "posts.ndjson"))
    assert exported.returncode == 0, exported.stderr
    assert "_search" not in (tmp_path / "posts.ndjson").read_text()
    dropped = await client.delete("/v1/collections/posts", headers=admin.headers)
    assert dropped.status_code == 204
    await declare(client, admin)
    imported = script(settings, "scripts.restore", "posts", str(tmp_path / "posts.ndjson"))
    assert imported.returncode == 0, imported.stderr
    assert await found(client, user, "export") == ["Exported words"]


@pytest.mark.parametrize(
    "search",
    [
        {"fields": []},
        {"fields": ["title"]},
        {"fields": ["data.title"], "language": "klingon"},
        {"fields": ["data.title", "data.title"]},
        {"fields": [f"data.f{i}" for i in range(11)]},
    ],
)
async def test_bad_search_declarations_are_422(
    search: dict[str, Any], client: httpx.AsyncClient, admin: Account
) -> None:
    body = {"name": "posts", "search": search}
    answer = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert_problem(answer, 422, "validation_failed")


async def test_an_overlong_search_is_422(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    answer = await client.get(DOCS, params={"search": "word " * 101}, headers=user.headers)
    assert_problem(answer, 422, "validation_failed")


async def test_terms_from_an_earlier_declaration_never_match(
    settings: Settings, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    await add(client, user, {"title": "Public", "body": "confidential plans"})
    assert await found(client, user, "confidential") == ["Public"]
    narrowed = await client.patch(
        "/v1/collections/posts",
        json={"search": {"fields": ["data.title"], "language": "english"}},
        headers=admin.headers,
    )
    assert narrowed.status_code == 200, narrowed.text
    assert await found(client, user, "confidential") == []  # body is no longer searched
    assert await found(client, user, "public") == []  # until indexed again
    assert script(settings, "scripts.reindex", "posts").returncode == 0
    assert await found(client, user, "public") == ["Public"]
    assert await found(client, user, "confidential") == []

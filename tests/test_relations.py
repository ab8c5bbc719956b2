"""References between documents (x-ref): ?expand= on reads, batched and access-checked, and
what deleting a referenced document does (x-on-delete)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from app.accounts.models import Role
from app.collections.models import storage_name
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.problems import assert_problem


def ref(target: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "x-ref": target, **extra}


AUTHORS = {"type": "object", "properties": {"name": {"type": "string"}, "boss": ref("authors")}}
COMMENTS = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "author": ref("authors"), "by": ref("users")},
}
POSTS = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "author": ref("authors"),
        "comments": {"type": "array", "items": ref("comments")},
        "meta": {"type": "object", "properties": {"editor": ref("authors")}},
    },
}


def docs(name: str) -> str:
    return f"/v1/collections/{name}/documents"


async def declare(
    client: httpx.AsyncClient,
    admin: Account,
    name: str,
    schema: Any,
    read: str = "authenticated",
    **more: Any,
) -> None:
    body = {"name": name, "schema": schema, "access": {"read": read, "write": "authenticated"}}
    body.update(more)
    made = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert made.status_code == 201, made.text


async def put(client: httpx.AsyncClient, who: Account, name: str, doc_id: str, data: Any) -> None:
    made = await client.put(f"{docs(name)}/{doc_id}", json=data, headers=who.headers)
    assert made.status_code in (200, 201), made.text


@pytest.fixture
async def blog(client: httpx.AsyncClient, admin: Account, user: Account) -> None:
    await declare(client, admin, "authors", AUTHORS)
    await declare(client, admin, "comments", COMMENTS)
    await declare(client, admin, "posts", POSTS)
    await put(client, user, "authors", "ada", {"name": "Ada", "boss": "grace"})
    await put(client, user, "authors", "grace", {"name": "Grace"})
    await put(client, user, "comments", "c1", {"text": "Nice", "author": "grace", "by": user.id})
    await put(client, user, "comments", "c2", {"text": "Hm", "author": "nobody"})
    await put(
        client,
        user,
        "posts",
        "p1",
        {
            "title": "Hello",
            "author": "ada",
            "comments": ["c1", "c2", "zz"],
            "meta": {"editor": "grace"},
        },
    )
    await put(client, user, "posts", "p2", {"title": "Empty"})


async def test_get_expands_references_through_levels(
    client: httpx.AsyncClient, user: Account, blog: None
) -> None:
    answer = await client.get(
        f"{docs('posts')}/p1",
        params={"expand": "author.boss,comments.author,comments.by,meta.editor"},
        headers=user.headers,
    )
    assert answer.status_code == 200, answer.text
    assert "etag" not in answer.headers  # the body depends on other documents
    post = answer.json()
    assert post["data"]["author"] == "ada"  # the data is as stored
    author = post["expanded"]["author"]
    assert author["id"] == "ada" and author["document"]["data"]["name"] == "Ada"
    # Embedded as a GET shows it (plus what it expands in turn).
    alone = (await client.get(f"{docs('authors')}/ada", headers=user.headers)).json()
    assert {k: v for k, v in author["document"].items() if k != "expanded"} == alone
    assert author["document"]["expanded"]["boss"]["document"]["data"] == {"name": "Grace"}
    comments = post["expanded"]["comments"]
    assert [c["id"] for c in comments] == ["c1", "c2", "zz"]
    assert comments[0]["document"]["expanded"]["author"]["document"]["id"] == "grace"
    by = comments[0]["document"]["expanded"]["by"]["document"]
    assert by["collection"] == "users" and by["data"] == {"name": "Test User"}
    assert comments[1]["document"]["expanded"]["author"] == {
        "id": "nobody",
        "collection": "authors",
        "document": None,
        "reason": "not_found",
    }
    assert comments[1]["document"]["expanded"]["by"] is None  # no reference held
    assert comments[2]["document"] is None and comments[2]["reason"] == "not_found"
    assert post["expanded"]["meta.editor"]["document"]["id"] == "grace"
    plain = await client.get(f"{docs('posts')}/p1", headers=user.headers)
    assert "expanded" not in plain.json() and "etag" in plain.headers


async def test_lists_expand_with_one_query_per_level_and_collection(
    client: httpx.AsyncClient, user: Account, blog: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {storage_name(n): n for n in ("posts", "authors", "comments")}
    reads: list[str] = []
    find, aggregate = AsyncCollection.find, AsyncCollection.aggregate

    def counted_find(self: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
        if self.name in names:
            reads.append(names[self.name])
        return find(self, *args, **kwargs)

    async def counted_aggregate(self: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
        if self.name in names:
            reads.append(names[self.name])
        return await aggregate(self, *args, **kwargs)

    for n in range(3, 8):
        await put(client, user, "posts", f"p{n}", {"title": f"T{n}", "author": "ada"})
    monkeypatch.setattr(AsyncCollection, "find", counted_find)
    monkeypatch.setattr(AsyncCollection, "aggregate", counted_aggregate)
    answer = await client.get(
        docs("posts"), params={"expand": "author,comments.author"}, headers=user.headers
    )
    monkeypatch.undo()
    items = answer.json()["items"]
    assert len(items) == 7
    assert {i["id"]: (i["expanded"]["author"] or {}).get("id") for i in items}["p3"] == "ada"
    assert next(i for i in items if i["id"] == "p2")["expanded"]["author"] is None
    assert (
        next(i for i in items if i["id"] == "p1")["expanded"]["author"]["document"]
        == (await client.get(f"{docs('authors')}/ada", headers=user.headers)).json()
    )
    # The page brings its authors (joined to its query); the comments are a list of
    # references: one query for them, and one for their authors (the second level).
    assert sorted(reads) == ["authors", "comments", "posts"]


async def expanded(
    client: httpx.AsyncClient, who: Account, how: str, name: str, doc_id: str, paths: str
) -> Any:
    """The `expanded` of one document, read by id (`get`) or in a page (`list`, `search`:
    the first level is joined to the page's query)."""
    if how == "get":
        answer = await client.get(f"{docs(name)}/{doc_id}?expand={paths}", headers=who.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()["expanded"]
    found = "&search=tulips" if how == "search" else ""
    answer = await client.get(f"{docs(name)}?expand={paths}{found}", headers=who.headers)
    assert answer.status_code == 200, answer.text
    return next(i for i in answer.json()["items"] if i["id"] == doc_id)["expanded"]


@pytest.mark.parametrize("how", ["list", "search"])
async def test_rows_too_large_to_join_are_expanded_by_id(
    how: str,
    client: httpx.AsyncClient,
    admin: Account,
    user: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MongoDB refuses a joined row past 16 MB (documents written around the API, larger
    # than DOCUMENT_MAX_BYTES); the embedded database does not, so its answer is played.
    await declare(client, admin, "authors", AUTHORS)
    await declare(client, admin, "posts", POSTS, search={"fields": ["data.title"]})
    await put(client, user, "authors", "ada", {"name": "Ada"})
    await put(client, user, "posts", "p", {"title": "Tulips", "author": "ada"})
    aggregate = AsyncCollection.aggregate
    joined: list[bool] = []

    async def too_large(self: AsyncCollection[Any], pipeline: Any, *args: Any, **kw: Any) -> Any:
        if any("$lookup" in stage for stage in pipeline):
            joined.append(True)
            raise OperationFailure("Total size of documents exceeds 16793600 bytes", code=4568)
        return await aggregate(self, pipeline, *args, **kw)

    monkeypatch.setattr(AsyncCollection, "aggregate", too_large)
    seen = await expanded(client, user, how, "posts", "p", "author")
    monkeypatch.undo()
    assert joined  # it was tried
    assert seen["author"]["document"]["data"] == {"name": "Ada"}


async def test_large_documents_leave_room_for_fewer_joins(database_url: str) -> None:
    # Two documents of DOCUMENT_MAX_BYTES would not fit in one row: nothing is joined.
    settings = make_settings(database_url, document_max_bytes=9 * 1024 * 1024)
    async with running_app(settings) as app, http_client(app) as client:
        admin = await signed_in(app, client, role=Role.ADMIN)
        user = await signed_in(app, client)
        await declare(client, admin, "authors", AUTHORS)
        await declare(client, admin, "posts", POSTS)
        await put(client, user, "authors", "ada", {"name": "Ada"})
        await put(client, user, "posts", "p", {"title": "T", "author": "ada"})
        lookups: list[Any] = []
        aggregate = AsyncCollection.aggregate

        async def watched(self: AsyncCollection[Any], pipeline: Any, *a: Any, **kw: Any) -> Any:
            lookups.extend(stage for stage in pipeline if "$lookup" in stage)
            return await aggregate(self, pipeline, *a, **kw)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(AsyncCollection, "aggregate", watched)
            seen = await expanded(client, user, "list", "posts", "p", "author")
        assert lookups == []
        assert seen["author"]["document"]["data"] == {"name": "Ada"}


@pytest.mark.parametrize("how", ["get", "list", "search"])
async def test_expand_never_shows_what_the_caller_may_not_read(
    how: str, client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, "authors", AUTHORS, read="owner")
    await declare(client, admin, "posts", POSTS, search={"fields": ["data.title"]})
    await put(client, user, "authors", "mine", {"name": "Private"})
    await put(client, other_user, "posts", "p", {"title": "Tulips", "author": "mine"})
    theirs = await expanded(client, other_user, how, "posts", "p", "author")
    assert theirs["author"] == {
        "id": "mine",
        "collection": "authors",
        "document": None,
        "reason": "not_found",
    }
    mine = await expanded(client, user, how, "posts", "p", "author")
    assert mine["author"]["document"]["data"] == {"name": "Private"}


@pytest.mark.parametrize("how", ["get", "list"])
async def test_a_field_rule_applies_inside_expanded_documents(
    how: str, client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    body = {
        "name": "authors",
        "schema": {"type": "object", "properties": {"name": {}, "salary": {}}},
        "access": {
            "read": "authenticated",
            "write": "authenticated",
            "fields": [{"path": "data.salary", "read": "owner == @user"}],
        },
    }
    assert (await client.post("/v1/collections", json=body, headers=admin.headers)).is_success
    await declare(client, admin, "posts", POSTS)
    await put(client, user, "authors", "ada", {"name": "Ada", "salary": 100})
    await put(client, other_user, "posts", "p", {"title": "T", "author": "ada"})
    seen = await expanded(client, other_user, how, "posts", "p", "author")
    assert seen["author"]["document"]["data"] == {"name": "Ada"}


@pytest.mark.parametrize(
    ("expand", "says"),
    [
        ("title", "not a reference"),
        ("nothing", "not a reference"),
        ("author.name", "not a reference"),
        ("comments.by.name", "accounts have no references"),
        ("author.boss.boss.boss", "3 references deep"),
        (",".join(["author"] * 11), "at most 10"),
        (" , ", "at least one"),
    ],
)
async def test_bad_expands_are_422(
    expand: str, says: str, client: httpx.AsyncClient, user: Account, blog: None
) -> None:
    for path in (f"{docs('posts')}/p1", docs("posts")):
        answer = await client.get(path, params={"expand": expand}, headers=user.headers)
        body = assert_problem(answer, 422, "validation_failed")
        assert says in body["detail"], body


async def test_a_cycle_of_references_ends_at_the_depth_limit(
    client: httpx.AsyncClient, user: Account, blog: None
) -> None:
    await put(client, user, "authors", "grace", {"name": "Grace", "boss": "ada"})
    answer = await client.get(
        f"{docs('authors')}/ada", params={"expand": "boss.boss.boss"}, headers=user.headers
    )
    assert answer.status_code == 200, answer.text
    level = answer.json()["expanded"]["boss"]["document"]
    assert level["id"] == "grace"
    assert level["expanded"]["boss"]["document"]["id"] == "ada"
    too_deep = await client.get(
        f"{docs('authors')}/ada", params={"expand": "boss.boss.boss.boss"}, headers=user.headers
    )
    assert too_deep.status_code == 422


@pytest.mark.parametrize("how", ["get", "list"])
async def test_a_value_that_is_not_an_id_expands_as_invalid(
    how: str, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    loose = {
        "type": "object",
        "properties": {"author": {"x-ref": "authors", "type": ["string", "integer", "array"]}},
    }
    await declare(client, admin, "authors", AUTHORS)
    await declare(client, admin, "posts", loose)
    await put(client, user, "authors", "ada", {"name": "Ada"})
    await put(client, user, "posts", "p", {"author": 7})
    # A list where one id belongs: the join finds `ada`, but the value is still no id.
    await put(client, user, "posts", "q", {"author": ["ada", "ada"]})
    for doc_id in ("p", "q"):
        seen = await expanded(client, user, how, "posts", doc_id, "author")
        assert seen["author"] == {
            "id": None,
            "collection": "authors",
            "document": None,
            "reason": "invalid",
        }


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"a": {"type": "string", "x-ref": "Not A Name"}}},
        {"properties": {"a": {"type": "integer", "x-ref": "authors"}}},
        {"properties": {"a": {"type": "string", "x-ref": "authors", "x-on-delete": "explode"}}},
        {"properties": {"a": {"type": "string", "x-ref": "users", "x-on-delete": "cascade"}}},
        {"properties": {"a": {"type": "string", "x-ref": "authors", "x-on-delete": "set_null"}}},
    ],
)
async def test_bad_reference_declarations_are_422(
    schema: dict[str, Any], client: httpx.AsyncClient, admin: Account
) -> None:
    body = {"name": "posts", "schema": {"type": "object", **schema}}
    answer = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert_problem(answer, 422, "validation_failed")


# -- x-on-delete ------------------------------------------------------------------------------

LIBRARY = {
    "books": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "shelf": ref("shelves", **{"x-on-delete": "restrict"}),
            "series": {"type": ["string", "null"], "x-ref": "series", "x-on-delete": "set_null"},
            "tags": {"type": "array", "items": ref("tags", **{"x-on-delete": "set_null"})},
            "author": ref("writers", **{"x-on-delete": "cascade"}),
        },
    },
    "loans": {
        "type": "object",
        "properties": {"book": ref("books", **{"x-on-delete": "cascade"})},
    },
    "reviews": {
        "type": "object",
        "properties": {"loan": ref("loans", **{"x-on-delete": "restrict"})},
    },
}


@pytest.fixture
async def library(client: httpx.AsyncClient, admin: Account, user: Account) -> None:
    for name in ("shelves", "series", "tags", "writers"):
        await declare(client, admin, name, {"type": "object"})
    for name, schema in LIBRARY.items():
        await declare(client, admin, name, schema)
    for name, doc_id in [("shelves", "s1"), ("series", "dune"), ("tags", "sf"), ("tags", "old")]:
        await put(client, user, name, doc_id, {})
    await put(client, user, "writers", "frank", {})
    await put(
        client,
        user,
        "books",
        "b1",
        {
            "title": "Dune",
            "shelf": "s1",
            "series": "dune",
            "tags": ["sf", "old"],
            "author": "frank",
        },
    )
    await put(client, user, "books", "b2", {"title": "Other", "author": "frank"})
    await put(client, user, "loans", "l1", {"book": "b1"})


async def get(client: httpx.AsyncClient, who: Account, name: str, doc_id: str) -> Any:
    return await client.get(f"{docs(name)}/{doc_id}", headers=who.headers)


async def test_restrict_refuses_while_referenced(
    client: httpx.AsyncClient, user: Account, library: None
) -> None:
    refused = await client.delete(f"{docs('shelves')}/s1", headers=user.headers)
    body = assert_problem(refused, 409, "reference_restricted")
    assert "A document of books" in body["detail"] and "b1" not in body["detail"]
    assert (await get(client, user, "shelves", "s1")).status_code == 200
    bulk = await client.post(
        f"{docs('shelves')}/bulk-delete", json={"filter": {}}, headers=user.headers
    )
    assert_problem(bulk, 409, "reference_restricted")
    await put(client, user, "books", "b1", {"title": "Dune"})  # the reference goes
    assert (await client.delete(f"{docs('shelves')}/s1", headers=user.headers)).status_code == 204


async def test_a_collection_a_declared_relation_names_is_not_deleted(
    client: httpx.AsyncClient, admin: Account, user: Account, library: None
) -> None:
    """As a foreign key (or PocketBase's relation field) holds its table: while books
    says what deleting a shelf does, the shelves collection stays."""
    refused = await client.delete("/v1/collections/shelves", headers=admin.headers)
    body = assert_problem(refused, 409, "reference_restricted")
    assert "books" in body["detail"] and "shelf" in body["detail"]
    assert (await get(client, user, "shelves", "s1")).status_code == 200  # nothing changed
    # Without x-on-delete the reference is plain (it may dangle): then it may go.
    books: dict[str, Any] = LIBRARY["books"]
    plain = {**books, "properties": {**books["properties"], "shelf": ref("shelves")}}
    changed = await client.patch(
        "/v1/collections/books", json={"schema": plain}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    assert (
        await client.delete("/v1/collections/shelves", headers=admin.headers)
    ).status_code == 204
    expanded = await client.get(f"{docs('books')}/b1?expand=shelf", headers=user.headers)
    assert expanded.json()["expanded"]["shelf"]["reason"] == "not_found"


async def test_a_collection_whose_relations_name_only_itself_is_deleted(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    boss = ref("staff", **{"x-on-delete": "set_null"}) | {"type": ["string", "null"]}
    staff = {"type": "object", "properties": {"boss": boss}}
    await declare(client, admin, "staff", staff)
    await put(client, user, "staff", "ceo", {})
    await put(client, user, "staff", "cto", {"boss": "ceo"})
    assert (await client.delete("/v1/collections/staff", headers=admin.headers)).status_code == 204


async def test_documents_that_expire_and_declared_relations_do_not_mix(
    client: httpx.AsyncClient, admin: Account, library: None
) -> None:
    """A TTL index deletes without the integrity plan: a collection that declared
    relations name cannot get one, and none may be declared towards one that has one."""
    expiring = [{"name": "expire", "fields": ["created_at"], "expire_after_seconds": 3600}]
    refused = await client.patch(
        "/v1/collections/shelves", json={"indexes": expiring}, headers=admin.headers
    )
    body = assert_problem(refused, 422, "validation_failed")
    assert "books.shelf" in body["detail"] and "restrict" in body["detail"]
    shelves = (await client.get("/v1/collections/shelves", headers=admin.headers)).json()
    assert shelves["indexes"] == []  # nothing changed
    await declare(client, admin, "events", {"type": "object"}, indexes=expiring)
    towards = {
        "type": "object",
        "properties": {"event": ref("events", **{"x-on-delete": "cascade"})},
    }
    made = await client.post(
        "/v1/collections",
        json={"name": "tickets", "schema": towards, "access": {"read": "authenticated"}},
        headers=admin.headers,
    )
    body = assert_problem(made, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "schema"] and "events expire" in body["detail"]
    plain = {"type": "object", "properties": {"event": ref("events")}}
    await declare(client, admin, "tickets", plain)  # a plain reference may point there


async def test_at_once_a_ttl_index_and_a_relation_towards_it_are_not_both_declared(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """The checks across collections and the write after them take turns (in any
    process): declared together, an expiring collection and a relation towards it are
    one accepted and one refused, never both kept."""
    for attempt in range(2):  # (interleavings vary)
        events, tickets = f"events{attempt}", f"tickets{attempt}"
        await declare(client, admin, events, {"type": "object"})
        expiring = [{"name": "expire", "fields": ["created_at"], "expire_after_seconds": 3600}]
        towards = {
            "type": "object",
            "properties": {"event": ref(events, **{"x-on-delete": "cascade"})},
        }
        ttl, relation = await asyncio.gather(
            client.patch(
                f"/v1/collections/{events}", json={"indexes": expiring}, headers=admin.headers
            ),
            client.post(
                "/v1/collections",
                json={"name": tickets, "schema": towards, "access": {"read": "authenticated"}},
                headers=admin.headers,
            ),
        )
        assert sorted([ttl.is_success, relation.is_success]) == [False, True], (ttl, relation)
        refused = ttl if relation.is_success else relation
        assert_problem(refused, 422, "validation_failed")


async def test_set_null_clears_the_reference_and_bumps_the_version(
    client: httpx.AsyncClient, user: Account, library: None
) -> None:
    before = (await get(client, user, "books", "b1")).json()
    assert (await client.delete(f"{docs('series')}/dune", headers=user.headers)).status_code == 204
    assert (await client.delete(f"{docs('tags')}/old", headers=user.headers)).status_code == 204
    after = (await get(client, user, "books", "b1")).json()
    assert after["data"]["series"] is None and after["data"]["tags"] == ["sf"]
    assert after["version"] == before["version"] + 2


async def test_cascade_deletes_through_levels_unless_something_restricts(
    client: httpx.AsyncClient, user: Account, library: None
) -> None:
    await put(client, user, "reviews", "r1", {"loan": "l1"})
    # writers/frank -> books b1, b2 -> loans l1, which a review restricts: nothing goes.
    refused = await client.delete(f"{docs('writers')}/frank", headers=user.headers)
    body = assert_problem(refused, 409, "reference_restricted")
    assert "A document of reviews" in body["detail"]
    for name, doc_id in [("writers", "frank"), ("books", "b1"), ("books", "b2"), ("loans", "l1")]:
        assert (await get(client, user, name, doc_id)).status_code == 200
    assert (await client.delete(f"{docs('reviews')}/r1", headers=user.headers)).status_code == 204
    done = await client.delete(f"{docs('writers')}/frank", headers=user.headers)
    assert done.status_code == 204, done.text
    for name, doc_id in [("books", "b1"), ("books", "b2"), ("loans", "l1")]:
        assert (await get(client, user, name, doc_id)).status_code == 404
    assert (await get(client, user, "shelves", "s1")).status_code == 200  # not cascaded


@pytest.mark.parametrize("through_batch", [False, True])
async def test_cascaded_documents_lose_their_files_once_committed(
    client: httpx.AsyncClient, user: Account, library: None, through_batch: bool
) -> None:
    """Files of documents a cascade deletes go with them, in /v1/batch too (after its
    transaction commits, never before: an aborted batch keeps them)."""
    loan_file = f"{docs('loans')}/l1/files/receipt.txt"
    attached = await client.put(loan_file, content=b"paid", headers=user.headers)
    assert attached.status_code == 201, attached.text
    if through_batch:
        # A failing second operation: nothing is deleted, the file stays.
        failing = [
            {"op": "delete", "collection": "writers", "id": "frank"},
            {"op": "delete", "collection": "writers", "id": "nobody"},
        ]
        answer = await client.post("/v1/batch", json={"operations": failing}, headers=user.headers)
        assert answer.status_code == 404, answer.text
        assert (await client.get(loan_file, headers=user.headers)).status_code == 200
        ops = [{"op": "delete", "collection": "writers", "id": "frank"}]
        done = await client.post("/v1/batch", json={"operations": ops}, headers=user.headers)
    else:
        done = await client.delete(f"{docs('writers')}/frank", headers=user.headers)
    assert done.is_success, done.text
    assert (await get(client, user, "loans", "l1")).status_code == 404
    # A new l1 starts without the old one's file.
    await put(client, user, "loans", "l1", {})
    assert_problem(await client.get(loan_file, headers=user.headers), 404, "file_not_found")


async def test_a_document_the_caller_may_not_delete_answers_as_before_not_409(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, "shelves", {"type": "object"}, read="owner")
    await declare(
        client,
        admin,
        "books",
        LIBRARY["books"] | {"properties": {"shelf": ref("shelves", **{"x-on-delete": "restrict"})}},
    )
    await put(client, user, "shelves", "s1", {})
    await put(client, user, "books", "b1", {"shelf": "s1"})
    hidden = await client.delete(f"{docs('shelves')}/s1", headers=other_user.headers)
    assert_problem(hidden, 404, "document_not_found")
    stale = await client.delete(f"{docs('shelves')}/s1", headers=user.headers | {"If-Match": '"7"'})
    assert_problem(stale, 412, "precondition_failed")


async def test_names_of_accounts_expand_for_themselves_and_admins_only(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, "comments", COMMENTS)
    await put(client, other_user, "comments", "c", {"text": "x", "by": user.id})
    path = f"{docs('comments')}/c?expand=by"
    theirs = (await client.get(path, headers=other_user.headers)).json()["expanded"]["by"]
    assert theirs["document"] is None and theirs["reason"] == "not_found"
    mine = (await client.get(path, headers=user.headers)).json()["expanded"]["by"]
    assert mine["document"]["data"] == {"name": "Test User"}
    assert (await client.get(path, headers=admin.headers)).json()["expanded"]["by"]["document"]


async def test_anonymous_expands_see_nothing_private_and_no_401(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "authors", AUTHORS, read="owner")
    await declare(client, admin, "posts", POSTS, read="public")
    await put(client, user, "authors", "ada", {"name": "Ada"})
    await put(client, user, "posts", "p", {"title": "T", "author": "ada"})
    answer = await client.get(f"{docs('posts')}/p?expand=author")
    assert answer.status_code == 200, answer.text
    assert answer.json()["expanded"]["author"]["reason"] == "not_found"


async def test_repeated_references_count_toward_the_bound(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "authors", AUTHORS)
    await declare(client, admin, "posts", POSTS)
    await put(client, user, "authors", "ada", {"name": "Ada"})
    await put(client, user, "posts", "p", {"title": "T", "comments": ["ada"] * 1001})
    await declare(
        client,
        admin,
        "many",
        {"type": "object", "properties": {"who": {"type": "array", "items": ref("authors")}}},
    )
    await put(client, user, "many", "m", {"who": ["ada"] * 1001})
    answer = await client.get(f"{docs('many')}/m?expand=who", headers=user.headers)
    assert_problem(answer, 422, "validation_failed")


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"type": "string", "x-ref": "authors"}}},
        {
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "a": {"type": "string", "x-ref": "authors", "x-on-delete": "cascade"}
                        },
                    },
                }
            }
        },
        {"anyOf": [{"properties": {"a": {"type": "string", "x-ref": "authors"}}}]},
    ],
)
async def test_references_where_they_are_not_understood_are_422(
    schema: dict[str, Any], client: httpx.AsyncClient, admin: Account
) -> None:
    body = {"name": "posts", "schema": {"type": "object", **schema}}
    answer = await client.post("/v1/collections", json=body, headers=admin.headers)
    body = assert_problem(answer, 422, "validation_failed")
    assert "understood only" in body["detail"]


async def test_a_reference_that_acts_on_deletes_must_name_a_readable_document(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, "shelves", {"type": "object"}, read="owner")
    pinning = LIBRARY["books"] | {
        "properties": {
            "shelf": ref("shelves", **{"x-on-delete": "restrict"}),
            "note": ref("shelves"),  # a plain reference may point anywhere
        }
    }
    await declare(client, admin, "books", pinning)
    await put(client, user, "shelves", "mine", {})
    # Another user cannot pin it (nor name one that does not exist).
    for shelf in ("mine", "nothing"):
        refused = await client.post(
            docs("books"), json={"shelf": shelf}, headers=other_user.headers
        )
        body = assert_problem(refused, 422, "reference_not_found")
        assert body["errors"][0]["loc"] == ["data", "shelf"]
    bulk = await client.post(
        f"{docs('books')}/bulk",
        json={"documents": [{"shelf": "mine"}, {}]},
        headers=other_user.headers,
    )
    assert [i["status"] for i in bulk.json()["results"]] == [422, 201]
    loose = await client.post(docs("books"), json={"note": "mine"}, headers=other_user.headers)
    assert loose.status_code == 201, loose.text
    # Its owner can; a later change that keeps the reference is not checked again.
    made = await client.post(docs("books"), json={"shelf": "mine"}, headers=user.headers)
    assert made.status_code == 201, made.text
    book = made.json()["id"]
    patched = await client.patch(
        f"{docs('books')}/{book}", json={"title": "x"}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    moved = await client.patch(
        f"{docs('books')}/{book}", json={"shelf": "nothing"}, headers=user.headers
    )
    assert_problem(moved, 422, "reference_not_found")

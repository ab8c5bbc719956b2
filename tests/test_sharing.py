"""Access rules an app can express (issue 21), end to end through the API: a shared to-do
list, a team workspace with field rules, a blog with drafts; the shares endpoints and
their errors; rules refused at declaration."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.clock import utc_now
from app.container import Container
from tests.support.accounts import Account, MakeAccount, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.problems import assert_problem

TODO_RULES = {
    "read": "owner == @user || @user in shared.read",
    "update": "owner == @user || @user in shared.write",
    "delete": "owner == @user",
}
WORKSPACE_RULES = {
    "read": "team in @user.teams",
    "create": "team in @user.teams",
    "update": "team in @user.teams",
    "delete": '@team.role in ["owner", "admin"]',
}
MANAGERS_ONLY = '@team.role in ["owner", "admin"]'
BLOG_RULES = {
    "read": 'data.status == "published" || owner == @user',
    "create": '@user.role == "admin" || data.status == "draft"',
    "update": 'owner == @user && data.status == "draft"',
}


async def declare(client: httpx.AsyncClient, admin: Account, name: str, **access: Any) -> None:
    body = {"name": name, "access": {"write": "authenticated", **access}}
    response = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text


def docs(name: str) -> str:
    return f"/v1/collections/{name}/documents"


async def create(
    client: httpx.AsyncClient, who: Account, name: str, data: Any, **params: str
) -> dict[str, Any]:
    response = await client.post(docs(name), json=data, headers=who.headers, params=params)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def listed(client: httpx.AsyncClient, who: Account | None, name: str, **params: str) -> Any:
    headers = who.headers if who is not None else {}
    response = await client.get(docs(name), headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def counted(client: httpx.AsyncClient, who: Account, name: str) -> int:
    response = await client.get(f"{docs(name)}/count", headers=who.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


async def team_with(container: Container, owner: Account, members: dict[str, Account]) -> str:
    principal = await container.auth.users.get_principal(owner.id)
    assert principal is not None
    team = (await container.teams.create(principal, "Crew")).team.id
    for role, member in members.items():
        await container.teams.repository.add_member(team, member.id, role, now=utc_now())
    return team


# -- a shared to-do list --------------------------------------------------------------------


async def test_a_shared_list_is_read_by_readers_written_by_writers_and_private_otherwise(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    await declare(client, admin, "todos", rules=TODO_RULES)
    alice, bob, carol = await make_account(), await make_account(), await make_account()
    doc = await create(client, alice, "todos", {"title": "Groceries", "items": []})
    url = f"{docs('todos')}/{doc['id']}"
    shares = f"{url}/shares"

    # Private to start with.
    assert_problem(await client.get(url, headers=bob.headers), 404, "document_not_found")
    assert await listed(client, bob, "todos") == []

    added = await client.post(
        shares, json={"user": bob.id, "access": "read"}, headers=alice.headers
    )
    assert added.status_code == 201, added.text
    assert added.json() == {"kind": "user", "id": bob.id, "access": "read"}
    assert (await client.get(url, headers=bob.headers)).json()["data"]["title"] == "Groceries"
    assert await listed(client, bob, "todos") == [doc["id"]]
    assert await counted(client, bob, "todos") == 1
    # Reading is not writing, and nobody else sees it.
    refused = await client.patch(url, json={"title": "Mine"}, headers=bob.headers)
    assert_problem(refused, 403, "forbidden")
    assert_problem(await client.get(url, headers=carol.headers), 404, "document_not_found")
    assert await listed(client, carol, "todos") == []

    upgraded = await client.post(
        shares, json={"user": bob.id, "access": "write"}, headers=alice.headers
    )
    assert upgraded.status_code == 200, upgraded.text
    patched = await client.patch(url, json={"items": ["milk"]}, headers=bob.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"] == {"title": "Groceries", "items": ["milk"]}
    # Only the owner deletes; a writer cannot re-share either.
    assert_problem(await client.delete(url, headers=bob.headers), 403, "forbidden")
    reshared = await client.post(
        shares, json={"user": carol.id, "access": "read"}, headers=bob.headers
    )
    assert_problem(reshared, 403, "forbidden")
    listing = await client.get(shares, headers=bob.headers)
    assert listing.json() == {"items": [{"kind": "user", "id": bob.id, "access": "write"}]}

    # Bob leaves; the list is Alice's alone again.
    left = await client.delete(f"{shares}/users/{bob.id}", headers=bob.headers)
    assert left.status_code == 204, left.text
    assert_problem(await client.get(url, headers=bob.headers), 404, "document_not_found")
    assert (await client.get(shares, headers=alice.headers)).json() == {"items": []}


async def test_share_errors_are_problems_and_change_nothing(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount, container: Container
) -> None:
    await declare(client, admin, "todos", rules=TODO_RULES)
    alice, bob = await make_account(), await make_account()
    doc = await create(client, alice, "todos", {"title": "T"})
    shares = f"{docs('todos')}/{doc['id']}/shares"
    team = await team_with(container, bob, {})  # Bob's team, not Alice's

    nobody = await client.post(
        shares, json={"user": "nobody-at-all", "access": "read"}, headers=alice.headers
    )
    assert_problem(nobody, 404, "user_not_found")
    not_hers = await client.post(
        shares, json={"team": team, "access": "read"}, headers=alice.headers
    )
    assert_problem(not_hers, 404, "team_not_found")
    both = await client.post(
        shares, json={"user": bob.id, "team": team, "access": "read"}, headers=alice.headers
    )
    assert_problem(both, 422, "validation_failed")
    level = await client.post(
        shares, json={"user": bob.id, "access": "admin"}, headers=alice.headers
    )
    assert_problem(level, 422, "validation_failed")
    anonymous = await client.post(shares, json={"user": bob.id, "access": "read"})
    assert_problem(anonymous, 401, "not_authenticated")
    missing = await client.delete(f"{shares}/users/{bob.id}", headers=alice.headers)
    assert_problem(missing, 404, "share_not_found")
    unknown_doc = await client.get(f"{docs('todos')}/nope/shares", headers=alice.headers)
    assert_problem(unknown_doc, 404, "document_not_found")

    after = await client.get(f"{docs('todos')}/{doc['id']}", headers=alice.headers)
    assert after.json()["version"] == 1
    assert (await client.get(shares, headers=alice.headers)).json() == {"items": []}


async def test_a_document_shares_with_a_bounded_number_of_grantees(database_url: str) -> None:
    settings = make_settings(database_url, document_max_shares=2)
    async with running_app(settings) as app, http_client(app) as api:
        admin = await signed_in(app, api, role=Role.ADMIN)
        alice = await signed_in(app, api)
        grantees = [await signed_in(app, api) for _ in range(3)]
        await declare(api, admin, "todos", rules=TODO_RULES)
        doc = await create(api, alice, "todos", {"title": "T"})
        shares = f"{docs('todos')}/{doc['id']}/shares"
        for grantee in grantees[:2]:
            added = await api.post(
                shares, json={"user": grantee.id, "access": "read"}, headers=alice.headers
            )
            assert added.status_code == 201, added.text
        third = await api.post(
            shares, json={"user": grantees[2].id, "access": "read"}, headers=alice.headers
        )
        body = assert_problem(third, 409, "share_limit_reached")
        assert "DOCUMENT_MAX_SHARES" in body["detail"]
        # Changing the level of an existing share is not a new share.
        again = await api.post(
            shares, json={"user": grantees[0].id, "access": "write"}, headers=alice.headers
        )
        assert again.status_code == 200, again.text
        assert len((await api.get(shares, headers=alice.headers)).json()["items"]) == 2


# -- a team workspace with field rules -----------------------------------------------------


@pytest.fixture
async def workspace(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount, container: Container
) -> dict[str, Any]:
    await declare(
        client,
        admin,
        "pages",
        rules=WORKSPACE_RULES,
        fields=[{"path": "data.internal_notes", "read": MANAGERS_ONLY, "write": MANAGERS_ONLY}],
    )
    lead, member, stranger = await make_account(), await make_account(), await make_account()
    team = await team_with(container, lead, {"member": member})
    page = await create(
        client, lead, "pages", {"title": "Plan", "internal_notes": "budget 10k"}, team=team
    )
    return {"lead": lead, "member": member, "stranger": stranger, "team": team, "page": page}


async def test_a_team_workspace_is_shared_by_its_members_only(
    client: httpx.AsyncClient, workspace: dict[str, Any]
) -> None:
    lead, member, stranger = workspace["lead"], workspace["member"], workspace["stranger"]
    page = workspace["page"]
    url = f"{docs('pages')}/{page['id']}"
    assert page["team"] == workspace["team"]

    assert await listed(client, member, "pages") == [page["id"]]
    assert await listed(client, stranger, "pages") == []
    assert_problem(await client.get(url, headers=stranger.headers), 404, "document_not_found")
    # Members edit; only the team's owner and admins delete.
    edited = await client.patch(url, json={"title": "Plan B"}, headers=member.headers)
    assert edited.status_code == 200, edited.text
    assert_problem(await client.delete(url, headers=member.headers), 403, "forbidden")
    # A document outside any team passes no create rule here; nor does someone else's team.
    assert_problem(
        await client.post(docs("pages"), json={"title": "x"}, headers=member.headers),
        403,
        "forbidden",
    )
    foreign = await client.post(
        docs("pages"),
        json={"title": "x"},
        headers=stranger.headers,
        params={"team": workspace["team"]},
    )
    body = assert_problem(foreign, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["query", "team"]
    assert (await client.delete(url, headers=lead.headers)).status_code == 204


async def test_field_rules_hide_and_guard_a_field(
    client: httpx.AsyncClient, workspace: dict[str, Any]
) -> None:
    lead, member = workspace["lead"], workspace["member"]
    url = f"{docs('pages')}/{workspace['page']['id']}"

    seen = (await client.get(url, headers=member.headers)).json()
    assert seen["data"] == {"title": "Plan"}
    assert (await client.get(url, headers=lead.headers)).json()["data"]["internal_notes"]
    page = (await client.get(docs("pages"), headers=member.headers)).json()["items"][0]
    assert "internal_notes" not in page["data"]

    # Filtering or sorting on it would tell its values.
    guessed = json.dumps({"data.internal_notes": "budget 10k"})
    refused = await client.get(docs("pages"), params={"filter": guessed}, headers=member.headers)
    assert_problem(refused, 403, "field_forbidden")
    by_it = await client.get(
        docs("pages"), params={"sort": "data.internal_notes"}, headers=member.headers
    )
    assert_problem(by_it, 403, "field_forbidden")

    # Writing it is refused, even its stored value (else answers would confirm guesses).
    for guess in ("mine", "budget 10k"):
        wrote = await client.patch(url, json={"internal_notes": guess}, headers=member.headers)
        assert_problem(wrote, 403, "field_forbidden")
    stream = await client.get(
        "/v1/collections/pages/events", params={"filter": guessed}, headers=member.headers
    )
    assert_problem(stream, 403, "field_forbidden")  # which events arrive would tell
    # Replacing what they see keeps it.
    replaced = await client.put(url, json={"title": "Plan C"}, headers=member.headers)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["data"] == {"title": "Plan C"}
    kept = (await client.get(url, headers=lead.headers)).json()["data"]
    assert kept == {"title": "Plan C", "internal_notes": "budget 10k"}
    # A team admin writes it.
    changed = await client.patch(url, json={"internal_notes": "10.5k"}, headers=lead.headers)
    assert changed.status_code == 200, changed.text


# -- a blog with drafts ---------------------------------------------------------------------


async def test_a_blog_shows_published_posts_to_everyone_and_drafts_to_their_author(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    await declare(client, admin, "posts", rules=BLOG_RULES)
    author, reader = await make_account(), await make_account()
    draft = await create(client, author, "posts", {"status": "draft", "title": "Soon"})
    published = await client.post(
        docs("posts"), json={"status": "published", "title": "Now"}, headers=author.headers
    )
    assert_problem(published, 403, "forbidden")  # authors create drafts; admins publish
    post = await create(client, admin, "posts", {"status": "published", "title": "Now"})

    assert await listed(client, None, "posts") == [post["id"]]
    assert await listed(client, reader, "posts") == [post["id"]]
    assert sorted(await listed(client, author, "posts")) == sorted([draft["id"], post["id"]])
    hidden = await client.get(f"{docs('posts')}/{draft['id']}", headers=reader.headers)
    assert_problem(hidden, 404, "document_not_found")
    # The update rule holds after the change too: an author edits a draft, never
    # publishes it.
    url = f"{docs('posts')}/{draft['id']}"
    edited = await client.patch(url, json={"title": "Sooner"}, headers=author.headers)
    assert edited.status_code == 200, edited.text
    publish = await client.patch(url, json={"status": "published"}, headers=author.headers)
    assert_problem(publish, 403, "forbidden")
    still = await client.get(url, headers=author.headers)
    assert still.json()["data"] == {"status": "draft", "title": "Sooner"}


# -- declaring rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "loc"),
    [
        ({"rules": {"read": "owner =="}}, ["body", "access", "rules", "read"]),
        ({"rules": {"update": "__import__('os')"}}, ["body", "access", "rules", "update"]),
        ({"rules": {"list": "@nobody == 1"}}, ["body", "access", "rules", "list"]),
        ({"rules": {"delete": "data.a == data.b"}}, ["body", "access", "rules", "delete"]),
        ({"rules": {"read": "5 in @user"}}, ["body", "access", "rules", "read"]),
        ({"rules": {"read": 'data.x == "\\ud800"'}}, ["body", "access", "rules", "read"]),
        ({"fields": [{"path": "data.x"}]}, ["body", "access", "fields", 0]),
        (
            {"fields": [{"path": "data.x", "read": "true"}, {"path": "data.x", "read": "true"}]},
            ["body", "access", "fields", 1, "path"],
        ),
    ],
)
async def test_a_rule_that_cannot_work_is_refused_when_declared(
    client: httpx.AsyncClient, admin: Account, access: dict[str, Any], loc: list[Any]
) -> None:
    body = {"name": "ruled", "access": access}
    response = await client.post("/v1/collections", json=body, headers=admin.headers)
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == loc, problem
    assert_problem(
        await client.get("/v1/collections/ruled", headers=admin.headers),
        404,
        "collection_not_found",
    )


# -- the other paths: bulk changes, batch, keyset pages, idempotency replays ---------------


async def test_bulk_changes_and_batches_reach_only_what_the_rules_allow(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    await declare(client, admin, "todos", rules=TODO_RULES)
    alice, bob = await make_account(), await make_account()
    shared_ids = []
    for i in range(4):
        doc = await create(client, alice, "todos", {"n": i, "done": False})
        if i % 2 == 0:
            grant = {"user": bob.id, "access": "write" if i == 0 else "read"}
            added = await client.post(
                f"{docs('todos')}/{doc['id']}/shares", json=grant, headers=alice.headers
            )
            assert added.status_code == 201, added.text
            shared_ids.append(doc["id"])

    updated = await client.post(
        f"{docs('todos')}/bulk-update",
        json={"filter": {}, "update": {"set": {"done": True}}},
        headers=bob.headers,
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["matched"], updated.json()["modified"]) == (1, 1)
    deleted = await client.post(
        f"{docs('todos')}/bulk-delete", json={"filter": {}}, headers=bob.headers
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["matched"] == 0  # only owners delete
    everything = (await client.get(docs("todos"), headers=alice.headers)).json()["items"]
    assert sorted(d["data"]["n"] for d in everything if d["data"]["done"]) == [0]
    assert len(everything) == 4

    # A batch touching a read-only share fails whole, naming the operation.
    writable, readable = shared_ids
    batch = await client.post(
        "/v1/batch",
        json={
            "operations": [
                {"op": "patch", "collection": "todos", "id": writable, "patch": {"n": 10}},
                {"op": "patch", "collection": "todos", "id": readable, "patch": {"n": 20}},
            ]
        },
        headers=bob.headers,
    )
    problem = assert_problem(batch, 403, "forbidden")
    assert problem["errors"][0]["loc"][:2] == ["body", "operations"]
    first = await client.get(f"{docs('todos')}/{writable}", headers=alice.headers)
    assert first.json()["data"]["n"] == 0


async def test_keyset_pages_and_replays_follow_the_rules(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount, container: Container
) -> None:
    await declare(client, admin, "pages", rules=WORKSPACE_RULES)
    lead, member = await make_account(), await make_account()
    team = await team_with(container, lead, {"member": member})
    own_team = await team_with(container, lead, {})  # the lead's alone
    for i in range(6):  # odd ones in the shared team, even ones in the lead's own
        await create(client, lead, "pages", {"n": i}, team=team if i % 2 else own_team)
    seen, cursor = [], None
    while True:
        params = {"limit": "1", "sort": "data.n", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(docs("pages"), params=params, headers=member.headers)).json()
        seen += [item["data"]["n"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 3, 5]

    key = {"Idempotency-Key": "create-once"}
    first = await client.post(
        docs("pages"), json={"n": 7}, params={"team": team}, headers={**member.headers, **key}
    )
    assert first.status_code == 201, first.text
    replay = await client.post(
        docs("pages"), json={"n": 7}, params={"team": team}, headers={**member.headers, **key}
    )
    assert replay.status_code == 201 and replay.json() == first.json()
    # Once a rule change hides it, the member's replay no longer shows it.
    narrowed = {**WORKSPACE_RULES, "read": "team in @user.teams && data.n < 7"}
    changed = await client.patch(
        "/v1/collections/pages",
        json={"access": {"write": "authenticated", "rules": narrowed}},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.text
    gone = await client.post(
        docs("pages"), json={"n": 7}, params={"team": team}, headers={**member.headers, **key}
    )
    assert_problem(gone, 404, "document_not_found")


async def test_field_rules_compare_strictly_and_reach_into_arrays(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    only_admins = '@user.role == "admin"'
    await declare(
        client,
        admin,
        "profiles",
        read="authenticated",
        fields=[
            {"path": "data.banned", "write": only_admins},
            {"path": "data.reviews.approved", "write": only_admins},
            {"path": "data.private.note", "read": only_admins, "write": only_admins},
        ],
    )
    alice, bob = await make_account(), await make_account()
    made = await client.post(docs("profiles"), json={"banned": True}, headers=alice.headers)
    assert_problem(made, 403, "field_forbidden")
    mine = await create(client, admin, "profiles", {"banned": True})
    url = f"{docs('profiles')}/{mine['id']}"
    # `1` is not `true`: a change, refused.
    assert_problem(
        await client.patch(url, json={"banned": 1}, headers=alice.headers), 403, "field_forbidden"
    )
    # A guarded path inside array elements is guarded in every element.
    approved = await client.post(
        docs("profiles"), json={"reviews": [{"approved": True}]}, headers=alice.headers
    )
    assert_problem(approved, 403, "field_forbidden")
    # A hidden path through an array hides the array; filters through it are refused.
    notes = await create(client, admin, "profiles", {"private": [{"note": "n1"}], "x": 1})
    seen = await client.get(f"{docs('profiles')}/{notes['id']}", headers=bob.headers)
    assert seen.json()["data"] == {"x": 1}
    by_index = json.dumps({"data.private.0.note": "n1"})
    listed_by = await client.get(docs("profiles"), params={"filter": by_index}, headers=bob.headers)
    assert_problem(listed_by, 403, "field_forbidden")


async def test_the_list_rule_bounds_bulk_changes(
    client: httpx.AsyncClient, admin: Account, make_account: MakeAccount
) -> None:
    # Readable by id (a link), listed only by their owner; anyone signed in may update.
    rules = {"list": "owner == @user", "read": "true", "update": "@user != null"}
    await declare(client, admin, "links", rules=rules)
    alice, bob = await make_account(), await make_account()
    doc = await create(client, alice, "links", {"n": 1})
    assert (await client.get(f"{docs('links')}/{doc['id']}", headers=bob.headers)).is_success
    assert await listed(client, bob, "links") == []
    bulk = await client.post(
        f"{docs('links')}/bulk-update",
        json={"filter": {}, "update": {"inc": {"n": 1}}},
        headers=bob.headers,
    )
    assert bulk.status_code == 200, bulk.text
    assert (bulk.json()["matched"], bulk.json()["failed"]) == (0, [])

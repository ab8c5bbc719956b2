"""Authorization matrix, rule dimension (issue 21): every document route x every kind of
caller a rule can tell apart (owner, team owner, team member, shared reader, shared
writer, stranger, anonymous, site admin) under one collection that combines ownership,
teams, shares and a field rule.

Next to `test_authorization.py` (route x {anonymous, user, other, admin} under the
presets) rather than inside it so the two grids run on different workers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.clock import utc_now
from app.container import Container
from tests.support.accounts import Account, MakeAccount

ANON, OWNER, LEAD, MEMBER = "anonymous", "owner", "team owner", "team member"
READER, WRITER, STRANGER, ADMIN = "shared reader", "shared writer", "stranger", "site admin"
CALLERS = (ANON, OWNER, LEAD, MEMBER, READER, WRITER, STRANGER, ADMIN)

MANAGERS = '@team.role in ["owner", "admin"]'
ACCESS = {
    "write": "authenticated",
    "rules": {
        "read": "owner == @user || team in @user.teams || @user in shared.read",
        "update": f"owner == @user || @user in shared.write || {MANAGERS}",
        "delete": f"owner == @user || {MANAGERS}",
    },
    "fields": [
        {
            "path": "data.secret",
            "read": f"owner == @user || {MANAGERS}",
            "write": f"owner == @user || {MANAGERS}",
        }
    ],
}
# Who passes each rule, by construction of the world below (site admins pass every rule).
READS = {OWNER, LEAD, MEMBER, READER, WRITER, ADMIN}
UPDATES = {OWNER, LEAD, WRITER, ADMIN}
DELETES = {OWNER, LEAD, ADMIN}
SEES_SECRET = {OWNER, LEAD, ADMIN}
WRITES_SECRET = {OWNER, LEAD, ADMIN}
SHARES = {OWNER, LEAD, ADMIN}  # the document's owner, its team's owner/admins, site admins
FILTERS_SECRET = {ADMIN}  # a filter on a field some documents hide would tell its values

DOCS = "/v1/collections/ruled/documents"
OK = "ok"


@dataclass
class World:
    accounts: dict[str, Account]
    team: str
    new_doc: Callable[..., Awaitable[str]]


def expected(caller: str, passes: set[str], *, forbidden: str = "forbidden") -> tuple[Any, str]:
    """A document the caller may not read is 404 on every route; a rule they fail on a
    document they can read is 403; anonymous callers are asked to sign in."""
    if caller == ANON:
        return 401, "not_authenticated"
    if caller not in READS:
        return 404, "document_not_found"
    if caller not in passes:
        # A field rule is judged once the document rule lets the change through.
        return 403, forbidden if caller in UPDATES else "forbidden"
    return OK, ""


# route -> (who passes, problem code when refused, request builder(doc id, world))
Builder = Callable[[str, World], tuple[str, str, dict[str, Any]]]
ROUTES: dict[str, tuple[set[str], str, Builder]] = {
    "get": (READS, "forbidden", lambda d, w: ("GET", f"{DOCS}/{d}", {})),
    "put": (UPDATES, "forbidden", lambda d, w: ("PUT", f"{DOCS}/{d}", {"json": {"n": 2}})),
    "patch": (UPDATES, "forbidden", lambda d, w: ("PATCH", f"{DOCS}/{d}", {"json": {"n": 2}})),
    "patch_secret": (
        WRITES_SECRET,
        "field_forbidden",
        lambda d, w: ("PATCH", f"{DOCS}/{d}", {"json": {"secret": "s2"}}),
    ),
    "update": (
        UPDATES,
        "forbidden",
        lambda d, w: ("POST", f"{DOCS}/{d}/update", {"json": {"inc": {"n": 1}}}),
    ),
    "delete": (DELETES, "forbidden", lambda d, w: ("DELETE", f"{DOCS}/{d}", {})),
    "files_list": (READS, "forbidden", lambda d, w: ("GET", f"{DOCS}/{d}/files", {})),
    "files_get": (READS, "forbidden", lambda d, w: ("GET", f"{DOCS}/{d}/files/a.txt", {})),
    "files_put": (
        UPDATES,
        "forbidden",
        lambda d, w: ("PUT", f"{DOCS}/{d}/files/b.txt", {"content": b"b"}),
    ),
    "files_delete": (
        UPDATES,
        "forbidden",
        lambda d, w: ("DELETE", f"{DOCS}/{d}/files/a.txt", {}),
    ),
    "files_link": (  # a token-less way in changes who sees the file: it takes writing
        UPDATES,
        "forbidden",
        lambda d, w: ("POST", f"{DOCS}/{d}/files/a.txt/link", {"json": {"expires_in": 60}}),
    ),
    "shares_list": (READS, "forbidden", lambda d, w: ("GET", f"{DOCS}/{d}/shares", {})),
    "shares_add": (
        SHARES,
        "forbidden",
        lambda d, w: (
            "POST",
            f"{DOCS}/{d}/shares",
            {"json": {"user": w.accounts[STRANGER].id, "access": "read"}},
        ),
    ),
    "shares_remove": (
        SHARES | {READER},  # anyone may leave what was shared with them
        "forbidden",
        lambda d, w: ("DELETE", f"{DOCS}/{d}/shares/users/{w.accounts[READER].id}", {}),
    ),
}


async def make_world(
    client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> World:
    accounts = {
        who: await make_account(role=Role.ADMIN if who == ADMIN else Role.USER)
        for who in CALLERS
        if who != ANON
    }
    admin = accounts[ADMIN].headers
    declared = await client.post(
        "/v1/collections", json={"name": "ruled", "access": ACCESS}, headers=admin
    )
    assert declared.status_code == 201, declared.text
    lead = await container.auth.users.get_principal(accounts[LEAD].id)
    assert lead is not None
    team = (await container.teams.create(lead, "Crew")).team.id
    for who in (OWNER, MEMBER):
        await container.teams.repository.add_member(team, accounts[who].id, "member", now=utc_now())
    owner = accounts[OWNER].headers

    async def new_doc(*, with_file: bool = False) -> str:
        made = await client.post(
            DOCS, json={"n": 1, "secret": "s1"}, params={"team": team}, headers=owner
        )
        assert made.status_code == 201, made.text
        doc_id: str = made.json()["id"]
        for who, level in ((READER, "read"), (WRITER, "write")):
            shared = await client.post(
                f"{DOCS}/{doc_id}/shares",
                json={"user": accounts[who].id, "access": level},
                headers=owner,
            )
            assert shared.status_code == 201, shared.text
        if with_file:  # GridFS writes are the slow part: only the file routes need one
            attached = await client.put(f"{DOCS}/{doc_id}/files/a.txt", content=b"a", headers=owner)
            assert attached.status_code == 201, attached.text
        return doc_id

    return World(accounts, team, new_doc)


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_rule_grid(
    route: str, client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    world = await make_world(client, make_account, container)
    passes, refusal, build = ROUTES[route]
    admin = world.accounts[ADMIN].headers
    wrong: list[tuple[Any, ...]] = []
    for caller in CALLERS:
        doc_id = await world.new_doc(with_file=route.startswith("files_"))
        before = (await client.get(f"{DOCS}/{doc_id}", headers=admin)).json()
        method, path, kwargs = build(doc_id, world)
        headers = world.accounts[caller].headers if caller != ANON else {}
        response = await client.request(method, path, headers=headers, **kwargs)
        status, code = expected(caller, passes, forbidden=refusal)
        if status == OK:
            if response.status_code >= 400:
                wrong.append((caller, OK, response.status_code, response.text[:200]))
            continue
        got_code = response.json().get("code") if response.content else None
        if (response.status_code, got_code) != (status, code):
            wrong.append((caller, (status, code), response.status_code, response.text[:200]))
        # Refused means untouched: the document, its shares and its files.
        after = (await client.get(f"{DOCS}/{doc_id}", headers=admin)).json()
        if after != before:
            wrong.append((caller, "changed", before, after))
    assert not wrong, "\n".join(f"{w[0]}: {w[1:3]}" for w in wrong)


async def test_reads_show_the_secret_field_only_to_those_its_rule_names(
    client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    world = await make_world(client, make_account, container)
    doc_id = await world.new_doc()
    for caller in sorted(READS):
        headers = world.accounts[caller].headers
        one = (await client.get(f"{DOCS}/{doc_id}", headers=headers)).json()["data"]
        many = (await client.get(DOCS, headers=headers)).json()["items"]
        assert [item["id"] for item in many] == [doc_id], caller
        expected_data = {"n": 1, "secret": "s1"} if caller in SEES_SECRET else {"n": 1}
        assert one == many[0]["data"] == expected_data, caller


@pytest.mark.parametrize("query", ["filter", "sort", "count"])
async def test_list_count_and_filters_follow_the_rules(
    query: str, client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    world = await make_world(client, make_account, container)
    doc_id = await world.new_doc()
    for caller in CALLERS:
        headers = world.accounts[caller].headers if caller != ANON else {}
        if query == "count":
            response = await client.get(f"{DOCS}/count", headers=headers)
            if caller == ANON:
                assert response.status_code == 401, response.text
            else:
                assert response.json()["count"] == (1 if caller in READS else 0), caller
            continue
        params = (
            {"filter": json.dumps({"data.secret": "s1"})}
            if query == "filter"
            else {"sort": "-data.secret"}
        )
        response = await client.get(DOCS, params=params, headers=headers)
        if caller == ANON:
            assert response.status_code == 401, response.text
        elif caller in FILTERS_SECRET:
            assert [item["id"] for item in response.json()["items"]] == [doc_id]
        else:
            assert response.status_code == 403, (caller, response.text)
            assert response.json()["code"] == "field_forbidden"

"""Teams: create, invite by mail, accept, roles, leave, transfer, delete (issue 21)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.clock import utc_now
from app.config import Settings
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.mail import Inbox, parts, token_in
from tests.support.problems import assert_problem

TEAMS = "/v1/teams"


def team_settings(database_url: str, smtp: tuple[Inbox, int], **limits: int) -> Settings:
    """An app that mails invitations to the test's SMTP server, with these team limits."""
    return make_settings(
        database_url,
        mail_url=f"smtp://127.0.0.1:{smtp[1]}",
        public_url="https://app.example",
        app_name="Notely",
        **limits,
    )


@pytest.fixture
async def team_app(database_url: str, smtp: tuple[Inbox, int]) -> AsyncIterator[FastAPI]:
    async with running_app(team_settings(database_url, smtp, teams_max_per_user=2)) as app:
        yield app


@pytest.fixture
async def api(team_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(team_app) as client:
        yield client


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    return smtp[0]


async def new_team(api: httpx.AsyncClient, owner: Account, name: str = "Crew") -> dict[str, Any]:
    made = await api.post(TEAMS, json={"name": name}, headers=owner.headers)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == f"{TEAMS}/{made.json()['id']}"
    return dict(made.json())


async def join(
    api: httpx.AsyncClient, inbox: Inbox, team: str, by: Account, who: Account, role: str
) -> None:
    invited = await api.post(
        f"{TEAMS}/{team}/invitations", json={"email": who.email, "role": role}, headers=by.headers
    )
    assert invited.status_code == 201, invited.text
    token = token_in(await inbox.next(), "accept-invitation")
    accepted = await api.post(
        f"{TEAMS}/invitations/accept", json={"token": token}, headers=who.headers
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == role


async def test_an_invitation_mailed_to_an_address_lets_that_account_join_once(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    ada = await signed_in(team_app, api, email="ada@example.com")
    bob = await signed_in(team_app, api, email="bob@example.com")
    eve = await signed_in(team_app, api, email="eve@example.com")
    team = await new_team(api, ada)
    assert team["role"] == "owner" and team["owner_id"] == ada.id

    invited = await api.post(
        f"{TEAMS}/{team['id']}/invitations",
        json={"email": " Bob@Example.com", "role": "editor"},
        headers=ada.headers,
    )
    assert invited.status_code == 201
    assert invited.json()["email"] == "bob@example.com"
    mail = await inbox.next()
    assert mail["To"] == "bob@example.com"
    assert "Crew" in mail["Subject"] and "editor" in parts(mail)[0]
    token = token_in(mail, "accept-invitation")

    # Only the invited address's account may use it, and a refusal does not use it up.
    wrong = await api.post(
        f"{TEAMS}/invitations/accept", json={"token": token}, headers=eve.headers
    )
    assert_problem(wrong, 403, "forbidden")
    joined = await api.post(
        f"{TEAMS}/invitations/accept", json={"token": token}, headers=bob.headers
    )
    assert joined.status_code == 200
    assert joined.json()["role"] == "editor"
    again = await api.post(
        f"{TEAMS}/invitations/accept", json={"token": token}, headers=bob.headers
    )
    assert_problem(again, 400, "invalid_token")

    mine = await api.get(TEAMS, headers=bob.headers)
    assert [(t["name"], t["role"]) for t in mine.json()["items"]] == [("Crew", "editor")]
    members = await api.get(f"{TEAMS}/{team['id']}/members", headers=bob.headers)
    assert [(m["name"], m["role"], m["email"]) for m in members.json()["items"]] == [
        ("Test User", "owner", None),  # members see names; emails are for managers
        ("Test User", "editor", None),
    ]
    managed = await api.get(f"{TEAMS}/{team['id']}/members", headers=ada.headers)
    assert [m["email"] for m in managed.json()["items"]] == ["ada@example.com", "bob@example.com"]
    assert (await api.get(f"{TEAMS}/{team['id']}", headers=eve.headers)).status_code == 404


async def test_a_revoked_invitation_cannot_be_accepted(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    ada = await signed_in(team_app, api)
    bob = await signed_in(team_app, api)
    team = await new_team(api, ada)
    invited = await api.post(
        f"{TEAMS}/{team['id']}/invitations", json={"email": bob.email}, headers=ada.headers
    )
    token = token_in(await inbox.next(), "accept-invitation")
    pending = await api.get(f"{TEAMS}/{team['id']}/invitations", headers=ada.headers)
    assert [i["email"] for i in pending.json()["items"]] == [bob.email]
    revoked = await api.delete(
        f"{TEAMS}/{team['id']}/invitations/{invited.json()['id']}", headers=ada.headers
    )
    assert revoked.status_code == 204
    late = await api.post(f"{TEAMS}/invitations/accept", json={"token": token}, headers=bob.headers)
    assert_problem(late, 400, "invalid_token")
    gone = await api.delete(
        f"{TEAMS}/{team['id']}/invitations/{invited.json()['id']}", headers=ada.headers
    )
    assert_problem(gone, 404, "invitation_not_found")


async def test_roles_decide_who_manages_and_the_owner_leaves_only_by_transfer(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    owner = await signed_in(team_app, api)
    admin = await signed_in(team_app, api)
    member = await signed_in(team_app, api)
    team = (await new_team(api, owner))["id"]
    await join(api, inbox, team, owner, admin, "admin")
    await join(api, inbox, team, admin, member, "member")

    # Members do not manage; admins do, but do not make admins or touch the owner.
    rename = await api.patch(f"{TEAMS}/{team}", json={"name": "X"}, headers=member.headers)
    assert_problem(rename, 403, "forbidden")
    assert (
        await api.patch(f"{TEAMS}/{team}", json={"name": "Crew 2"}, headers=admin.headers)
    ).json()["name"] == "Crew 2"
    promote = await api.patch(
        f"{TEAMS}/{team}/members/{member.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert_problem(promote, 403, "forbidden")
    usurp = await api.patch(
        f"{TEAMS}/{team}/members/{owner.id}", json={"role": "member"}, headers=admin.headers
    )
    assert_problem(usurp, 409, "owner_must_transfer")
    custom = await api.patch(
        f"{TEAMS}/{team}/members/{member.id}", json={"role": "billing"}, headers=admin.headers
    )
    assert custom.json()["role"] == "billing"
    bad = await api.patch(
        f"{TEAMS}/{team}/members/{member.id}", json={"role": "Bad Role"}, headers=owner.headers
    )
    assert_problem(bad, 422, "validation_failed")
    assert_problem(
        await api.delete(f"{TEAMS}/{team}/members/{admin.id}", headers=member.headers),
        403,
        "forbidden",
    )

    # The owner cannot leave; after a transfer, the new owner holds everything.
    leave = await api.delete(f"{TEAMS}/{team}/members/{owner.id}", headers=owner.headers)
    assert_problem(leave, 409, "owner_must_transfer")
    moved = await api.post(
        f"{TEAMS}/{team}/transfer", json={"user_id": admin.id}, headers=owner.headers
    )
    assert (moved.json()["role"], moved.json()["owner_id"]) == ("admin", admin.id)
    twice = await api.post(
        f"{TEAMS}/{team}/transfer", json={"user_id": member.id}, headers=owner.headers
    )
    assert_problem(twice, 403, "forbidden")  # no longer the owner
    assert (await api.get(f"{TEAMS}/{team}", headers=admin.headers)).json()["owner_id"] == admin.id
    assert (
        await api.delete(f"{TEAMS}/{team}/members/{owner.id}", headers=owner.headers)
    ).status_code == 204
    assert (await api.get(f"{TEAMS}/{team}", headers=owner.headers)).status_code == 404
    assert_problem(await api.delete(f"{TEAMS}/{team}", headers=member.headers), 403, "forbidden")
    assert (await api.delete(f"{TEAMS}/{team}", headers=admin.headers)).status_code == 204
    assert (await api.get(TEAMS, headers=member.headers)).json()["items"] == []


async def test_an_account_belongs_to_a_bounded_number_of_teams(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    ada = await signed_in(team_app, api)
    bob = await signed_in(team_app, api)
    await new_team(api, ada, "One")
    await new_team(api, ada, "Two")
    third = await api.post(TEAMS, json={"name": "Three"}, headers=ada.headers)
    assert_problem(third, 409, "team_limit_reached")
    team = (await new_team(api, bob))["id"]
    await api.post(f"{TEAMS}/{team}/invitations", json={"email": ada.email}, headers=bob.headers)
    token = token_in(await inbox.next(), "accept-invitation")
    full = await api.post(f"{TEAMS}/invitations/accept", json={"token": token}, headers=ada.headers)
    assert_problem(full, 409, "team_limit_reached")


async def test_deleting_an_account_removes_its_teams_and_memberships(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    ada = await signed_in(team_app, api)
    bob = await signed_in(team_app, api)
    mine = (await new_team(api, ada, "Ada's"))["id"]
    theirs = (await new_team(api, bob, "Bob's"))["id"]
    await join(api, inbox, mine, ada, bob, "member")
    await join(api, inbox, theirs, bob, ada, "member")
    await team_app.state.container.user_service.delete(ada.id)
    assert (await api.get(f"{TEAMS}/{mine}", headers=bob.headers)).status_code == 404
    members = await api.get(f"{TEAMS}/{theirs}/members", headers=bob.headers)
    assert [m["user_id"] for m in members.json()["items"]] == [bob.id]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"name": "A", "extra": 1}, "extra")],
)
async def test_bad_team_bodies_are_422_and_make_nothing(
    team_app: FastAPI, api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    ada = await signed_in(team_app, api)
    refused = assert_problem(
        await api.post(TEAMS, json=body, headers=ada.headers), 422, "validation_failed"
    )
    assert refused["errors"][0]["loc"] == ["body", field]
    assert (await api.get(TEAMS, headers=ada.headers)).json()["items"] == []


async def test_members_and_invitations_are_bounded_and_unknown_members_are_404(
    database_url: str, smtp: tuple[Inbox, int]
) -> None:
    settings = team_settings(database_url, smtp, team_max_members=2, team_max_invitations=2)
    async with running_app(settings) as app, http_client(app) as api:
        owner = await signed_in(app, api)
        first = await signed_in(app, api)
        second = await signed_in(app, api)
        team = (await new_team(api, owner))["id"]
        stranger = await api.patch(
            f"{TEAMS}/{team}/members/{second.id}", json={"role": "x"}, headers=owner.headers
        )
        assert_problem(stranger, 404, "member_not_found")
        for who in (first, second):
            invited = await api.post(
                f"{TEAMS}/{team}/invitations", json={"email": who.email}, headers=owner.headers
            )
            assert invited.status_code == 201
        third = await api.post(
            f"{TEAMS}/{team}/invitations", json={"email": "c@example.com"}, headers=owner.headers
        )
        assert_problem(third, 409, "team_limit_reached")
        tokens = {}
        for _ in range(2):
            mail = await smtp[0].next()
            tokens[mail["To"]] = token_in(mail, "accept-invitation")
        joined = await api.post(
            f"{TEAMS}/invitations/accept",
            json={"token": tokens[first.email]},
            headers=first.headers,
        )
        assert joined.status_code == 200
        full = await api.post(
            f"{TEAMS}/invitations/accept",
            json={"token": tokens[second.email]},
            headers=second.headers,
        )
        assert_problem(full, 409, "team_limit_reached")
        members = await api.get(f"{TEAMS}/{team}/members", headers=owner.headers)
        assert len(members.json()["items"]) == 2


async def test_racing_requests_never_leave_a_limit_exceeded(
    database_url: str, smtp: tuple[Inbox, int]
) -> None:
    # Each request checks its limit before writing; at once, they all pass that check.
    settings = team_settings(
        database_url, smtp, teams_max_per_user=2, team_max_members=2, team_max_invitations=3
    )
    async with running_app(settings) as app, http_client(app) as api:
        owner = await signed_in(app, api)
        made = await asyncio.gather(
            *(api.post(TEAMS, json={"name": f"T{i}"}, headers=owner.headers) for i in range(6))
        )
        # Racing at the limit may refuse one that would have fit; never one too many.
        assert all(r.status_code in (201, 409) for r in made), made
        listed = (await api.get(TEAMS, headers=owner.headers)).json()["items"]
        assert len(listed) == sum(r.status_code == 201 for r in made) <= 2
        if not listed:
            await new_team(api, owner)  # alone, there is room
            listed = (await api.get(TEAMS, headers=owner.headers)).json()["items"]
        team = listed[0]["id"]

        invited = await asyncio.gather(
            *(
                api.post(
                    f"{TEAMS}/{team}/invitations",
                    json={"email": f"other{i}@example.com"},
                    headers=owner.headers,
                )
                for i in range(6)
            )
        )
        assert all(r.status_code in (201, 409) for r in invited), invited
        pending = (await api.get(f"{TEAMS}/{team}/invitations", headers=owner.headers)).json()
        assert len(pending["items"]) == sum(r.status_code == 201 for r in invited) <= 3
        # Room for one more member (the owner is one); three guests invited accept at once.
        guests = [await signed_in(app, api) for _ in range(3)]
        for item in pending["items"]:
            await api.delete(f"{TEAMS}/{team}/invitations/{item['id']}", headers=owner.headers)
        for guest in guests:
            sent = await api.post(
                f"{TEAMS}/{team}/invitations", json={"email": guest.email}, headers=owner.headers
            )
            assert sent.status_code == 201, sent.text
        tokens: dict[str, str] = {}
        while len(tokens) < 3:
            mail = await smtp[0].next()
            if mail["To"] in {g.email for g in guests}:
                tokens[mail["To"]] = token_in(mail, "accept-invitation")
        accepted = await asyncio.gather(
            *(
                api.post(
                    f"{TEAMS}/invitations/accept",
                    json={"token": tokens[g.email]},
                    headers=g.headers,
                )
                for g in guests
            )
        )
        assert all(r.status_code in (200, 409) for r in accepted), accepted
        members = (await api.get(f"{TEAMS}/{team}/members", headers=owner.headers)).json()
        assert len(members["items"]) == 1 + sum(r.status_code == 200 for r in accepted) <= 2
        # A refused guest's invitation is still there: it works once there is room.
        refused = [g for g, r in zip(guests, accepted, strict=True) if r.status_code == 409]
        assert refused
        for item in members["items"]:
            if item["user_id"] != owner.id:
                await api.delete(f"{TEAMS}/{team}/members/{item['user_id']}", headers=owner.headers)
        again = await api.post(
            f"{TEAMS}/invitations/accept",
            json={"token": tokens[refused[0].email]},
            headers=refused[0].headers,
        )
        assert again.status_code == 200, again.text


async def test_the_team_record_decides_the_owner_when_a_transfer_was_cut_short(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    ada = await signed_in(team_app, api)
    bob = await signed_in(team_app, api)
    team = (await new_team(api, ada))["id"]
    await join(api, inbox, team, ada, bob, "member")
    repository = team_app.state.container.teams.repository
    # The owner switch landed, the role records did not (a crash in between).
    assert await repository.set_owner(team, bob.id, was=ada.id, now=utc_now())
    assert not await repository.set_owner(team, ada.id, was=ada.id, now=utc_now())
    seen_by_ada = (await api.get(f"{TEAMS}/{team}", headers=ada.headers)).json()
    seen_by_bob = (await api.get(f"{TEAMS}/{team}", headers=bob.headers)).json()
    assert (seen_by_ada["role"], seen_by_bob["role"]) == ("admin", "owner")
    assert_problem(await api.delete(f"{TEAMS}/{team}", headers=ada.headers), 403, "forbidden")
    # Nor can the displaced owner demote or remove the one the team record names.
    demote = await api.patch(
        f"{TEAMS}/{team}/members/{bob.id}", json={"role": "member"}, headers=ada.headers
    )
    assert_problem(demote, 409, "owner_must_transfer")
    remove = await api.delete(f"{TEAMS}/{team}/members/{bob.id}", headers=ada.headers)
    assert_problem(remove, 409, "owner_must_transfer")


async def test_a_transfer_another_one_beat_is_409_write_conflict_and_changes_nothing(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two transfers at once (the owner in two tabs): the race is injected where it
    happens, the other transfer landing between this one's check and its write."""
    ada = await signed_in(team_app, api)
    bob = await signed_in(team_app, api)
    carol = await signed_in(team_app, api)
    team = (await new_team(api, ada))["id"]
    await join(api, inbox, team, ada, bob, "member")
    await join(api, inbox, team, ada, carol, "member")
    repository = team_app.state.container.teams.repository
    set_owner = repository.set_owner

    async def the_other_transfer_first(team_id: str, owner_id: str, **given: Any) -> bool:
        assert await set_owner(team_id, carol.id, **given)
        return bool(await set_owner(team_id, owner_id, **given))

    monkeypatch.setattr(repository, "set_owner", the_other_transfer_first)
    lost = await api.post(f"{TEAMS}/{team}/transfer", json={"user_id": bob.id}, headers=ada.headers)
    assert_problem(lost, 409, "write_conflict")
    monkeypatch.undo()
    # The team record names the winner; the loser's target is still a member.
    seen_by_carol = (await api.get(f"{TEAMS}/{team}", headers=carol.headers)).json()
    seen_by_bob = (await api.get(f"{TEAMS}/{team}", headers=bob.headers)).json()
    assert (seen_by_carol["role"], seen_by_bob["role"]) == ("owner", "member")


async def test_invitation_mails_to_one_address_are_rate_limited(
    team_app: FastAPI, api: httpx.AsyncClient
) -> None:
    ada = await signed_in(team_app, api)
    team = (await new_team(api, ada))["id"]
    invite = {"email": "target@example.com"}
    limit = team_app.state.container.settings.rate_limit_invitations_per_address
    for _ in range(limit):  # invite, revoke, repeat: each one is a mail
        made = await api.post(f"{TEAMS}/{team}/invitations", json=invite, headers=ada.headers)
        assert made.status_code == 201
        gone = await api.delete(
            f"{TEAMS}/{team}/invitations/{made.json()['id']}", headers=ada.headers
        )
        assert gone.status_code == 204
    refused = await api.post(f"{TEAMS}/{team}/invitations", json=invite, headers=ada.headers)
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["retry-after"]
    pending = await api.get(f"{TEAMS}/{team}/invitations", headers=ada.headers)
    assert pending.json()["items"] == []


async def test_an_invitation_lapses_when_replaced_or_when_its_sender_loses_the_right(
    team_app: FastAPI, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    owner = await signed_in(team_app, api)
    admin = await signed_in(team_app, api)
    bob = await signed_in(team_app, api)
    carol = await signed_in(team_app, api)
    team = (await new_team(api, owner))["id"]
    await join(api, inbox, team, owner, admin, "admin")

    # Inviting an address again replaces its pending invitation (and its token).
    tokens = []
    for role in ("admin", "member"):
        sent = await api.post(
            f"{TEAMS}/{team}/invitations",
            json={"email": bob.email, "role": role},
            headers=owner.headers,
        )
        assert sent.status_code == 201
        tokens.append(token_in(await inbox.next(), "accept-invitation"))
    first, second = tokens
    stale = await api.post(
        f"{TEAMS}/invitations/accept", json={"token": first}, headers=bob.headers
    )
    assert_problem(stale, 400, "invalid_token")
    pending = await api.get(f"{TEAMS}/{team}/invitations", headers=owner.headers)
    assert [(i["email"], i["role"]) for i in pending.json()["items"]] == [(bob.email, "member")]
    assert (
        await api.post(f"{TEAMS}/invitations/accept", json={"token": second}, headers=bob.headers)
    ).json()["role"] == "member"

    # An admin's invitation stands for the admin: removed, it lapses.
    sent = await api.post(
        f"{TEAMS}/{team}/invitations", json={"email": carol.email}, headers=admin.headers
    )
    assert sent.status_code == 201
    token = token_in(await inbox.next(), "accept-invitation")
    removed = await api.delete(f"{TEAMS}/{team}/members/{admin.id}", headers=owner.headers)
    assert removed.status_code == 204
    lapsed = await api.post(
        f"{TEAMS}/invitations/accept", json={"token": token}, headers=carol.headers
    )
    assert_problem(lapsed, 400, "invalid_token")
    assert (await api.get(f"{TEAMS}/{team}", headers=carol.headers)).status_code == 404

"""Sign-in by a single-use link mailed through the outbox (issue 22)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pyotp
import pytest
from bson import ObjectId
from fastapi import FastAPI

from app.accounts.oauth_providers import ProviderIdentity
from app.clock import utc_now
from app.container import Container
from tests.support.accounts import Account, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.mail import Inbox, parts, token_in
from tests.support.problems import assert_problem


@pytest.fixture
async def mail_app(database_url: str, smtp: tuple[Inbox, int]) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url, mail_url=f"smtp://127.0.0.1:{smtp[1]}", public_url="https://app.example"
    )
    async with running_app(settings) as app:
        yield app


@pytest.fixture
async def api(mail_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(mail_app) as client:
        yield client


async def link_for(api: httpx.AsyncClient, inbox: Inbox, account: Account) -> str:
    asked = await api.post("/v1/auth/magic-link/request", json={"email": account.email})
    assert asked.status_code == 202, asked.text
    message = await inbox.next()
    assert message["To"] == account.email
    assert "Sign in" in message["Subject"]
    return token_in(message, "sign-in")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_mailed_link_signs_in_once_and_verifies_the_address(
    api: httpx.AsyncClient, mail_app: FastAPI, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    account = await signed_in(mail_app, api)
    # An unknown address answers the same and mails nothing: the next mail is the
    # account's own.
    unknown = await api.post("/v1/auth/magic-link/request", json={"email": "nobody@example.com"})
    assert unknown.status_code == 202
    token = await link_for(api, inbox, account)

    signed = await api.post("/v1/auth/magic-link", json={"token": token})
    assert signed.status_code == 200, signed.text
    headers = bearer(signed.json()["access_token"])
    me = (await api.get("/v1/users/me", headers=headers)).json()
    assert me["id"] == account.id and me["email_verified"] is True
    sessions = (await api.get("/v1/users/me/sessions", headers=headers)).json()["items"]
    assert next(s for s in sessions if s["current"])["method"] == "magic_link"
    again = await api.post("/v1/auth/magic-link", json={"token": token})
    assert_problem(again, 400, "invalid_token")
    assert_problem(
        await api.post("/v1/auth/magic-link", json={"token": "made-up"}), 400, "invalid_token"
    )


async def test_a_link_is_a_first_factor_only(
    api: httpx.AsyncClient, mail_app: FastAPI, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    account = await signed_in(mail_app, api)
    container: Container = mail_app.state.container
    # A confirmed address (a first link to an unconfirmed one claims the account anew).
    await container.users.update(account.id, {"email_verified": True}, now=utc_now())
    me = await container.auth.users.get_principal(account.id)
    assert me is not None
    enrolment = await container.mfa.start_totp(me, account.password)
    totp = pyotp.TOTP(enrolment.secret)
    await container.mfa.confirm_totp(me, totp.at(utc_now()))
    assert "A change" in (await inbox.next())["Subject"]  # the owner is told

    token = await link_for(api, inbox, account)
    challenge = await api.post("/v1/auth/magic-link", json={"token": token})
    assert challenge.status_code == 200, challenge.text
    assert challenge.json()["mfa_required"] is True
    next_step = utc_now() + timedelta(seconds=30)  # the confirmation used now's code
    codes = await container.mfa.new_recovery_codes(me, account.password, totp.at(next_step))
    verified = await api.post(
        "/v1/auth/mfa/verify",
        json={"mfa_token": challenge.json()["mfa_token"], "recovery_code": codes[0]},
    )
    assert verified.status_code == 200, verified.text
    headers = bearer(verified.json()["access_token"])
    sessions = (await api.get("/v1/users/me/sessions", headers=headers)).json()["items"]
    assert next(s for s in sessions if s["current"])["method"] == "magic_link+recovery_code"


async def test_the_owner_is_mailed_when_how_the_account_signs_in_changes(
    api: httpx.AsyncClient, mail_app: FastAPI, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    account = await signed_in(mail_app, api)
    started = await api.post(
        "/v1/users/me/mfa/totp",
        json={"current_password": account.password},
        headers=account.headers,
    )
    totp = pyotp.TOTP(started.json()["secret"])
    confirmed = await api.post(
        "/v1/users/me/mfa/totp/confirm", json={"code": totp.now()}, headers=account.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    on = await inbox.next()
    assert on["To"] == account.email
    text, html = parts(on)
    assert "Two-step sign-in was turned on" in text
    assert "https://app.example/reset-password" in text

    later = utc_now() + timedelta(seconds=30)  # the confirmation used now's code
    made = await api.post(
        "/v1/users/me/api-keys",
        json={"name": "<b>ci</b>", "current_password": account.password, "code": totp.at(later)},
        headers=account.headers,
    )
    assert made.status_code == 201, made.text
    key_mail = await inbox.next()
    text, html = parts(key_mail)
    assert 'An API key named "<b>ci</b>" was made' in text
    assert "&lt;b&gt;ci&lt;/b&gt;" in html  # names are escaped in the HTML part


async def test_the_mailbox_owner_claims_an_account_someone_else_registered(
    api: httpx.AsyncClient, mail_app: FastAPI, smtp: tuple[Inbox, int]
) -> None:
    """Pre-hijacking: someone registers the owner's address first (unverified), adds a
    provider and a passkey. The owner's first sign-in link ends all of it."""
    inbox = smtp[0]
    squatter = await signed_in(mail_app, api)
    container: Container = mail_app.state.container
    await container.oauth.identities.link(
        ProviderIdentity("corp", "squatter", squatter.email, True, None),
        user_id=squatter.id,
        now=utc_now(),
    )
    await container.passkeys.repository.insert(
        {
            "_id": ObjectId(),
            "user_id": squatter.id,
            "credential_id": "c3F1YXR0ZXI",
            "public_key": b"\x01",
            "sign_count": 0,
            "name": "Squatter's key",
            "created_at": utc_now(),
        }
    )
    me = await container.auth.users.get_principal(squatter.id)
    assert me is not None
    enrolment = await container.mfa.start_totp(me, squatter.password)
    await container.mfa.confirm_totp(me, pyotp.TOTP(enrolment.secret).at(utc_now()))
    assert "A change" in (await inbox.next())["Subject"]
    token = await link_for(api, inbox, squatter)
    owner = await api.post("/v1/auth/magic-link", json={"token": token})
    assert owner.status_code == 200, owner.text
    assert "access_token" in owner.json()  # not the squatter's second factor
    headers = bearer(owner.json()["access_token"])
    # The squatter's password, session, provider and passkey are gone.
    password = await api.post(
        "/v1/auth/login", json={"email": squatter.email, "password": squatter.password}
    )
    assert_problem(password, 401, "invalid_credentials")
    assert_problem(await api.get("/v1/users/me", headers=squatter.headers), 401, "token_invalid")
    assert (await api.get("/v1/users/me/identities", headers=headers)).json()["items"] == []
    assert (await api.get("/v1/users/me/passkeys", headers=headers)).json()["items"] == []
    # A verified account's next link changes nothing of the kind.
    again = await api.post(
        "/v1/auth/magic-link", json={"token": await link_for(api, inbox, squatter)}
    )
    assert again.status_code == 200
    assert (await api.get("/v1/users/me", headers=headers)).status_code == 200

"""ADMIN_MFA_REQUIRED (issue 22): admin rights only for sessions that signed in with a
second factor; without one an admin acts as a plain user and cannot make API keys."""

from __future__ import annotations

from datetime import datetime

import httpx
import pyotp
import pytest

from app.accounts.models import Role
from app.clock import utc_now
from app.config import Settings
from app.container import Container
from tests.support.accounts import PASSWORD, MakeAccount
from tests.support.apps import shared_settings
from tests.support.problems import assert_problem


@pytest.fixture
def settings(database_url: str) -> Settings:
    return shared_settings(database_url, admin_mfa_required=True)


@pytest.fixture
def now(container: Container, monkeypatch: pytest.MonkeyPatch) -> datetime:
    frozen = utc_now()
    monkeypatch.setattr(container.mfa, "clock", lambda: frozen)
    return frozen


async def test_an_admin_without_a_second_factor_acts_as_a_user_until_signing_in_with_one(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    admin = await make_account(role=Role.ADMIN)
    refused = await client.get("/v1/users", headers=admin.headers)
    assert_problem(refused, 403, "mfa_setup_required")
    key = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "ops", "current_password": PASSWORD},
        headers=admin.headers,
    )
    assert_problem(key, 403, "mfa_setup_required")
    # Their own account still works as anyone's does.
    assert (await client.get("/v1/users/me", headers=admin.headers)).status_code == 200

    started = await client.post(
        "/v1/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=admin.headers
    )
    totp = pyotp.TOTP(started.json()["secret"])
    confirmed = await client.post(
        "/v1/users/me/mfa/totp/confirm", json={"code": totp.at(now)}, headers=admin.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    # The enrolling session signed in with the password alone: still no admin rights.
    assert_problem(await client.get("/v1/users", headers=admin.headers), 403, "mfa_setup_required")

    login = await client.post("/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
    signed = await client.post(
        "/v1/auth/mfa/verify",
        json={
            "mfa_token": login.json()["mfa_token"],
            "recovery_code": confirmed.json()["recovery_codes"][0],
        },
    )
    assert signed.status_code == 200, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    assert (await client.get("/v1/users", headers=headers)).status_code == 200
    # A refreshed token keeps what the sign-in proved.
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": signed.json()["refresh_token"]}
    )
    headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await client.get("/v1/users", headers=headers)).status_code == 200


async def test_users_are_unaffected(client: httpx.AsyncClient, make_account: MakeAccount) -> None:
    user = await make_account()
    key = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "sync", "current_password": PASSWORD},
        headers=user.headers,
    )
    assert key.status_code == 201, key.text
    assert_problem(await client.get("/v1/users", headers=user.headers), 403, "forbidden")


async def test_an_admin_without_mfa_gets_no_admin_rights_through_a_stream_ticket(
    client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    admin = await make_account(role=Role.ADMIN)
    issued = await client.post("/v1/realtime/tickets", headers=admin.headers)
    assert issued.status_code == 201, issued.text
    caller = await container.realtime.redeem_ticket(issued.json()["ticket"])
    assert caller.id == admin.id and not caller.is_admin


async def test_an_api_key_carries_admin_rights_only_if_made_with_a_second_factor(
    client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    # Made by a user with a password alone, before becoming an admin.
    account = await make_account()
    made = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "old", "current_password": PASSWORD},
        headers=account.headers,
    )
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    await container.users.update(account.id, {"role": Role.ADMIN}, now=utc_now())
    assert_problem(await client.get("/v1/users", headers=key), 403, "mfa_setup_required")
    # One an operator makes with `make apikey` counts (database access is the factor).
    ops_key, secret = await container.auth.create_api_key(
        account.id, name="ops", expires_at=None, mfa=True
    )
    ops = {"Authorization": f"Bearer {secret}"}
    assert ops_key.mfa and (await client.get("/v1/users", headers=ops)).status_code == 200

"""Two-step sign-in with an authenticator app (TOTP) and recovery codes (issue 22)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from bson import ObjectId

from app.accounts.mfa import SecretBox
from app.clock import utc_now
from app.container import Container
from tests.support.accounts import PASSWORD, Account, MakeAccount
from tests.support.problems import assert_problem

MFA = "/v1/users/me/mfa"
STEP = timedelta(seconds=30)


@pytest.fixture
def now(container: Container, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The MFA service's clock, held still: each code below is for a known time step
    (now's, or the one on either side), whatever the wall clock does meanwhile."""
    frozen = utc_now()
    monkeypatch.setattr(container.mfa, "clock", lambda: frozen)
    return frozen


async def enrol(client: httpx.AsyncClient, account: Account, now: datetime) -> tuple[Any, Any]:
    """TOTP on for `account`, confirmed with the code of the step before now's."""
    started = await client.post(
        f"{MFA}/totp", json={"current_password": PASSWORD}, headers=account.headers
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert body["qr_svg"].lstrip().startswith("<svg")
    totp = pyotp.TOTP(body["secret"])
    confirmed = await client.post(
        f"{MFA}/totp/confirm", json={"code": totp.at(now - STEP)}, headers=account.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    return totp, codes


async def challenge(client: httpx.AsyncClient, account: Account) -> str:
    signed = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["mfa_required"] is True and "access_token" not in body
    assert body["methods"] == ["totp", "recovery_code"]
    return str(body["mfa_token"])


async def verify(client: httpx.AsyncClient, token: str, **code: str) -> httpx.Response:
    return await client.post("/v1/auth/mfa/verify", json={"mfa_token": token, **code})


async def test_a_password_alone_no_longer_signs_in_once_totp_is_on(
    client: httpx.AsyncClient, make_account: MakeAccount, container: Container, now: datetime
) -> None:
    account = await make_account()
    totp, _ = await enrol(client, account, now)
    status = await client.get(MFA, headers=account.headers)
    assert status.json() == {"totp": True, "recovery_codes_left": 10}
    stored = await container.db["users"].find_one({"_id": ObjectId(account.id)})
    assert stored is not None and totp.secret not in str(stored["totp_secret"])  # sealed

    token = await challenge(client, account)
    signed = await verify(client, token, code=totp.at(now))
    assert signed.status_code == 200, signed.text
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {signed.json()['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == account.id
    sessions = await client.get(
        "/v1/users/me/sessions",
        headers={"Authorization": f"Bearer {signed.json()['access_token']}"},
    )
    current = next(s for s in sessions.json()["items"] if s["current"])
    assert current["method"] == "password+totp"
    # The challenge is used up, and a code works once.
    assert_problem(await verify(client, token, code=totp.at(now + STEP)), 401, "token_invalid")
    again = await challenge(client, account)
    assert_problem(await verify(client, again, code=totp.at(now)), 401, "mfa_code_invalid")
    assert (await verify(client, again, code=totp.at(now + STEP))).status_code == 200
    # The OAuth2 password grant cannot ask for a code: it says where to go.
    form = {"grant_type": "password", "username": account.email, "password": PASSWORD}
    assert_problem(await client.post("/v1/auth/token", data=form), 403, "mfa_required")


async def test_recovery_codes_work_once_and_can_be_replaced(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    account = await make_account()
    _, codes = await enrol(client, account, now)
    first = await verify(client, await challenge(client, account), recovery_code=codes[0])
    assert first.status_code == 200, first.text
    status = await client.get(MFA, headers=account.headers)
    assert status.json()["recovery_codes_left"] == 9
    methods = [
        s["method"]
        for s in (await client.get("/v1/users/me/sessions", headers=account.headers)).json()[
            "items"
        ]
    ]
    assert sorted(methods) == ["password", "password+recovery_code"]
    reused = await verify(client, await challenge(client, account), recovery_code=codes[0])
    assert_problem(reused, 401, "mfa_code_invalid")

    # Replacing them takes the password and a current code: the password alone is refused.
    alone = await client.post(
        f"{MFA}/recovery-codes", json={"current_password": PASSWORD}, headers=account.headers
    )
    assert_problem(alone, 422, "mfa_code_invalid")
    fresh = await client.post(
        f"{MFA}/recovery-codes",
        json={"current_password": PASSWORD, "code": codes[5]},
        headers=account.headers,
    )
    assert fresh.status_code == 200, fresh.text
    new_codes = fresh.json()["recovery_codes"]
    old = await verify(client, await challenge(client, account), recovery_code=codes[1])
    assert_problem(old, 401, "mfa_code_invalid")
    # Typed with spaces or in capitals, as people copy them.
    typed = new_codes[0].upper().replace("-", " ")
    assert (await verify(client, await challenge(client, account), recovery_code=typed)).is_success


async def test_wrong_codes_end_the_sign_in_then_the_account_is_rate_limited(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    account = await make_account()
    totp, _ = await enrol(client, account, now)  # one attempt counted (the confirmation)
    token = await challenge(client, account)
    for left in (4, 3, 2, 1):
        wrong = await verify(client, token, code="000000")
        assert f"{left} more tries" in assert_problem(wrong, 401, "mfa_code_invalid")["detail"]
    last = await verify(client, token, code="000000")
    assert "sign in again" in assert_problem(last, 401, "mfa_code_invalid")["detail"]
    assert_problem(await verify(client, token, code=totp.at(now)), 401, "token_invalid")
    # RATE_LIMIT_MFA_PER_ACCOUNT (10 a window): 6 counted so far; the 11th is refused.
    token = await challenge(client, account)
    for _ in range(4):
        assert_problem(await verify(client, token, code="000000"), 401, "mfa_code_invalid")
    limited = await verify(client, token, code=totp.at(now))
    assert_problem(limited, 429, "rate_limited")


async def test_enrolment_errors_change_nothing(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    account = await make_account()
    wrong_password = await client.post(
        f"{MFA}/totp", json={"current_password": "not my password"}, headers=account.headers
    )
    assert_problem(wrong_password, 422, "validation_failed")
    unstarted = await client.post(
        f"{MFA}/totp/confirm", json={"code": "123456"}, headers=account.headers
    )
    assert_problem(unstarted, 409, "mfa_not_enabled")
    started = await client.post(
        f"{MFA}/totp", json={"current_password": PASSWORD}, headers=account.headers
    )
    totp = pyotp.TOTP(started.json()["secret"])
    bad = await client.post(f"{MFA}/totp/confirm", json={"code": "12x456"}, headers=account.headers)
    assert assert_problem(bad, 422, "mfa_code_invalid")["errors"][0]["loc"] == ["body", "code"]
    # Until confirmed, the password alone still signs in.
    plain = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert "access_token" in plain.json()

    await client.post(f"{MFA}/totp/confirm", json={"code": totp.at(now)}, headers=account.headers)
    twice = await client.post(
        f"{MFA}/totp", json={"current_password": PASSWORD}, headers=account.headers
    )
    assert_problem(twice, 409, "mfa_already_enabled")
    both = await client.post(
        "/v1/auth/mfa/verify",
        json={"mfa_token": "mfa_x", "code": "123456", "recovery_code": "abcd"},
    )
    assert_problem(both, 422, "validation_failed")
    assert_problem(await verify(client, "mfa_unknown", code="123456"), 401, "token_invalid")

    without_code = await client.request(
        "DELETE", f"{MFA}/totp", json={"current_password": PASSWORD}, headers=account.headers
    )
    assert_problem(without_code, 422, "mfa_code_invalid")
    off = await client.request(
        "DELETE",
        f"{MFA}/totp",
        json={"current_password": PASSWORD, "code": totp.at(now + STEP)},
        headers=account.headers,
    )
    assert off.status_code == 204, off.text
    plain = await client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert "access_token" in plain.json()
    again = await client.request(
        "DELETE", f"{MFA}/totp", json={"current_password": PASSWORD}, headers=account.headers
    )
    assert_problem(again, 409, "mfa_not_enabled")
    assert (await client.get(MFA, headers=account.headers)).json() == {
        "totp": False,
        "recovery_codes_left": 0,
    }


async def test_turning_totp_on_ends_the_sessions_that_signed_in_with_the_password_alone(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    account = await make_account()
    elsewhere = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    other_refresh = elsewhere.json()["refresh_token"]
    await enrol(client, account, now)
    # The enrolling session stays; the other one (perhaps a phished password's) ends.
    assert (await client.get(MFA, headers=account.headers)).status_code == 200
    refused = await client.post("/v1/auth/refresh", json={"refresh_token": other_refresh})
    assert refused.status_code == 401, refused.text


async def test_a_new_password_ends_a_pending_two_step_sign_in(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    account = await make_account()
    totp, _ = await enrol(client, account, now)
    token = await challenge(client, account)  # someone with the old password
    changed = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=account.headers,
    )
    assert changed.status_code == 200, changed.text
    assert_problem(await verify(client, token, code=totp.at(now)), 401, "token_invalid")


async def test_an_api_key_takes_the_password_and_with_totp_on_a_code(
    client: httpx.AsyncClient, make_account: MakeAccount, now: datetime
) -> None:
    account = await make_account()
    keys = "/v1/users/me/api-keys"
    token_alone = await client.post(keys, json={"name": "k"}, headers=account.headers)
    assert_problem(token_alone, 422, "validation_failed")  # a stolen token is not enough
    wrong = await client.post(
        keys, json={"name": "k", "current_password": "not it"}, headers=account.headers
    )
    assert_problem(wrong, 422, "validation_failed")
    totp, _ = await enrol(client, account, now)
    no_code = await client.post(
        keys, json={"name": "k", "current_password": PASSWORD}, headers=account.headers
    )
    assert_problem(no_code, 422, "mfa_code_invalid")
    made = await client.post(
        keys,
        json={"name": "k", "current_password": PASSWORD, "code": totp.at(now)},
        headers=account.headers,
    )
    assert made.status_code == 201, made.text
    listed = await client.get(keys, headers=account.headers)
    assert [k["name"] for k in listed.json()["items"]] == ["k"]


async def test_rotating_the_mfa_encryption_key_moves_secrets_on_their_next_use(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    container: Container,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MFA_ENCRYPTION_KEYS: a new key goes first, the old one stays to open what it
    sealed; a sign-in reseals with the new key, after which the old one can go."""
    old, new = "o" * 40, "n" * 40
    jwt_secret = container.settings.jwt_secret
    monkeypatch.setattr(container.mfa, "box", SecretBox(old, jwt_secret))
    account = await make_account()
    totp, _ = await enrol(client, account, now)

    monkeypatch.setattr(container.mfa, "box", SecretBox(new, old, jwt_secret))
    signed = await verify(client, await challenge(client, account), code=totp.at(now))
    assert signed.status_code == 200, signed.text

    monkeypatch.setattr(container.mfa, "box", SecretBox(new, jwt_secret))
    again = await verify(client, await challenge(client, account), code=totp.at(now + STEP))
    assert again.status_code == 200, again.text

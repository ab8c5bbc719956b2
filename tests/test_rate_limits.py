"""Login, register and refresh are rate-limited per client and per account, across processes."""

from __future__ import annotations

import httpx
import pyotp
import pytest

from app.clock import utc_now
from app.config import Settings
from tests.support.accounts import PASSWORD
from tests.support.apps import http_client, make_settings, running_app
from tests.support.problems import assert_problem
from tests.support.servers import api_server

# A day-long fixed window: a test's attempts never straddle two windows.
WINDOW = 86400


def limited(database_url: str, **limits: int) -> Settings:
    return make_settings(database_url, rate_limit_window_seconds=WINDOW, **limits)


async def test_login_is_limited_per_client_address_with_retry_after(database_url: str) -> None:
    settings = limited(database_url, rate_limit_login_per_ip=3)
    async with running_app(settings) as app, http_client(app) as client:
        for _ in range(3):
            response = await client.post(
                "/v1/auth/login", json={"email": "x@example.com", "password": "wrong"}
            )
            assert response.status_code == 401
        blocked = await client.post(
            "/v1/auth/login", json={"email": "x@example.com", "password": "wrong"}
        )
        assert_problem(blocked, 429, "rate_limited")
        retry_after = int(blocked.headers["retry-after"])
        assert 1 <= retry_after <= settings.rate_limit_window_seconds

        # Another client address is counted separately.
        other = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
        async with httpx.AsyncClient(transport=other, base_url="http://t") as elsewhere:
            response = await elsewhere.post(
                "/v1/auth/login", json={"email": "y@example.com", "password": "wrong"}
            )
            assert response.status_code == 401


def from_address(app: object, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 1000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/login", json={"email": "Target@example.com", "password": password}
    )


async def test_guesses_from_many_addresses_do_not_lock_the_owner_out(database_url: str) -> None:
    settings = limited(
        database_url, rate_limit_login_per_account=3, rate_limit_login_per_account_address=2
    )
    async with running_app(settings) as app, http_client(app) as owner:
        await app.state.container.auth.create_user(
            email="target@example.com", password=PASSWORD, name="T", role="user"
        )
        assert (await login(owner, PASSWORD)).status_code == 200  # the owner's own address
        # An attacker spreads guesses over many addresses, past the account's ceiling.
        for i in range(4):
            async with from_address(app, f"192.0.2.{i}") as attacker:
                response = await login(attacker, "guess")
        assert_problem(response, 429, "rate_limited")
        # The owner still gets in from the address they signed in from before...
        assert (await login(owner, PASSWORD)).status_code == 200
        # ...while an address the account never used hits the account's ceiling.
        async with from_address(app, "198.51.100.1") as stranger:
            assert_problem(await login(stranger, PASSWORD), 429, "rate_limited")


async def test_login_is_limited_tightly_per_account_and_address(database_url: str) -> None:
    settings = limited(database_url, rate_limit_login_per_account_address=2)
    async with running_app(settings) as app, http_client(app) as owner:
        await app.state.container.auth.create_user(
            email="target@example.com", password=PASSWORD, name="T", role="user"
        )
        async with from_address(app, "192.0.2.50") as attacker:
            for _ in range(2):
                assert_problem(await login(attacker, "guess"), 401, "invalid_credentials")
            assert_problem(await login(attacker, PASSWORD), 429, "rate_limited")
        # Another address is counted separately.
        assert (await login(owner, PASSWORD)).status_code == 200


async def test_register_is_limited_and_a_refused_attempt_stores_nothing(
    database_url: str,
) -> None:
    settings = limited(database_url, rate_limit_register_per_ip=2)
    async with running_app(settings) as app, http_client(app) as client:
        for i in range(2):
            ok = await client.post(
                "/v1/auth/register",
                json={"email": f"r{i}@example.com", "password": PASSWORD, "name": "R"},
            )
            assert ok.status_code == 201
        blocked = await client.post(
            "/v1/auth/register", json={"email": "r9@example.com", "password": PASSWORD, "name": "R"}
        )
        assert_problem(blocked, 429, "rate_limited")
        assert await app.state.container.db["users"].count_documents({}) == 2


async def test_refresh_is_limited(database_url: str) -> None:
    settings = limited(database_url, rate_limit_refresh_per_ip=2)
    async with running_app(settings) as app, http_client(app) as client:
        for _ in range(2):
            response = await client.post("/v1/auth/refresh", json={"refresh_token": "a.b"})
            assert response.status_code == 401
        blocked = await client.post("/v1/auth/refresh", json={"refresh_token": "a.b"})
        assert_problem(blocked, 429, "rate_limited")


async def test_the_limit_holds_across_server_processes(database_url: str) -> None:
    # Two app instances on one database stand in for two API processes behind a balancer.
    settings = limited(database_url, rate_limit_login_per_ip=4)
    async with (
        running_app(settings) as first,
        running_app(settings, drop_database=False) as second,
        http_client(first) as a,
        http_client(second) as b,
    ):
        statuses = []
        for client in (a, b, a, b, a, b):
            response = await client.post(
                "/v1/auth/login", json={"email": "z@example.com", "password": "wrong"}
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 401, 429, 429]


async def test_counters_expire_through_a_ttl_index(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as app:
        indexes = await app.state.container.db["rate_limits"].index_information()
    assert any(spec.get("expireAfterSeconds") == 0 for spec in indexes.values())


def spoofed_logins(url: str, count: int) -> list[int]:
    """`count` logins from loopback, each claiming another client in X-Forwarded-For."""
    with httpx.Client(base_url=url) as client:
        return [
            client.post(
                "/v1/auth/login",
                json={"email": "nobody@example.com", "password": "wrong"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            ).status_code
            for i in range(count)
        ]


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_headers_count_only_from_configured_proxies(
    database_url: str, trusted: bool
) -> None:
    settings = make_settings(database_url)
    env = {
        "RATE_LIMIT_LOGIN_PER_IP": "2",
        "RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        "JWT_SECRET": settings.jwt_secret,
    }
    if trusted:
        env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    with api_server(database_url, settings.mongodb_db, **env) as (url, _):
        statuses = spoofed_logins(url, 3)
    # Untrusted: all three come from 127.0.0.1, whatever the header says, so the third is
    # throttled. Behind a configured proxy each forwarded client is counted on its own.
    assert statuses == ([401, 401, 401] if trusted else [401, 401, 429])


async def test_a_password_without_its_second_factor_earns_no_exemption(
    database_url: str,
) -> None:
    """An address is remembered as the owner's only after a whole sign-in: with TOTP on,
    a right password alone (phished) still counts against the account's ceiling."""
    settings = limited(
        database_url, rate_limit_login_per_account=2, rate_limit_login_per_account_address=100
    )
    async with running_app(settings) as app, from_address(app, "192.0.2.77") as phisher:
        container = app.state.container
        user = await container.auth.create_user(
            email="target@example.com", password=PASSWORD, name="T", role="user"
        )
        me = await container.users.get_principal(str(user.id))
        enrolment = await container.mfa.start_totp(me, PASSWORD)
        codes = await container.mfa.confirm_totp(me, pyotp.TOTP(enrolment.secret).at(utc_now()))
        first = await login(phisher, PASSWORD)
        assert first.json()["mfa_required"] is True
        assert (await login(phisher, PASSWORD)).json()["mfa_required"] is True
        assert_problem(await login(phisher, PASSWORD), 429, "rate_limited")
        # The owner finishes a sign-in from there: now the address is theirs.
        verified = await phisher.post(
            "/v1/auth/mfa/verify",
            json={"mfa_token": first.json()["mfa_token"], "recovery_code": codes[0]},
        )
        assert verified.status_code == 200, verified.text
        assert (await login(phisher, PASSWORD)).json()["mfa_required"] is True

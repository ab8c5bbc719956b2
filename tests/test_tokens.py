"""Forged, expired and stale access tokens are refused."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from app.config import Settings
from tests.support.accounts import Account
from tests.support.problems import assert_problem


def claims_of(account: Account) -> dict[str, Any]:
    return jwt.decode(account.access_token, options={"verify_signature": False})


def forge(claims: dict[str, Any], key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})


async def test_a_genuine_token_works(client: httpx.AsyncClient, user: Account) -> None:
    assert (await me(client, user.access_token)).status_code == 200


async def test_alg_none_is_refused(client: httpx.AsyncClient, user: Account) -> None:
    assert_problem(await me(client, unsigned(claims_of(user))), 401, "token_invalid")


async def test_a_token_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, user: Account
) -> None:
    token = forge(claims_of(user), "some-other-secret-of-enough-length-000000")
    assert_problem(await me(client, token), 401, "token_invalid")


async def test_another_algorithm_with_the_right_key_is_refused(
    client: httpx.AsyncClient, user: Account, settings: Settings
) -> None:
    token = forge(claims_of(user), settings.jwt_secret, algorithm="HS512")
    assert_problem(await me(client, token), 401, "token_invalid")


async def test_an_expired_token_says_so(
    client: httpx.AsyncClient, user: Account, settings: Settings
) -> None:
    claims = claims_of(user) | {"iat": int(time.time()) - 3600, "exp": int(time.time()) - 60}
    assert_problem(await me(client, forge(claims, settings.jwt_secret)), 401, "token_expired")


@pytest.mark.parametrize(
    ("change", "remove"),
    [
        ({"aud": "someone-else"}, None),
        ({"iss": "another-issuer"}, None),
        ({"sub": "000000000000000000000000"}, None),
        ({"sub": "not-an-object-id"}, None),
        ({"ver": "0"}, None),
        ({}, "ver"),
        ({}, "exp"),
        ({}, "jti"),
    ],
)
async def test_tampered_claims_are_refused(
    client: httpx.AsyncClient,
    user: Account,
    settings: Settings,
    change: dict[str, Any],
    remove: str | None,
) -> None:
    claims = claims_of(user) | change
    if remove:
        claims.pop(remove)
    assert_problem(await me(client, forge(claims, settings.jwt_secret)), 401, "token_invalid")


async def test_a_token_from_an_older_token_version_is_refused(
    client: httpx.AsyncClient, user: Account, settings: Settings
) -> None:
    await client.post("/v1/auth/logout-all", headers=user.headers)
    # Even re-signed with the right key, the old version number gives it away.
    stale = forge(claims_of(user) | {"jti": "fresh"}, settings.jwt_secret)
    assert_problem(await me(client, stale), 401, "token_invalid")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer garbage"])
async def test_malformed_authorization_headers(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/v1/users/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] in {"not_authenticated", "token_invalid"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_no_token_is_not_authenticated(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/users/me"), 401, "not_authenticated")

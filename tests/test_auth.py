"""Registration, login, the OAuth2 token endpoint, refresh rotation and logout."""

from __future__ import annotations

import httpx
import pytest
from bson import ObjectId

from app.accounts.models import Role
from app.container import Container
from tests.support.accounts import PASSWORD, Account
from tests.support.apps import make_settings, running_app
from tests.support.problems import assert_problem


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, name: str = "Ada"
) -> httpx.Response:
    return await client.post(
        "/v1/auth/register", json={"email": email, "password": password, "name": name}
    )


async def test_register_creates_a_user_with_a_normalised_email(
    client: httpx.AsyncClient, container: Container
) -> None:
    response = await register(client, "  Ada.Lovelace@Example.COM ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ada.lovelace@example.com"
    assert body["role"] == "user"
    assert body["disabled"] is False
    assert "password" not in str(body)
    stored = await container.db["users"].find_one({"_id": ObjectId(body["id"])})
    assert stored is not None
    assert stored["email"] == "ada.lovelace@example.com"
    assert stored["password_hash"].startswith("$argon2id$")


@pytest.mark.parametrize("email", ["dev@app.test", "me@box.local", "x@else.test"])
async def test_special_use_domains_are_valid_addresses(
    client: httpx.AsyncClient, email: str
) -> None:
    assert (await register(client, email)).status_code == 201
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200


async def test_register_twice_with_the_same_email_is_409(client: httpx.AsyncClient) -> None:
    assert (await register(client, "dup@example.com")).status_code == 201
    again = await register(client, "DUP@example.com ")
    assert_problem(again, 409, "email_taken")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.com", "password": "x" * 1025, "name": "A"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "   "}, "name"),
        ({"email": "a@example.com", "password": PASSWORD}, "name"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "A", "role": "admin"}, "role"),
    ],
)
async def test_register_refuses_bad_input_and_stores_nothing(
    client: httpx.AsyncClient, container: Container, body: dict[str, str], field: str
) -> None:
    response = await client.post("/v1/auth/register", json=body)
    problem = assert_problem(response, 422, "validation_failed")
    assert any(err["loc"][-1] == field for err in problem["errors"]), problem
    assert await container.db["users"].count_documents({}) == 0


async def test_register_can_be_switched_off(database_url: str) -> None:
    settings = make_settings(database_url, registration_enabled=False)
    async with (
        running_app(settings) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await register(client, "closed@example.com")
    assert_problem(response, 403, "registration_disabled")


async def test_login_returns_a_bearer_token_pair(client: httpx.AsyncClient) -> None:
    await register(client, "login@example.com")
    response = await client.post(
        "/v1/auth/login", json={"email": "Login@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["access_token"].count(".") == 2
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["email"] == "login@example.com"


async def test_wrong_password_and_unknown_email_fail_the_same_way(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "known@example.com")
    wrong = await client.post(
        "/v1/auth/login", json={"email": "known@example.com", "password": "wrong password"}
    )
    unknown = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong password"}
    )
    wrong_body = assert_problem(wrong, 401, "invalid_credentials")
    unknown_body = assert_problem(unknown, 401, "invalid_credentials")
    assert wrong_body["detail"] == unknown_body["detail"]


async def test_disabled_account_cannot_log_in(
    client: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    patch = await client.patch(
        f"/v1/users/{user.id}", json={"disabled": True}, headers=admin.headers
    )
    assert patch.status_code == 200
    response = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(response, 403, "forbidden")


async def test_oauth2_token_endpoint_password_and_refresh_grants(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await client.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": user.email.upper(), "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    refreshed = await client.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != response.json()["refresh_token"]


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"grant_type": "client_credentials"}, 422, "validation_failed"),
        ({"grant_type": "password", "username": "a@example.com"}, 400, "bad_request"),
        ({"grant_type": "refresh_token"}, 400, "bad_request"),
        (
            {"grant_type": "password", "username": "a@example.com", "password": "nope"},
            401,
            "invalid_credentials",
        ),
        ({"grant_type": "refresh_token", "refresh_token": "garbage"}, 401, "token_invalid"),
    ],
)
async def test_oauth2_token_endpoint_errors(
    client: httpx.AsyncClient, form: dict[str, str], status: int, code: str
) -> None:
    assert_problem(await client.post("/v1/auth/token", data=form), status, code)


async def test_refresh_rotates_and_a_reused_token_revokes_the_session(
    client: httpx.AsyncClient, user: Account
) -> None:
    first = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert first.status_code == 200, first.text
    second_token = first.json()["refresh_token"]
    assert second_token != user.refresh_token

    # The old token comes back (stolen copy): the session is revoked...
    reused = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(reused, 401, "refresh_token_reused")
    # ...so even the legitimate, newest token of that session is dead now...
    after = await client.post("/v1/auth/refresh", json={"refresh_token": second_token})
    assert_problem(after, 401, "token_invalid")
    # ...and so is every access token issued for it, at once.
    for access in (user.access_token, first.json()["access_token"]):
        me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {access}"})
        assert_problem(me, 401, "token_invalid")


@pytest.mark.parametrize(
    "token", ["", "no-dot", "6650c2aa00000000000000aa.guess", "nonsense.value", "x" * 600]
)
async def test_refresh_with_an_unknown_token_is_refused(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.post("/v1/auth/refresh", json={"refresh_token": token})
    if token and len(token) <= 512:
        assert_problem(response, 401, "token_invalid")
    else:
        assert_problem(response, 422, "validation_failed")


async def test_refresh_for_a_disabled_user_is_refused(
    client: httpx.AsyncClient, user: Account, admin: Account
) -> None:
    await client.patch(f"/v1/users/{user.id}", json={"disabled": True}, headers=admin.headers)
    response = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(response, 401, "token_invalid")


async def test_logout_ends_only_that_session(client: httpx.AsyncClient, user: Account) -> None:
    second = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    other_refresh = second.json()["refresh_token"]
    response = await client.post("/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert response.status_code == 204
    dead = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(dead, 401, "token_invalid")
    alive = await client.post("/v1/auth/refresh", json={"refresh_token": other_refresh})
    assert alive.status_code == 200
    # The ended session's access token dies now, not when it expires; the other lives.
    me = await client.get("/v1/users/me", headers=user.headers)
    assert_problem(me, 401, "token_invalid")
    other_access = {"Authorization": f"Bearer {alive.json()['access_token']}"}
    assert (await client.get("/v1/users/me", headers=other_access)).status_code == 200


async def test_logout_with_an_unknown_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/logout", json={"refresh_token": "abc.def"})
    assert_problem(response, 401, "token_invalid")


async def test_logout_all_kills_every_session_and_access_token_at_once(
    client: httpx.AsyncClient, user: Account
) -> None:
    second = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    other = second.json()
    response = await client.post("/v1/auth/logout-all", headers=user.headers)
    assert response.status_code == 204

    for access in (user.access_token, other["access_token"]):
        me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {access}"})
        assert_problem(me, 401, "token_invalid")
    for refresh in (user.refresh_token, other["refresh_token"]):
        again = await client.post("/v1/auth/refresh", json={"refresh_token": refresh})
        assert_problem(again, 401, "token_invalid")

    # Signing in afterwards works as usual.
    fresh = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert fresh.status_code == 200


async def test_logout_all_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/auth/logout-all"), 401, "not_authenticated")


async def test_concurrent_refreshes_with_one_token_let_exactly_one_through(
    client: httpx.AsyncClient, user: Account
) -> None:
    import asyncio

    responses = await asyncio.gather(
        *(
            client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in responses).count(200) == 1


async def test_admin_role_comes_from_the_database(
    client: httpx.AsyncClient, container: Container, user: Account
) -> None:
    assert (await client.get("/v1/users", headers=user.headers)).status_code == 403
    await container.users.update(user.id, {"role": Role.ADMIN}, now=container.auth.clock())
    assert (await client.get("/v1/users", headers=user.headers)).status_code == 200

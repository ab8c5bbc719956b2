"""The caller's own account and admin user management."""

from __future__ import annotations

import httpx
import pytest

from app.container import Container
from tests.support.accounts import PASSWORD, Account, MakeAccount, sign_in, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.problems import assert_problem


async def test_me_shows_the_callers_account(client: httpx.AsyncClient, user: Account) -> None:
    body = (await client.get("/v1/users/me", headers=user.headers)).json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert set(body) == {
        "id",
        "email",
        "name",
        "role",
        "disabled",
        "email_verified",
        "created_at",
        "updated_at",
    }
    assert body["email_verified"] is False


async def test_patch_me_changes_name_and_email(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.patch(
        "/v1/users/me",
        json={"name": " New Name ", "email": "NEW@Example.com", "current_password": PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "New Name"
    assert response.json()["email"] == "new@example.com"
    assert (await sign_in(client, "new@example.com")).id == user.id


async def test_patch_me_to_a_taken_email_is_409(
    client: httpx.AsyncClient, user: Account, other_user: Account
) -> None:
    response = await client.patch(
        "/v1/users/me",
        json={"email": other_user.email, "current_password": PASSWORD},
        headers=user.headers,
    )
    assert_problem(response, 409, "email_taken")
    me = (await client.get("/v1/users/me", headers=user.headers)).json()
    assert me["email"] == user.email


@pytest.mark.parametrize(
    "body", [{"role": "admin"}, {"disabled": True}, {"name": ""}, {"email": 3}]
)
async def test_patch_me_refuses_fields_users_may_not_set(
    client: httpx.AsyncClient, user: Account, body: dict[str, object]
) -> None:
    response = await client.patch("/v1/users/me", json=body, headers=user.headers)
    assert_problem(response, 422, "validation_failed")
    assert (await client.get("/v1/users/me", headers=user.headers)).json()["role"] == "user"


async def test_password_change_kills_other_sessions_and_old_tokens(
    client: httpx.AsyncClient, user: Account
) -> None:
    other_device = await sign_in(client, user.email)
    response = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    fresh = response.json()

    for account in (user, other_device):
        assert_problem(
            await client.get("/v1/users/me", headers=account.headers), 401, "token_invalid"
        )
        assert_problem(
            await client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token}),
            401,
            "token_invalid",
        )
    ok = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert ok.status_code == 200
    old = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(old, 401, "invalid_credentials")
    await sign_in(client, user.email, "a brand new passphrase")


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await client.post(
        "/v1/users/me/password",
        json={"current_password": "not it at all", "new_password": "a brand new passphrase"},
        headers=user.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "current_password"]
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200


async def test_password_change_enforces_the_minimum_length(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=user.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "new_password"]
    await sign_in(client, user.email, PASSWORD)


async def test_delete_me_removes_the_account_and_its_tokens(
    client: httpx.AsyncClient, container: Container, user: Account
) -> None:
    deleted = await client.request(
        "DELETE", "/v1/users/me", json={"current_password": PASSWORD}, headers=user.headers
    )
    assert deleted.status_code == 204
    assert_problem(await client.get("/v1/users/me", headers=user.headers), 401, "token_invalid")
    assert_problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token}),
        401,
        "token_invalid",
    )
    assert await container.db["sessions"].count_documents({}) == 0
    login = await client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(login, 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("password", "error"), [(None, "missing"), ("not it at all", "password_mismatch")]
)
async def test_changing_the_email_needs_the_current_password(
    client: httpx.AsyncClient, user: Account, password: str | None, error: str
) -> None:
    body: dict[str, str] = {"email": "elsewhere@example.com"}
    if password is not None:
        body["current_password"] = password
    response = await client.patch("/v1/users/me", json=body, headers=user.headers)
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["body", "current_password"]
    assert problem["errors"][0]["type"] == error
    me = (await client.get("/v1/users/me", headers=user.headers)).json()
    assert me["email"] == user.email
    # The name alone needs no password.
    renamed = await client.patch("/v1/users/me", json={"name": "N"}, headers=user.headers)
    assert renamed.status_code == 200


@pytest.mark.parametrize("body", [None, {}, {"current_password": "not it at all"}])
async def test_deleting_the_account_needs_the_current_password(
    client: httpx.AsyncClient, user: Account, body: dict[str, str] | None
) -> None:
    response = await client.request("DELETE", "/v1/users/me", json=body, headers=user.headers)
    assert_problem(response, 422, "validation_failed")
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200


async def test_current_password_guesses_are_rate_limited(database_url: str) -> None:
    settings = make_settings(database_url, rate_limit_reauth_per_account=2)
    async with running_app(settings) as app, http_client(app) as client:
        user = await signed_in(app, client)
        guess = {"current_password": "a wrong guess", "new_password": "a brand new passphrase"}
        for _ in range(2):
            response = await client.post("/v1/users/me/password", json=guess, headers=user.headers)
            assert_problem(response, 422, "validation_failed")
        # Even the right password waits now: a stolen access token cannot guess on.
        right = {**guess, "current_password": PASSWORD}
        response = await client.post("/v1/users/me/password", json=right, headers=user.headers)
        assert_problem(response, 429, "rate_limited")
        assert "retry-after" in response.headers


# -- admin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/users"),
        ("GET", "/v1/users/{id}"),
        ("PATCH", "/v1/users/{id}"),
        ("DELETE", "/v1/users/{id}"),
    ],
)
async def test_admin_routes_refuse_plain_users_and_anonymous(
    client: httpx.AsyncClient, user: Account, other_user: Account, method: str, path: str
) -> None:
    url = path.format(id=other_user.id)
    body = {"name": "x"} if method == "PATCH" else None
    as_user = await client.request(method, url, json=body, headers=user.headers)
    assert_problem(as_user, 403, "forbidden")
    anonymous = await client.request(method, url, json=body)
    assert_problem(anonymous, 401, "not_authenticated")


async def test_admin_lists_users_page_by_page(
    client: httpx.AsyncClient,
    admin: Account,
    make_account: MakeAccount,
) -> None:
    for i in range(4):
        await make_account(f"page{i}@example.com")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/users", params=params, headers=admin.headers)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([admin.email] + [f"page{i}@example.com" for i in range(4)])
    assert len(seen) == len(set(seen))


async def test_admin_search_matches_email_and_name(
    client: httpx.AsyncClient,
    admin: Account,
    make_account: MakeAccount,
) -> None:
    await make_account("grace@example.com", name="Grace Hopper")
    await make_account("alan@example.com", name="Alan Turing")
    by_name = await client.get("/v1/users", params={"q": "hopper"}, headers=admin.headers)
    assert [u["email"] for u in by_name.json()["items"]] == ["grace@example.com"]
    # Regex characters are searched literally.
    literal = await client.get("/v1/users", params={"q": ".*"}, headers=admin.headers)
    assert literal.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "validation_failed"),
        ({"limit": 101}, "validation_failed"),
        ({"cursor": "forged.cursor"}, "invalid_cursor"),
    ],
)
async def test_admin_list_refuses_bad_paging(
    client: httpx.AsyncClient, admin: Account, params: dict[str, str | int], code: str
) -> None:
    response = await client.get("/v1/users", params=params, headers=admin.headers)
    assert_problem(response, 400 if code == "invalid_cursor" else 422, code)


async def test_a_cursor_is_tied_to_its_search(
    client: httpx.AsyncClient,
    admin: Account,
    make_account: MakeAccount,
) -> None:
    for i in range(3):
        await make_account(f"tied{i}@example.com")
    page = await client.get("/v1/users", params={"limit": 1}, headers=admin.headers)
    cursor = page.json()["next_cursor"]
    other = await client.get(
        "/v1/users", params={"limit": 1, "cursor": cursor, "q": "tied"}, headers=admin.headers
    )
    assert_problem(other, 400, "invalid_cursor")


async def test_admin_gets_and_updates_a_user(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    got = await client.get(f"/v1/users/{user.id}", headers=admin.headers)
    assert got.json()["email"] == user.email
    patched = await client.patch(
        f"/v1/users/{user.id}", json={"role": "admin", "name": "Promoted"}, headers=admin.headers
    )
    assert patched.status_code == 200
    assert patched.json()["role"] == "admin"
    # A role change ends the user's current access tokens at once.
    assert_problem(await client.get("/v1/users/me", headers=user.headers), 401, "token_invalid")


async def test_disabling_a_user_stops_their_tokens_at_once(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    response = await client.patch(
        f"/v1/users/{user.id}", json={"disabled": True}, headers=admin.headers
    )
    assert response.json()["disabled"] is True
    assert_problem(await client.get("/v1/users/me", headers=user.headers), 401, "token_invalid")


async def test_admin_deletes_a_user_whose_tokens_then_fail(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    assert (await client.delete(f"/v1/users/{user.id}", headers=admin.headers)).status_code == 204
    assert_problem(await client.get("/v1/users/me", headers=user.headers), 401, "token_invalid")
    again = await client.delete(f"/v1/users/{user.id}", headers=admin.headers)
    assert_problem(again, 404, "user_not_found")


@pytest.mark.parametrize("user_id", ["000000000000000000000000", "not-an-id"])
async def test_unknown_users_are_404(
    client: httpx.AsyncClient, admin: Account, user_id: str
) -> None:
    assert_problem(
        await client.get(f"/v1/users/{user_id}", headers=admin.headers), 404, "user_not_found"
    )
    assert_problem(
        await client.patch(f"/v1/users/{user_id}", json={"name": "x"}, headers=admin.headers),
        404,
        "user_not_found",
    )


async def test_admins_cannot_demote_disable_or_delete_themselves(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for body in ({"role": "user"}, {"disabled": True}):
        response = await client.patch(f"/v1/users/{admin.id}", json=body, headers=admin.headers)
        assert_problem(response, 403, "forbidden")
    assert_problem(
        await client.delete(f"/v1/users/{admin.id}", headers=admin.headers), 403, "forbidden"
    )
    assert (await client.get("/v1/users/me", headers=admin.headers)).json()["role"] == "admin"

"""`make admin`: the create-admin script, run as operators run it."""

from __future__ import annotations

import asyncio
import subprocess

import httpx

from app.accounts.models import Role
from app.config import Settings
from app.container import Container
from tests.support.accounts import PASSWORD, Account, sign_in
from tests.support.problems import assert_problem
from tests.support.scripts import script


def run_script(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = script(settings, "scripts.create_admin", *args)
    return result


async def test_creates_a_new_admin_who_can_sign_in(
    settings: Settings, container: Container
) -> None:
    result = run_script(settings, "--email", "Ops@Example.com", "--password", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "created admin ops@example.com" in result.stdout
    user = await container.users.get_by_email("ops@example.com")
    assert user is not None and user.role is Role.ADMIN
    assert await container.hasher.verify(user.password_hash, PASSWORD)

    again = run_script(settings, "--email", "ops@example.com")
    assert again.returncode == 0, again.stderr
    assert "already an admin" in again.stdout


async def test_promotes_an_existing_user_while_the_server_runs(
    settings: Settings, container: Container, client: httpx.AsyncClient, user: Account
) -> None:
    feed = container.feed
    assert feed is not None
    await asyncio.wait_for(feed.settled(), timeout=10)  # the account's creation applied
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200
    assert user.id in container.users.principals  # type: ignore[operator]

    result = run_script(settings, "--email", user.email)
    assert result.returncode == 0, result.stderr
    assert "is now an admin" in result.stdout
    promoted = await container.users.get(user.id)
    assert promoted is not None and promoted.role is Role.ADMIN

    # The running server hears of it through its change stream: tokens from before the
    # promotion stop working, a new sign-in carries the admin role.
    principals = container.users.principals
    await asyncio.wait_for(feed.wait_for(lambda: user.id not in principals), timeout=10)  # type: ignore[operator]
    assert_problem(await client.get("/v1/users/me", headers=user.headers), 401, "token_invalid")
    again = await sign_in(client, user.email)
    assert (await client.get("/v1/users/me", headers=again.headers)).json()["role"] == "admin"


async def test_bad_input_is_refused_with_a_hint(settings: Settings, container: Container) -> None:
    bad_email = run_script(settings, "--email", "not-an-email", "--password", PASSWORD)
    assert bad_email.returncode == 2
    assert "not an email address" in bad_email.stderr
    short = run_script(settings, "--email", "a@example.com", "--password", "short")
    assert short.returncode == 1
    assert "at least 8 characters" in short.stderr
    no_password = run_script(settings, "--email", "b@example.com")
    assert no_password.returncode == 1
    assert "needs a password" in no_password.stderr
    assert await container.db["users"].count_documents({}) == 0

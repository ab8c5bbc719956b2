"""Account lifecycle against a real SMTP server (aiosmtpd on a free port): verification,
password reset, sessions, API keys; two server processes where it matters."""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from tests.support.accounts import PASSWORD
from tests.support.apps import http_client, make_settings, running_app
from tests.support.feeds import feed_of
from tests.support.mail import Inbox, parts, token_in
from tests.support.problems import assert_problem
from tests.support.scripts import script
from tests.support.servers import api_server, free_port
from tests.support.waiting import until

NEW_PASSWORD = "a brand new passphrase"
NOTES = "/v1/collections/notes/documents"


@pytest.fixture
async def mail_app(database_url: str, smtp: tuple[Inbox, int]) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url,
        mail_url=f"smtp://127.0.0.1:{smtp[1]}",
        public_url="https://app.example",
        app_name="Notely",
    )
    async with running_app(settings) as app:
        yield app


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(mail_app) as client:
        yield client


async def register(client: httpx.AsyncClient, email_address: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/auth/register", json={"email": email_address, "password": PASSWORD, "name": "Ada"}
    )
    # 202 with REQUIRE_VERIFIED_EMAIL (the same for a taken address), 201 otherwise.
    assert response.status_code in (201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email_address: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email_address, "password": password})


async def test_register_mails_a_link_that_verifies_the_address_once(
    mail_client: httpx.AsyncClient, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    user = await register(mail_client, "ada@example.com")
    assert user["email_verified"] is False
    message = await inbox.next()
    assert message["To"] == "ada@example.com"
    assert "Notely" in message["Subject"]
    token = token_in(message, "verify-email")

    verified = await mail_client.post("/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    again = await mail_client.post("/v1/auth/verify-email", json={"token": token})
    assert_problem(again, 400, "invalid_token")


async def test_a_password_reset_replaces_the_password_and_ends_every_session(
    mail_client: httpx.AsyncClient, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    await register(mail_client, "grace@example.com")
    await inbox.next()  # the verification mail
    signed_in = (await login(mail_client, "grace@example.com", PASSWORD)).json()
    old = {"Authorization": f"Bearer {signed_in['access_token']}"}
    # Whoever held the account before its owner recovered it made a key: it dies too.
    made = await mail_client.post(
        "/v1/users/me/api-keys", json={"name": "sync", "current_password": PASSWORD}, headers=old
    )
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await mail_client.get(NOTES, headers=key)).status_code != 401
    assert "API key" in parts(await inbox.next())[0]  # the owner is told of the key

    asked = await mail_client.post(
        "/v1/auth/password-reset/request", json={"email": "Grace@Example.com "}
    )
    assert asked.status_code == 202
    token = token_in(await inbox.next(), "reset-password")

    short = await mail_client.post(
        "/v1/auth/password-reset", json={"token": token, "new_password": "short"}
    )
    assert short.status_code == 422  # refused before the link is used up
    done = await mail_client.post(
        "/v1/auth/password-reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text

    assert_problem(
        await login(mail_client, "grace@example.com", PASSWORD), 401, "invalid_credentials"
    )
    assert (await login(mail_client, "grace@example.com", NEW_PASSWORD)).status_code == 200
    assert_problem(await mail_client.get("/v1/users/me", headers=old), 401, "token_invalid")
    assert_problem(await mail_client.get(NOTES, headers=key), 401, "token_invalid")
    refreshed = await mail_client.post(
        "/v1/auth/refresh", json={"refresh_token": signed_in["refresh_token"]}
    )
    assert refreshed.status_code == 401
    again = await mail_client.post(
        "/v1/auth/password-reset", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert_problem(again, 400, "invalid_token")
    me = await login(mail_client, "grace@example.com", NEW_PASSWORD)
    profile = await mail_client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {me.json()['access_token']}"}
    )
    assert profile.json()["email_verified"] is True  # the link proved the mailbox


async def test_a_reset_for_an_unknown_address_answers_exactly_like_a_known_one(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    await register(mail_client, "known@example.com")
    await inbox.next()

    def seen(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
        return response.status_code, headers, response.content

    known = await mail_client.post(
        "/v1/auth/password-reset/request", json={"email": "known@example.com"}
    )
    unknown = await mail_client.post(
        "/v1/auth/password-reset/request", json={"email": "nobody@example.com"}
    )
    assert seen(known) == seen(unknown)
    assert known.status_code == 202
    message = await inbox.next()
    assert message["To"] == "known@example.com"
    # The unknown address's message is dropped by the worker, never sent.
    outbox = mail_app.state.container.lifecycle.outbox
    while await outbox.pending():
        await mail_app.state.container.mail.deliver_one()
    assert [m["To"] for m in inbox.received] == ["known@example.com", "known@example.com"]


NEW_ACCOUNT = {"email": "taken@example.com", "password": PASSWORD, "name": "Ada"}


@pytest.fixture
async def verifying_client(
    database_url: str, smtp: tuple[Inbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    """A server with REQUIRE_VERIFIED_EMAIL=true, mailing through the test's SMTP server."""
    settings = make_settings(
        database_url,
        mail_url=f"smtp://127.0.0.1:{smtp[1]}",
        public_url="https://app.example",
        require_verified_email=True,
    )
    async with running_app(settings) as app, http_client(app) as client:
        yield client


async def test_unverified_accounts_cannot_sign_in_when_verification_is_required(
    verifying_client: httpx.AsyncClient, smtp: tuple[Inbox, int]
) -> None:
    client, (inbox, _) = verifying_client, smtp
    await register(client, "new@example.com")
    refused = await login(client, "new@example.com", PASSWORD)
    assert_problem(refused, 403, "email_not_verified")
    wrong = await login(client, "new@example.com", "not the password")
    assert_problem(wrong, 401, "invalid_credentials")  # says nothing about verification
    token = token_in(await inbox.next(), "verify-email")
    assert (await client.post("/v1/auth/verify-email", json={"token": token})).is_success
    assert (await login(client, "new@example.com", PASSWORD)).status_code == 200


async def test_registering_a_taken_address_looks_the_same_and_tells_its_owner(
    verifying_client: httpx.AsyncClient, smtp: tuple[Inbox, int]
) -> None:
    client, (inbox, _) = verifying_client, smtp
    first = await client.post("/v1/auth/register", json=NEW_ACCOUNT)
    assert first.status_code == 202, first.text
    token_in(await inbox.next(), "verify-email")
    again = await client.post("/v1/auth/register", json={**NEW_ACCOUNT, "name": "Mallory"})
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["cache-control"] == "no-store"
    # The owner hears of it, with a way back in; the account is unchanged.
    told = await inbox.next()
    assert told["To"] == NEW_ACCOUNT["email"] and "already has one" in parts(told)[0]
    assert "Hello Ada" in parts(told)[0]
    # A weak password is still refused up front (it says nothing about the address).
    weak = await client.post("/v1/auth/register", json={**NEW_ACCOUNT, "password": "x"})
    assert_problem(weak, 422, "validation_failed")


async def test_api_keys_need_a_verified_address_when_verification_is_required(
    verifying_client: httpx.AsyncClient, smtp: tuple[Inbox, int]
) -> None:
    client, (inbox, _) = verifying_client, smtp
    await register(client, "keys@example.com")
    token = token_in(await inbox.next(), "verify-email")
    await client.post("/v1/auth/verify-email", json={"token": token})
    tokens = (await login(client, "keys@example.com", PASSWORD)).json()
    me = {"Authorization": f"Bearer {tokens['access_token']}"}
    made = await client.post(
        "/v1/users/me/api-keys", json={"name": "a", "current_password": PASSWORD}, headers=me
    )
    assert made.status_code == 201, made.text
    # A new address starts unverified: no new key until it is confirmed.
    await client.patch(
        "/v1/users/me",
        json={"email": "other@example.com", "current_password": PASSWORD},
        headers=me,
    )
    refused = await client.post(
        "/v1/users/me/api-keys", json={"name": "b", "current_password": PASSWORD}, headers=me
    )
    assert_problem(refused, 403, "email_not_verified")
    listed = await client.get("/v1/users/me/api-keys", headers=me)
    assert [k["name"] for k in listed.json()["items"]] == ["a"]


async def test_a_new_email_starts_unverified_and_both_addresses_hear_of_it(
    mail_client: httpx.AsyncClient, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    await register(mail_client, "old@example.com")
    token = token_in(await inbox.next(), "verify-email")
    await mail_client.post("/v1/auth/verify-email", json={"token": token})
    tokens = (await login(mail_client, "old@example.com", PASSWORD)).json()
    me = {"Authorization": f"Bearer {tokens['access_token']}"}

    changed = await mail_client.patch(
        "/v1/users/me",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=me,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email_verified"] is False
    first, second = await inbox.next(), await inbox.next()
    by_address = {m["To"]: m for m in (first, second)}
    assert set(by_address) == {"new@example.com", "old@example.com"}
    assert "new@example.com" in parts(by_address["old@example.com"])[0]
    new_token = token_in(by_address["new@example.com"], "verify-email")
    # A link mailed to the old address no longer verifies anything.
    assert_problem(
        await mail_client.post("/v1/auth/verify-email", json={"token": token}), 400, "invalid_token"
    )
    done = await mail_client.post("/v1/auth/verify-email", json={"token": new_token})
    assert done.json()["email"] == "new@example.com" and done.json()["email_verified"] is True


async def test_without_mail_url_messages_are_eml_files(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, data_dir=tmp_path)
    async with running_app(settings) as app, http_client(app) as client:
        await register(client, "files@example.com")
        worker = app.state.container.mail
        while await app.state.container.lifecycle.outbox.pending():
            await worker.deliver_one()
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    message = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert message["To"] == "files@example.com"
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"


def server_env(settings: Settings, smtp_port: int) -> dict[str, str]:
    return {
        "JWT_SECRET": settings.jwt_secret,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "64",
        "MAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "MAIL_RETRY_SECONDS": "0.2",
        "PUBLIC_URL": "https://app.example",
    }


async def test_mail_queued_while_smtp_is_down_arrives_once_it_is_back(
    database_url: str,
) -> None:
    """Two server processes, one outbox: the reset mail is sent once, after the outage."""
    settings = make_settings(database_url)
    port = free_port()  # nothing listens here yet: the SMTP server is down
    env = server_env(settings, port)
    with (
        api_server(database_url, settings.mongodb_db, **env) as (a, _),
        api_server(database_url, settings.mongodb_db, **env) as (_b, _),
    ):
        async with httpx.AsyncClient(base_url=a) as on_a:
            await register(on_a, "outage@example.com")
            asked = await on_a.post(
                "/v1/auth/password-reset/request", json={"email": "outage@example.com"}
            )
            assert asked.status_code == 202
        db: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_url)
        outbox = db[settings.mongodb_db]["mail_outbox"]
        try:
            # Both processes have tried and failed at least once: the messages wait.
            async def both_tried() -> bool:
                return await outbox.count_documents({"attempts": {"$gte": 1}}) >= 2

            await until(both_tried)
            assert await outbox.count_documents({"status": "sent"}) == 0
            inbox = Inbox()
            controller = Controller(inbox, hostname="127.0.0.1", port=port)
            controller.start()
            try:
                arrived = [await inbox.next(within=60), await inbox.next(within=60)]

                async def none_pending() -> bool:
                    return await outbox.count_documents({"status": "pending"}) == 0

                await until(none_pending)
            finally:
                controller.stop()
            kinds = sorted(str(m["Subject"]) for m in arrived)
            assert kinds == [
                "Confirm your email address for Docstore",
                "Reset your Docstore password",
            ]
            assert len(inbox.received) == 2  # each exactly once, though two workers ran
            assert await outbox.count_documents({"status": "sent"}) == 2
        finally:
            await db.close()


async def test_sessions_list_and_revoke_across_processes(database_url: str) -> None:
    """Two apps on one database, as two API workers: revoking a device's session in one
    ends its access token in the other as soon as the change stream tells it."""
    settings = make_settings(database_url)
    async with (
        running_app(settings) as a,
        running_app(settings, drop_database=False) as b,
        http_client(a) as on_a,
        http_client(b) as on_b,
    ):
        await register(on_a, "devices@example.com")
        body = {"email": "devices@example.com", "password": PASSWORD}
        phone = (
            await on_a.post("/v1/auth/login", json=body, headers={"User-Agent": "Phone/1"})
        ).json()
        laptop = (
            await on_b.post("/v1/auth/login", json=body, headers={"User-Agent": "Laptop/2"})
        ).json()
        as_phone = {"Authorization": f"Bearer {phone['access_token']}"}
        as_laptop = {"Authorization": f"Bearer {laptop['access_token']}"}
        listed = (await on_a.get("/v1/users/me/sessions", headers=as_phone)).json()["items"]
        assert [s["user_agent"] for s in listed] == ["Phone/1", "Laptop/2"]
        assert [s["current"] for s in listed] == [True, False]
        assert all(s["address"] == "203.0.113.7" for s in listed)
        # b now holds the laptop session's state in memory.
        assert (await on_b.get("/v1/users/me", headers=as_laptop)).status_code == 200

        laptop_id = listed[1]["id"]
        revoked = await on_a.delete(f"/v1/users/me/sessions/{laptop_id}", headers=as_phone)
        assert revoked.status_code == 204
        await feed_of(b).settled()
        assert_problem(await on_b.get("/v1/users/me", headers=as_laptop), 401, "token_invalid")
        assert (await on_b.get("/v1/users/me", headers=as_phone)).status_code == 200
        again = await on_a.delete(f"/v1/users/me/sessions/{laptop_id}", headers=as_phone)
        assert_problem(again, 404, "session_not_found")
        listed = (await on_a.get("/v1/users/me/sessions", headers=as_phone)).json()["items"]
        assert [s["user_agent"] for s in listed] == ["Phone/1"]


async def test_api_keys_act_as_their_user_but_never_on_credentials(database_url: str) -> None:
    settings = make_settings(database_url)
    env = server_env(settings, free_port())
    with (
        api_server(database_url, settings.mongodb_db, **env) as (a, _),
        api_server(database_url, settings.mongodb_db, **env) as (b, _),
    ):
        async with httpx.AsyncClient(base_url=a) as on_a, httpx.AsyncClient(base_url=b) as on_b:
            user = await register(on_a, "keys@example.com")
            tokens = (await login(on_a, "keys@example.com", PASSWORD)).json()
            me = {"Authorization": f"Bearer {tokens['access_token']}"}
            created = await on_a.post(
                "/v1/users/me/api-keys",
                json={"name": "import", "current_password": PASSWORD},
                headers=me,
            )
            assert created.status_code == 201, created.text
            key = created.json()
            assert key["key"].startswith("dsk_") and key["key"].startswith(key["prefix"])
            assert created.headers["cache-control"] == "no-store"
            as_key = {"Authorization": f"Bearer {key['key']}"}

            # A key acts as its user, in any process.
            admin_headers = await _admin(on_a, database_url, settings)
            declared = await on_a.post(
                "/v1/collections", json={"name": "imports"}, headers=admin_headers
            )
            assert declared.status_code == 201
            doc = await on_b.post(
                "/v1/collections/imports/documents", json={"n": 1}, headers=as_key
            )
            assert doc.status_code == 201, doc.text
            assert doc.json()["owner"] == user["id"]

            listed = (await on_a.get("/v1/users/me/api-keys", headers=me)).json()["items"]
            assert [k["name"] for k in listed] == ["import"]
            assert "key" not in listed[0] and listed[0]["prefix"] == key["prefix"]

            # Never for credentials.
            for method, path, body in [
                (
                    "POST",
                    "/v1/users/me/password",
                    {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                ),
                ("POST", "/v1/users/me/api-keys", {"name": "more", "current_password": PASSWORD}),
                ("GET", "/v1/users/me/sessions", None),
                ("DELETE", "/v1/users/me", {"current_password": PASSWORD}),
                ("PATCH", "/v1/users/me", {"email": "x@example.com", "current_password": PASSWORD}),
            ]:
                response = await on_a.request(method, path, json=body, headers=as_key)
                assert_problem(response, 403, "api_key_not_allowed")
            renamed = await on_a.patch("/v1/users/me", json={"name": "Robot"}, headers=as_key)
            assert renamed.status_code == 200

            revoked = await on_a.delete(f"/v1/users/me/api-keys/{key['id']}", headers=me)
            assert revoked.status_code == 204
            gone = await on_a.delete(f"/v1/users/me/api-keys/{key['id']}", headers=me)
            assert_problem(gone, 404, "api_key_not_found")
            # At once where it was revoked; in the other process as soon as its change
            # stream delivers the deletion (milliseconds; the cache fails closed without it).
            assert_problem(await on_a.get("/v1/users/me", headers=as_key), 401, "token_invalid")

            async def refused_on_b() -> bool:
                return (await on_b.get("/v1/users/me", headers=as_key)).status_code == 401

            await until(refused_on_b, within=10)


async def _admin(
    client: httpx.AsyncClient, database_url: str, settings: Settings
) -> dict[str, str]:
    made = script(
        settings, "scripts.create_admin", "--email", "root@example.com", "--password", PASSWORD
    )
    assert made.returncode == 0, made.stderr
    tokens = (await login(client, "root@example.com", PASSWORD)).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_make_apikey_mints_a_working_key(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client, "ops@example.com")
    minted = script(
        settings,
        "scripts.create_api_key",
        "--email",
        "ops@example.com",
        "--name",
        "cron",
        "--days",
        "30",
    )
    assert minted.returncode == 0, minted.stderr
    secret = minted.stdout.split()[0]
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["email"] == "ops@example.com"
    unknown = script(
        settings, "scripts.create_api_key", "--email", "nobody@example.com", "--name", "x"
    )
    assert unknown.returncode == 1 and "no account has" in unknown.stderr
    for bad, message in (
        (["--email", "not-an-email", "--name", "x"], "not an email address"),
        (["--email", "ops@example.com", "--name", "x", "--days", "0"], "--days"),
        (["--email", "ops@example.com", "--name", "  "], "--name"),
    ):
        refused = script(settings, "scripts.create_api_key", *bad)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr


async def test_an_expired_api_key_is_refused(
    client: httpx.AsyncClient, app: FastAPI, user: Any
) -> None:
    container = app.state.container
    now = container.auth.clock()
    from datetime import timedelta

    _, secret = await container.api_keys.create(
        user_id=user.id, name="old", expires_at=now - timedelta(seconds=1), now=now
    )
    response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {secret}"})
    assert_problem(response, 401, "token_invalid")


@pytest.mark.parametrize(
    ("expires_at", "why"),
    [
        (0, "RFC 3339"),  # pydantic alone reads a number as seconds since 1970
        ("2001-01-01T00:00:00Z", "future"),
        ("2999-01-01T00:00:00", "timezone"),
    ],
)
async def test_an_api_key_expiry_must_be_a_future_rfc3339_time(
    client: httpx.AsyncClient, user: Any, expires_at: object, why: str
) -> None:
    body = {"name": "cron", "current_password": user.password, "expires_at": expires_at}
    refused = await client.post("/v1/users/me/api-keys", json=body, headers=user.headers)
    assert_problem(refused, 422, "validation_failed")
    assert refused.json()["errors"][0]["loc"][-1] == "expires_at", refused.text
    assert why in refused.text
    listed = await client.get("/v1/users/me/api-keys", headers=user.headers)
    assert listed.json()["items"] == []

    body["expires_at"] = "2999-01-01T12:00:00+02:00"
    made = await client.post("/v1/users/me/api-keys", json=body, headers=user.headers)
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"] == "2999-01-01T10:00:00.000Z"


async def test_reset_requests_are_throttled_per_account(
    database_url: str, smtp: tuple[Inbox, int]
) -> None:
    settings = make_settings(
        database_url, mail_url=f"smtp://127.0.0.1:{smtp[1]}", rate_limit_mail_per_account=1
    )
    async with running_app(settings) as app, http_client(app) as client:
        body = {"email": "often@example.com"}
        first = await client.post("/v1/auth/password-reset/request", json=body)
        assert first.status_code == 202
        second = await client.post("/v1/auth/password-reset/request", json=body)
        assert_problem(second, 429, "rate_limited")
        assert int(second.headers["retry-after"]) >= 1


def test_ops_can_override_a_template(tmp_path: Path) -> None:
    from app.mail.templates import render

    (tmp_path / "reset_password.subject").write_text("$app_name: new password <here>")
    subject, text, html = render(
        "reset_password",
        {"app_name": "Notely", "name": "<Ada>", "link": "https://x/?a=1&b=2", "minutes": "30"},
        tmp_path,
    )
    assert subject == "Notely: new password <here>"  # overridden
    assert "Hello <Ada>," in text  # the default text part
    assert "Hello &lt;Ada&gt;," in html and "https://x/?a=1&amp;b=2" in html  # escaped

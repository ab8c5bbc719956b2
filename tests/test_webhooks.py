"""Webhooks against a real HTTP receiver on loopback: Standard Webhooks signatures checked
with the reference implementation, retries after 500s and timeouts, giving up and
redelivering, secret rotation, account events, SSRF rules, restarts and two processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.clock import utc_now
from app.config import Settings
from app.container import Container
from app.db.change_pump import STATE as CHANGE_PUMP_STATE
from app.webhooks.schemas import WebhookIn
from app.webhooks.sender import permitted
from tests.support.accounts import Account, MakeAccount
from tests.support.apps import http_client, make_settings, running_app, shared_settings
from tests.support.problems import assert_problem
from tests.support.receiver import HANG, Receiver, receiving
from tests.support.waiting import until


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hook_settings(database_url)


HOOKS: dict[str, Any] = {
    "webhook_allow_private_targets": True,
    "webhook_timeout_seconds": 0.3,
    "webhook_retry_seconds": 0.05,
    "webhook_give_up_seconds": 3,
}


def hook_settings(database_url: str) -> Settings:
    return shared_settings(database_url, **HOOKS)


def own_settings(database_url: str) -> Settings:
    """An app of its own (not shared), on a database of its own."""
    return make_settings(database_url, **HOOKS)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


async def register(
    client: httpx.AsyncClient, admin: Account, url: str, **body: Any
) -> dict[str, Any]:
    body = {
        "url": url,
        "events": ["document.created", "document.updated", "document.deleted"],
        **body,
    }
    response = await client.post("/v1/webhooks", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def declare(client: httpx.AsyncClient, admin: Account, name: str = "orders") -> None:
    body = {"name": name, "access": {"read": "authenticated", "write": "authenticated"}}
    response = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text


async def deliveries(client: httpx.AsyncClient, admin: Account, hook: dict[str, Any]) -> list[Any]:
    response = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def settled(
    client: httpx.AsyncClient, admin: Account, hook: dict[str, Any], status: str
) -> dict[str, Any]:
    """The hook's latest message, once it is in `status`."""

    async def reached() -> bool:
        found = await deliveries(client, admin, hook)
        return bool(found) and found[0]["status"] == status

    await until(reached)
    return dict((await deliveries(client, admin, hook))[0])


async def test_a_change_is_delivered_signed_as_standard_webhooks_says(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    hook = await register(client, admin, receiver.url)
    assert hook["secret"].startswith("whsec_")
    await declare(client, admin)
    created = await client.post(
        "/v1/collections/orders/documents", json={"total": 12}, headers=user.headers
    )
    [got] = await receiver.wait_for(1)
    payload = Webhook(hook["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "document.created"
    assert payload["data"]["id"] == created.json()["id"]
    assert payload["data"]["document"]["data"] == {"total": 12}
    assert payload["data"]["version"] == 1
    assert got.headers["webhook-id"].startswith("msg_")
    # Another secret does not verify it: the signature is over this body with this secret.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(got.body, got.headers)
    tampered = got.body.replace(b"12", b"13")
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(tampered, got.headers)
    # The log shows the attempt; the secret is never shown again.
    logged = await settled(client, admin, hook, "delivered")
    assert logged["log"][0]["status"] == 200
    assert (
        "secret"
        not in (await client.get(f"/v1/webhooks/{hook['id']}", headers=admin.headers)).json()
    )


async def test_updates_and_deletes_of_only_the_chosen_collections_and_events(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    await register(client, admin, receiver.url, events=["document.deleted"], collections=["orders"])
    await declare(client, admin, "orders")
    await declare(client, admin, "notes")
    note = await client.post("/v1/collections/notes/documents", json={}, headers=user.headers)
    await client.delete(
        f"/v1/collections/notes/documents/{note.json()['id']}", headers=user.headers
    )
    order = (
        await client.post("/v1/collections/orders/documents", json={"n": 1}, headers=user.headers)
    ).json()
    path = f"/v1/collections/orders/documents/{order['id']}"
    await client.patch(path, json={"n": 2}, headers=user.headers)
    await client.delete(path, headers=user.headers)
    [got] = await receiver.wait_for(1)
    assert got.json["type"] == "document.deleted"
    # The document as it was when deleted.
    assert got.json["data"]["document"]["data"] == {"n": 2}
    assert got.json["data"]["version"] == 2


async def test_a_failed_attempt_is_retried_the_same_message_until_it_lands(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    hook = await register(client, admin, receiver.url)
    await declare(client, admin)
    receiver.answer(500, HANG)  # an error, then no answer within the time limit
    await client.post("/v1/collections/orders/documents", json={}, headers=user.headers)
    got = await receiver.wait_for(3)
    assert [r.status for r in got] == [500, None, 200]
    # Every attempt is the same message: the same id and body, each one signed.
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    for attempt in got:
        Webhook(hook["secret"]).verify(attempt.body, attempt.headers)
    logged = await settled(client, admin, hook, "delivered")
    assert [a["status"] for a in logged["log"]] == [500, None, 200]
    assert "within" in logged["log"][1]["error"]
    assert logged["log"][0]["response"] == "nope"


async def test_a_message_is_given_up_after_its_time_and_can_be_sent_again(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    hook = await register(client, admin, receiver.url)
    await declare(client, admin)
    receiver.answer(*[503] * 40)
    await client.post("/v1/collections/orders/documents", json={}, headers=user.headers)
    logged = await settled(client, admin, hook, "failed")
    tries = len(receiver.received)
    assert tries >= 3 and logged["attempts"] == tries
    # Sent again: the first try gets no answer (so it stays pending a while), then 200.
    receiver.plan.clear()
    receiver.answer(HANG)
    pending = await client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{logged['id']}/redeliver", headers=admin.headers
    )
    assert pending.status_code == 200 and pending.json()["status"] == "pending"
    again = await client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{logged['id']}/redeliver", headers=admin.headers
    )
    assert_problem(again, 409, "delivery_pending")
    got = await receiver.wait_for(tries + 2)
    assert [r.status for r in got[-2:]] == [None, 200]
    assert got[-1].headers["webhook-id"] == got[0].headers["webhook-id"]


async def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    hook = await register(client, admin, receiver.url)
    rotated = await client.post(f"/v1/webhooks/{hook['id']}/secret", headers=admin.headers)
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != hook["secret"]
    await declare(client, admin)
    await client.post("/v1/collections/orders/documents", json={}, headers=user.headers)
    [got] = await receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(got.body, got.headers)
    Webhook(hook["secret"]).verify(got.body, got.headers)


async def test_account_events_show_public_fields_only_when_they_change(
    client: httpx.AsyncClient,
    admin: Account,
    make_account: MakeAccount,
    receiver: Receiver,
    container: Container,
) -> None:
    # The last test's accounts were deleted just now: a webhook registered before the
    # pump has read those deletions may be sent them too (README, Webhooks: Order).
    await container.pump.settled()
    await register(
        client, admin, receiver.url, events=["user.created", "user.updated", "user.deleted"]
    )
    ada = await make_account("ada@example.com")  # created, then signs in (no event)
    # Each change read before the next: the embedded database gives an update the
    # document as it is when read, not as that update left it (README).
    await container.pump.settled()
    await client.patch("/v1/users/me", json={"name": "Ada L."}, headers=ada.headers)
    await container.pump.settled()
    response = await client.delete(f"/v1/users/{ada.id}", headers=admin.headers)
    assert response.status_code == 204, response.text
    got = await receiver.wait_for(3)
    # (Sent several at a time: they may arrive in any order.)
    by_type = {r.json["type"]: r.json["data"] for r in got}
    assert sorted(by_type) == ["user.created", "user.deleted", "user.updated"]
    assert by_type["user.created"]["email"] == "ada@example.com"
    assert by_type["user.updated"]["name"] == "Ada L."
    assert by_type["user.deleted"] == {"id": ada.id}
    assert not any(b"password" in r.body or b"totp" in r.body for r in got)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/hook", "https"),
        ("https://10.0.0.8/hook", "public"),
        ("https://169.254.169.254/latest/meta-data", "public"),
        ("https://[::ffff:127.0.0.1]/hook", "public"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("ftp://example.com/hook", "https"),
        ("https://exa\tmple.com/hook", "not a URL"),
    ],
    ids=["http", "private", "metadata", "mapped-loopback", "credentials", "ftp", "tab"],
)
async def test_private_targets_are_refused_without_the_setting(
    database_url: str, url: str, why: str
) -> None:
    async with running_app(make_settings(database_url)) as app, http_client(app) as client:
        admin = await _admin(app, client)
        response = await client.post(
            "/v1/webhooks", json={"url": url, "events": ["user.created"]}, headers=admin.headers
        )
        assert_problem(response, 422, "validation_failed")
        assert why in response.json()["detail"]
        assert (await client.get("/v1/webhooks", headers=admin.headers)).json()["items"] == []


async def _admin(app: Any, client: httpx.AsyncClient) -> Account:
    from app.accounts.models import Role
    from tests.support.accounts import signed_in

    return await signed_in(app, client, role=Role.ADMIN)


async def test_an_endpoint_that_never_answers_leaves_slots_for_the_others(
    database_url: str, receiver: Receiver
) -> None:
    """Three sends at once; a webhook whose endpoint hangs holds at most one of them, so
    another webhook's message goes out while those wait for their (long) time limit."""
    hung = shared_settings(
        database_url, **(HOOKS | {"webhook_concurrency": 3, "webhook_timeout_seconds": 120})
    )
    async with running_app(hung) as app, http_client(app) as client:
        admin = await _admin(app, client)
        # Stopped before the app, which then has no send left waiting for its time limit.
        with receiving() as stuck:
            stuck.answer(*[HANG] * 10)
            await register(client, admin, stuck.url, events=["document.created"])
            await declare(client, admin)
            for _ in range(5):  # five messages for the hanging endpoint, the oldest
                await client.post(
                    "/v1/collections/orders/documents", json={}, headers=admin.headers
                )
            await stuck.wait_for(1)
            await register(client, admin, receiver.url, events=["document.created"])
            made = await client.post(
                "/v1/collections/orders/documents", json={}, headers=admin.headers
            )
            [got] = await receiver.wait_for(1)
            assert got.json["data"]["id"] == made.json()["id"]
            # Meanwhile the hanging endpoint had one send at a time, unanswered.
            assert [r.status for r in stuck.received] == [None]


async def _held_world(
    client: httpx.AsyncClient, admin: Account, url: str
) -> tuple[dict[str, Any], list[str]]:
    """A webhook on `url` and four documents created: four messages queued for it."""
    hook = await register(client, admin, url, events=["document.created"])
    await declare(client, admin)
    made = []
    for _ in range(4):
        answer = await client.post(
            "/v1/collections/orders/documents", json={}, headers=admin.headers
        )
        made.append(answer.json()["id"])
    return hook, made


async def test_an_endpoint_that_stops_answering_has_its_messages_held(
    database_url: str,
) -> None:
    """One send at a time: after three sends in a row reach their time limit, the
    webhook's queue is held (for WEBHOOK_RETRY_SECONDS, an hour here), the fourth message
    is not sent, and the webhook says until when."""
    held = shared_settings(
        database_url,
        **(
            HOOKS
            | {
                "webhook_concurrency": 1,
                "webhook_retry_seconds": 3600,
                "webhook_give_up_seconds": 86400,
            }
        ),
    )
    async with running_app(held) as app, http_client(app) as client:
        admin = await _admin(app, client)
        with receiving() as stuck:
            stuck.answer(*[HANG] * 10)
            hook, _ = await _held_world(client, admin, stuck.url)
            url = f"/v1/webhooks/{hook['id']}"

            async def three_tried() -> bool:
                found = await deliveries(client, admin, hook)
                return sum(1 for d in found if d["log"]) == 3

            await until(three_tried)
            until_then = (await client.get(url, headers=admin.headers)).json()["held_until"]
            assert until_then is not None
            queued = await deliveries(client, admin, hook)
            assert [d["status"] for d in queued] == ["pending"] * 4
            # The newest was never sent; all four wait for the hold's end.
            assert queued[0]["attempts"] == 0 and queued[0]["log"] == []
            assert {d["next_attempt_at"] for d in queued} == {until_then}
            assert [r.status for r in stuck.received] == [None] * 3
            # A change made while it is held waits for the hold too (no slot taken).
            await client.post("/v1/collections/orders/documents", json={}, headers=admin.headers)

            async def five_queued() -> bool:
                return len(await deliveries(client, admin, hook)) == 5

            await until(five_queued)
            newest = (await deliveries(client, admin, hook))[0]
            assert newest["attempts"] == 0 and newest["next_attempt_at"] == until_then
            # Pointed at another endpoint: the hold is lifted and everything goes now.
            with receiving() as fixed:
                moved = await client.patch(url, json={"url": fixed.url}, headers=admin.headers)
                assert moved.status_code == 200, moved.text
                assert moved.json()["held_until"] is None
                await fixed.wait_for(5)
                assert [r.status for r in stuck.received] == [None] * 3


async def test_an_answer_lifts_the_hold_and_the_held_messages_go_out(
    database_url: str,
) -> None:
    held = shared_settings(
        database_url, **(HOOKS | {"webhook_concurrency": 1, "webhook_give_up_seconds": 60})
    )
    async with running_app(held) as app, http_client(app) as client:
        admin = await _admin(app, client)
        with receiving() as flaky:
            flaky.answer(HANG, HANG, HANG)  # then 200s
            hook, made = await _held_world(client, admin, flaky.url)

            async def all_delivered() -> bool:
                found = await deliveries(client, admin, hook)
                return [d["status"] for d in found] == ["delivered"] * 4

            await until(all_delivered)
            shown = (await client.get(f"/v1/webhooks/{hook['id']}", headers=admin.headers)).json()
            assert shown["held_until"] is None
            assert [r.status for r in flaky.received] == [None] * 3 + [200] * 4
            newest = (await deliveries(client, admin, hook))[0]
            assert newest["attempts"] == 1  # held, never sent to the silent endpoint
            got = {r.json["data"]["id"] for r in flaky.received if r.status == 200}
            assert got == set(made)


async def test_a_name_resolving_to_a_private_address_is_refused_when_sending(
    database_url: str,
) -> None:
    plain = shared_settings(database_url, webhook_retry_seconds=3600)
    async with running_app(plain) as app, http_client(app) as client:
        admin = await _admin(app, client)
        # Accepted when registered (a name), refused when sent: it resolves to loopback.
        hook = await register(client, admin, "https://localhost:9/hook", events=["user.created"])
        await _admin(app, client)  # a user.created to send
        container: Container = app.state.container

        async def tried() -> bool:
            return bool(
                (await deliveries(client, admin, hook))
                and (await deliveries(client, admin, hook))[0]["log"]
            )

        await until(tried)
        [logged] = await deliveries(client, admin, hook)
        assert logged["log"][0]["status"] is None
        assert "not a public address" in logged["log"][0]["error"]
        assert container.deliveries.attempts >= 1


async def test_redirects_are_not_followed(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    hook = await register(client, admin, receiver.url)
    await declare(client, admin)
    receiver.answer(302)
    await client.post("/v1/collections/orders/documents", json={}, headers=user.headers)
    got = await receiver.wait_for(2)  # the 302, then the retry: never /elsewhere
    assert [r.path for r in got] == ["/hook", "/hook"]
    assert [a["status"] for a in (await deliveries(client, admin, hook))[0]["log"]][:1] == [302]


async def test_admin_only_and_clear_errors(
    client: httpx.AsyncClient, admin: Account, user: Account, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "events": ["user.created"]}
    assert_problem(
        await client.post("/v1/webhooks", json=body, headers=user.headers), 403, "forbidden"
    )
    twice = {"url": receiver.url, "events": ["user.created", "user.created"]}
    assert_problem(
        await client.post("/v1/webhooks", json=twice, headers=admin.headers),
        422,
        "validation_failed",
    )
    unknown = {"url": receiver.url, "events": ["user.exploded"]}
    assert_problem(
        await client.post("/v1/webhooks", json=unknown, headers=admin.headers),
        422,
        "validation_failed",
    )
    missing = await client.get("/v1/webhooks/0123456789abcdef01234567", headers=admin.headers)
    assert_problem(missing, 404, "webhook_not_found")
    assert_problem(
        await client.get("/v1/webhooks/nope", headers=admin.headers), 404, "webhook_not_found"
    )
    hook = await register(client, admin, receiver.url)
    none = await client.get(f"/v1/webhooks/{hook['id']}/deliveries/nope", headers=admin.headers)
    assert_problem(none, 404, "delivery_not_found")
    null = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"url": None}, headers=admin.headers
    )
    assert null.status_code == 200 and null.json()["url"] == receiver.url  # left as it was
    off = await client.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=admin.headers
    )
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert (
        await client.delete(f"/v1/webhooks/{hook['id']}", headers=admin.headers)
    ).status_code == 204
    assert_problem(
        await client.get(f"/v1/webhooks/{hook['id']}", headers=admin.headers),
        404,
        "webhook_not_found",
    )


async def test_nothing_committed_is_lost_across_a_restart(
    database_url: str, receiver: Receiver
) -> None:
    settings = own_settings(database_url)
    async with running_app(settings, drop_database=False) as first, http_client(first) as client:
        admin = await _admin(first, client)
        await register(client, admin, receiver.url)
        await declare(client, admin)
        container: Container = first.state.container
        # One change recorded but not yet sent when the server stops...
        await container.deliveries.stop()
        await client.post("/v1/collections/orders/documents", json={"n": 1}, headers=admin.headers)
        await container.pump.wait_for(lambda: container.pump.recorded >= 1)
        # ...and one committed while no pump ran at all.
        await container.pump.stop()
        await client.post("/v1/collections/orders/documents", json={"n": 2}, headers=admin.headers)
    assert receiver.received == []
    async with running_app(settings) as second:
        got = await receiver.wait_for(2)
        assert sorted(r.json["data"]["document"]["data"]["n"] for r in got) == [1, 2]
        del second


async def test_what_is_written_as_soon_as_a_server_is_up_is_delivered(
    database_url: str, receiver: Receiver
) -> None:
    # A new database: no pump has a place to start from. The server has one before it
    # answers its first request (the pump's own task may open its stream later).
    settings = own_settings(database_url)
    async with running_app(settings) as app, http_client(app) as client:
        container: Container = app.state.container
        start = await container.db[CHANGE_PUMP_STATE].find_one({"_id": "pump"})
        assert start is not None and start["token"] is not None
        admin = await _admin(app, client)
        await register(client, admin, receiver.url)
        await declare(client, admin)
        made = await client.post(
            "/v1/collections/orders/documents", json={"n": 1}, headers=admin.headers
        )
        assert made.status_code == 201, made.text
        [got] = await receiver.wait_for(1)
        assert got.json["data"]["document"]["data"] == {"n": 1}


async def test_two_processes_deliver_each_message_once(
    database_url: str, receiver: Receiver
) -> None:
    settings = own_settings(database_url)
    async with (
        running_app(settings, drop_database=False) as one,
        running_app(settings) as two,
        http_client(one) as a,
        http_client(two) as b,
    ):
        admin = await _admin(one, a)
        await register(a, admin, receiver.url, events=["document.created"])
        await declare(a, admin)
        for n in range(30):
            await (a if n % 2 else b).post(
                "/v1/collections/orders/documents", json={"n": n}, headers=admin.headers
            )
        got = await receiver.wait_for(30)
        queue = one.state.container.webhooks.repository.deliveries

        async def all_settled() -> bool:
            delivered: int = await queue.count_documents({"status": "delivered"})
            return delivered == 30

        # Every message settled: nothing more will be sent.
        await until(all_settled)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 30 == len(set(ids))
    assert sorted(r.json["data"]["document"]["data"]["n"] for r in got) == list(range(30))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of the metadata address
        ("2002:7f00:1::1", False),  # 6to4 of loopback
        ("::7f00:1", False),  # IPv4-compatible loopback
        ("fec0::1", False),  # site-local
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),  # noqa: S104 (a target to refuse, not a binding)
    ],
)
def test_only_public_addresses_are_targets(address: str, allowed: bool) -> None:
    assert permitted(address, allow_private=False) is allowed


async def test_a_document_written_around_the_api_does_not_stop_the_others(
    client: httpx.AsyncClient,
    container: Container,
    admin: Account,
    user: Account,
    receiver: Receiver,
) -> None:
    await register(client, admin, receiver.url, events=["document.created"])
    await declare(client, admin)
    # No version, no dates: not a document the API could show.
    await container.db["docs_orders"].insert_one({"_id": "odd", "data": {"x": 1}})
    made = await client.post("/v1/collections/orders/documents", json={}, headers=user.headers)
    [got] = await receiver.wait_for(1)
    assert got.json["data"]["id"] == made.json()["id"]


async def test_a_worker_process_sends_what_api_processes_leave_to_it(
    database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(database_url, **HOOKS, background_jobs=False)
    env = {
        **os.environ,
        "MONGODB_URL": database_url,
        "MONGODB_DB": settings.mongodb_db,
        "JWT_SECRET": settings.jwt_secret,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "DATA_DIR": str(settings.data_dir),
    }
    async with running_app(settings) as app, http_client(app) as client:
        admin = await _admin(app, client)
        await register(client, admin, receiver.url, events=["document.created"])
        await declare(client, admin)
        container: Container = app.state.container
        # Written before any worker (any pump) ever ran on this database: the API
        # process marked where a pump must start when it started.
        made = await client.post("/v1/collections/orders/documents", json={}, headers=admin.headers)
        stats = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
        assert stats["change_pump"] == {"state": "never_ran", "leader": None, "lease_until": None}
        worker = subprocess.Popen([sys.executable, "-m", "app.worker"], env=env)  # noqa: ASYNC220
        try:
            [got] = await receiver.wait_for(1)
            assert not container.pump.leading and container.deliveries.attempts == 0
            assert got.json["type"] == "document.created"
            assert got.json["data"]["id"] == made.json()["id"]
            # The admin sees that a process records changes: the worker, not this one.
            stats = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
            assert stats["change_pump"]["state"] == "running"
            assert stats["change_pump"]["leader"].split(":")[1] == str(worker.pid)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.wait, 30) == 0  # a clean stop


async def test_a_held_webhook_probes_with_one_message_at_a_time(container: Container) -> None:
    """When a hold ends, every held message is due at once: the one process that held
    it sends one of them (the probe), and others' messages still get the free slots."""
    repository = container.webhooks.repository
    held, other = ObjectId(), ObjectId()
    now = utc_now() + timedelta(hours=1)  # due then: the app's own worker leaves them be
    messages = [
        {"webhook": hook, "event": f"{hook}-{n}", "type": "document.created", "body": b"{}"}
        for hook in (held, other)
        for n in range(4)
    ]
    await repository.enqueue(messages, now=now)
    claimed = await repository.claim_many(
        "w", now=now, lease=timedelta(seconds=60), limit=8, share=2, cap=6, single={held}
    )
    assert claimed is not None
    taken = [c.webhook for c in claimed]
    assert taken.count(held) == 1 and taken.count(other) == 4
    # While the probe is out, no second one.
    again = await repository.claim_many(
        "w", now=now, lease=timedelta(seconds=60), limit=8, busy={held: 1}, single={held}
    )
    assert again is None


async def two_webhooks(container: Container) -> list[dict[str, Any]]:
    made = []
    for name in ("held", "other"):
        hook = WebhookIn(url=f"https://{name}.example.com/in", events=["document.created"])
        made.append((await container.webhooks.create(hook))[0])
    return made


async def held_until_now(container: Container) -> tuple[list[dict[str, Any]], datetime]:
    """Two webhooks with four messages each; the first was held (by another process) until
    the returned moment, an hour ahead (the app's own worker leaves them be), when its
    messages are due again."""
    hooks = await two_webhooks(container)
    now = utc_now() + timedelta(hours=1)
    earlier = now - timedelta(minutes=1)
    messages = [
        {
            "webhook": hook["_id"],
            "event": f"{hook['_id']}-{n}",
            "type": "document.created",
            "body": b"{}",
        }
        for hook in hooks
        for n in range(4)
    ]
    repository = container.webhooks.repository
    await repository.enqueue(messages, now=earlier)
    assert await repository.hold(hooks[0]["_id"], url=hooks[0]["url"], until=now, now=earlier) == 4
    return hooks, now


async def test_a_hold_taken_by_another_process_probes_with_one_message_here_too(
    container: Container,
) -> None:
    """The hold is in the database (`held_until`, until the endpoint answers): a process
    that did not take it sends one of the held messages when the hold ends, not all."""
    repository = container.webhooks.repository
    hooks, now = await held_until_now(container)
    held, other = hooks[0]["_id"], hooks[1]["_id"]
    claimed = await repository.claim_many(
        "w", now=now, lease=timedelta(seconds=60), limit=8, share=2, cap=6
    )
    assert claimed is not None
    taken = [c.webhook for c in claimed]
    assert taken.count(held) == 1 and taken.count(other) == 4
    assert all(c.hook is not None and c.hook["_id"] == c.webhook for c in claimed)


async def test_one_probe_goes_across_processes_until_its_sender_ends_it(
    container: Container,
) -> None:
    """When a hold ends, every process sees the held messages due: only one sends a
    probe (the others would each spend a send slot on an endpoint that does not answer).
    Its sender ends it when the send is over, whatever came of it; another process's new
    hold does not (two would be out)."""
    repository = container.webhooks.repository
    hooks, now = await held_until_now(container)
    held = hooks[0]["_id"]
    lease = timedelta(minutes=5)
    first = await repository.claim_many("w1", now=now, lease=lease, limit=8, share=2, cap=6)
    assert first is not None
    [probe] = [c for c in first if c.webhook == held]
    # Another process, nothing in flight there: no second probe, and no other message due.
    assert await repository.claim_many("w2", now=now, lease=lease, limit=8) is None
    # A third process's sends time out meanwhile: it holds the webhook for a minute. When
    # that hold ends, the first probe is still out: none goes.
    later = now + timedelta(minutes=1)
    assert await repository.hold(held, url=hooks[0]["url"], until=later, now=now) == 3
    assert await repository.claim_many("w2", now=later, lease=lease, limit=8) is None
    # The first probe's send is over (it timed out too): the next goes, from any process.
    await repository.end_probe(probe)
    second = await repository.claim_many("w2", now=later, lease=lease, limit=8)
    assert second is not None and [c.webhook for c in second] == [held]
    assert await repository.claim_many("w1", now=later, lease=lease, limit=8) is None
    # Answered: the hold is lifted and the rest go at once, from any process.
    await repository.release(held, now=later)
    rest = await repository.claim_many("w1", now=later, lease=lease, limit=8)
    assert rest is not None and [c.webhook for c in rest] == [held, held]


async def test_a_probe_that_ends_without_an_answer_lets_the_next_go(
    container: Container,
) -> None:
    """A held webhook disabled meanwhile: its probe fails at once (as a refused connection
    would), and the next held message goes at the next claim, not a lease later."""
    repository = container.webhooks.repository
    hooks, now = await held_until_now(container)
    held = hooks[0]["_id"]
    await repository.update(held, {"enabled": False})
    lease = timedelta(minutes=5)
    for _ in range(2):
        probe = await repository.claim_many("w", now=now, lease=lease, limit=8, share=2, cap=6)
        assert probe is not None
        [claimed] = [c for c in probe if c.webhook == held]
        await container.deliveries.deliver(claimed, claimed.hook)
        failed = await repository.delivery(held, claimed.id)
        assert failed is not None and failed["status"] == "failed"


async def test_a_probe_taken_while_its_message_went_elsewhere_does_not_linger(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Races inside one claim, injected where they happen: the held webhook is held again
    right after this claim took its probe (its message is no longer due), so the probe is
    given back; a probe another process took first makes the claim look again at once
    ([]), not sleep until the next poll (None)."""
    repository = container.webhooks.repository
    hooks, now = await held_until_now(container)
    held, url = hooks[0]["_id"], hooks[0]["url"]
    lease, later = timedelta(minutes=5), now + timedelta(minutes=1)
    take = repository._take_probe

    async def then_held_again(hook: ObjectId, token: str, **when: datetime) -> bool:
        taken = await take(hook, token, **when)
        assert await repository.hold(hook, url=url, until=later, now=now) == 4
        return taken

    monkeypatch.setattr(repository, "_take_probe", then_held_again)
    first = await repository.claim_many("w1", now=now, lease=lease, limit=8, share=2, cap=6)
    assert first is not None and held not in [c.webhook for c in first]
    monkeypatch.undo()

    async def taken_first_elsewhere(hook: ObjectId, token: str, **when: datetime) -> bool:
        # (Free when the new hold ends only if the first claim gave its probe back.)
        assert await take(hook, "another process's claim", **when)
        return await take(hook, token, **when)

    monkeypatch.setattr(repository, "_take_probe", taken_first_elsewhere)
    # When the new hold ends, its probe is free: this claim would take it but for the
    # other process (only the held webhook's messages are due now).
    assert await repository.claim_many("w2", now=later, lease=lease, limit=8) == []


async def test_probes_out_elsewhere_do_not_hide_other_webhooks_due_messages(
    container: Container,
) -> None:
    """Two held webhooks' backlogs, their probes out in other processes, come first in
    the queue: a third process still finds the message of a webhook that answers."""
    repository = container.webhooks.repository
    hooks, now = await held_until_now(container)  # the first held, four messages each
    earlier = now - timedelta(minutes=1)
    assert await repository.hold(hooks[1]["_id"], url=hooks[1]["url"], until=now, now=earlier)
    lease = timedelta(minutes=5)
    for process, hook in (("a", hooks[0]), ("b", hooks[1])):
        probe = await repository.claim_many(process, now=now, lease=lease, limit=1)
        assert probe is not None and [c.webhook for c in probe] == [hook["_id"]]
    third = (await two_webhooks(container))[1]
    message = {"webhook": third["_id"], "event": "e", "type": "document.created", "body": b"{}"}
    await repository.enqueue([message], now=now)
    claimed = await repository.claim_many("c", now=now, lease=lease, limit=1)
    assert claimed is not None and [c.webhook for c in claimed] == [third["_id"]]


async def test_a_probe_out_here_leaves_the_held_backlog_behind_the_others(
    container: Container,
) -> None:
    """While this process's probe to a held webhook is out, that webhook's backlog (the
    oldest messages) does not fill the candidates of a claim: the others' go out."""
    repository = container.webhooks.repository
    hooks = await two_webhooks(container)
    held, other = hooks[0]["_id"], hooks[1]["_id"]
    now = utc_now() + timedelta(hours=1)  # due then: the app's own worker leaves them be
    earlier = now - timedelta(minutes=1)
    backlog = [
        {"webhook": held, "event": f"held-{n}", "type": "document.created", "body": b"{}"}
        for n in range(10)
    ]
    await repository.enqueue(backlog, now=earlier)
    assert await repository.hold(held, url=hooks[0]["url"], until=now, now=earlier) == 10
    newer = {"webhook": other, "event": "other", "type": "document.created", "body": b"{}"}
    await repository.enqueue([newer], now=now)
    # Two slots, eight candidates looked at: all of them the held webhook's.
    claimed = await repository.claim_many(
        "w", now=now, lease=timedelta(seconds=60), limit=2, busy={held: 1}, share=2, cap=6
    )
    assert claimed is not None and [c.webhook for c in claimed] == [other]

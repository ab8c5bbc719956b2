"""The admin routes the console is built on: metrics at a glance, the mail outbox, another
account's sessions and keys, and a schema's dry run over the stored documents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from app.clock import utc_now
from app.container import Container
from app.observability.stats import quantile
from tests.support.accounts import PASSWORD, Account, MakeAccount, sign_in
from tests.support.problems import assert_problem

# -- metrics at a glance -----------------------------------------------------------------


async def test_stats_count_the_requests_and_errors_since_the_last_look(
    client: httpx.AsyncClient, admin: Account
) -> None:
    before = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
    for _ in range(3):
        assert (await client.get("/v1/no-such-route")).status_code == 404
    after = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
    assert after["client_errors"] - before["client_errors"] == 3
    assert after["requests"] - before["requests"] == 4  # and the first look itself
    assert after["latency_p50_ms"] is not None
    assert after["latency_p50_ms"] <= after["latency_p95_ms"] <= after["latency_p99_ms"]
    counts = [r["requests"] for r in after["busiest"]]
    assert counts and counts == sorted(counts, reverse=True)


async def test_stats_say_whether_changes_are_recorded_and_what_webhooks_wait(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    """An admin sees at a glance that webhooks and history are being recorded (or that
    no process has for a while) and what the webhook queue holds."""
    pump = container.pump
    await pump.settled()  # this process leads
    stats = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
    assert stats["change_pump"]["state"] == "running"
    assert stats["change_pump"]["leader"] == pump.owner
    assert stats["webhooks"] == {"pending": 0, "failed": 0, "held_webhooks": 0}

    hooks = container.webhooks.repository
    now = utc_now()
    hook = ObjectId()
    await hooks.insert({"_id": hook, "url": "https://hooks.example/in", "enabled": False})
    later = now + timedelta(hours=1)
    assert await hooks.hold(hook, url="https://hooks.example/in", until=later, now=now) == 0
    messages = [
        {"webhook": hook, "event": f"e{i}", "type": "document.created", "body": b"{}"}
        for i in range(3)
    ]
    assert await hooks.enqueue([{**m, "due_at": later} for m in messages], now=now) == 3
    await hooks.deliveries.update_one({"event": "e0"}, {"$set": {"status": "failed"}})
    stats = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
    assert stats["webhooks"] == {"pending": 2, "failed": 1, "held_webhooks": 1}

    # The leader stops and no process takes over (none runs background jobs any more).
    await pump.stop()
    try:
        await pump.state.update_one(
            {"_id": "pump"}, {"$set": {"lease_until": now - timedelta(minutes=1)}}
        )
        stats = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
        assert stats["change_pump"]["state"] == "stopped"
        assert stats["change_pump"]["leader"] == pump.owner
    finally:
        pump.start()


def test_latency_percentiles_are_read_from_the_histogram_buckets() -> None:
    inf = float("inf")
    # 10 requests under 10 ms, 10 more between 10 and 20 ms, none slower.
    buckets = [(0.01, 10.0), (0.02, 20.0), (inf, 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.75, buckets) == pytest.approx(0.015)
    assert quantile(0.5, [(0.01, 0.0), (inf, 0.0)]) is None
    # Slower than the last finite bound: that bound is all the histogram knows.
    assert quantile(0.99, [(0.01, 1.0), (inf, 5.0)]) == pytest.approx(0.01)


# -- the mail outbox ---------------------------------------------------------------------


async def add_mail(container: Container, status: str, **extra: Any) -> str:
    now = utc_now()
    raw = {
        "kind": "password_reset",
        "to": "ada@example.com",
        "params": {"link": "https://app.example/reset?token=secret-token"},
        "status": status,
        "attempts": 12 if status == "failed" else 1,
        "created_at": now,
        "due_at": now,
        "lease_until": now,
        **extra,
    }
    if status in ("sent", "dropped"):
        raw["sent_at"] = now
    inserted = await container.lifecycle.outbox.collection.insert_one(raw)
    return str(inserted.inserted_id)


async def test_mail_lists_newest_first_by_status_without_the_links(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    await container.lifecycle.outbox.collection.delete_many({})
    sent = await add_mail(container, "sent")
    failed = [await add_mail(container, "failed", last_error="550 no such mailbox") for _ in "ab"]
    answer = await client.get("/v1/admin/mail?status=failed&limit=1", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert [m["id"] for m in page["items"]] == [failed[1]]
    assert page["items"][0]["last_error"] == "550 no such mailbox"
    assert "secret-token" not in answer.text and "params" not in page["items"][0]
    rest = await client.get(
        f"/v1/admin/mail?status=failed&cursor={page['next_cursor']}", headers=admin.headers
    )
    assert [m["id"] for m in rest.json()["items"]] == [failed[0]]
    assert rest.json()["next_cursor"] is None
    everything = (await client.get("/v1/admin/mail", headers=admin.headers)).json()
    assert [m["id"] for m in everything["items"]] == [failed[1], failed[0], sent]
    stats = (await client.get("/v1/admin/stats", headers=admin.headers)).json()
    assert stats["mail"]["failed"] == 2 and stats["mail"]["sent"] == 1


async def test_a_failed_message_is_queued_again_once(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    failed = await add_mail(container, "failed")
    answer = await client.post(f"/v1/admin/mail/{failed}/retry", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["attempts"] == 0 and answer.json()["status"] == "pending"
    stored = await container.lifecycle.outbox.collection.find_one({"_id": ObjectId(failed)})
    assert stored is not None and stored["params"]["link"].endswith("secret-token")
    again = await client.post(f"/v1/admin/mail/{failed}/retry", headers=admin.headers)
    assert_problem(again, 409, "mail_not_retryable")


@pytest.mark.parametrize("status", ["sent", "dropped"])
async def test_a_sent_or_dropped_message_cannot_be_sent_again(
    status: str, client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    done = await add_mail(container, status)
    answer = await client.post(f"/v1/admin/mail/{done}/retry", headers=admin.headers)
    assert_problem(answer, 409, "mail_not_retryable")
    stored = await container.lifecycle.outbox.collection.find_one({"_id": ObjectId(done)})
    assert stored is not None and stored["status"] == status


@pytest.mark.parametrize("message_id", ["6b15fe6baa5f58ed0ff4d499", "not-an-id"])
async def test_retrying_an_unknown_message_is_404(
    message_id: str, client: httpx.AsyncClient, admin: Account
) -> None:
    answer = await client.post(f"/v1/admin/mail/{message_id}/retry", headers=admin.headers)
    assert_problem(answer, 404, "mail_not_found")


@pytest.mark.parametrize("query", ["cursor=forged", "status=lost", "limit=0", "limit=101"])
async def test_bad_mail_list_queries_are_refused(
    query: str, client: httpx.AsyncClient, admin: Account
) -> None:
    answer = await client.get(f"/v1/admin/mail?{query}", headers=admin.headers)
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


# -- another account's sessions and API keys ----------------------------------------------


async def test_an_admin_sees_and_ends_another_accounts_sessions(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    phone = await sign_in(client, user.email)
    listed = await client.get(f"/v1/users/{user.id}/sessions", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    ids = [s["id"] for s in listed.json()["items"]]
    assert len(ids) == 2 and not any(s["current"] for s in listed.json()["items"])
    mine = await client.get("/v1/users/me/sessions", headers=phone.headers)
    phone_session = next(s["id"] for s in mine.json()["items"] if s["current"])

    ended = await client.delete(
        f"/v1/users/{user.id}/sessions/{phone_session}", headers=admin.headers
    )
    assert ended.status_code == 204
    assert (await client.get("/v1/users/me", headers=phone.headers)).status_code == 401
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200
    gone = await client.delete(
        f"/v1/users/{user.id}/sessions/{phone_session}", headers=admin.headers
    )
    assert_problem(gone, 404, "session_not_found")

    everywhere = await client.post(f"/v1/users/{user.id}/logout-all", headers=admin.headers)
    assert everywhere.status_code == 204
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 401
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401
    assert (await client.get("/v1/users/me", headers=admin.headers)).status_code == 200


async def test_an_admin_sees_and_revokes_another_accounts_api_keys(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    made = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "nightly import", "current_password": PASSWORD},
        headers=user.headers,
    )
    key = made.json()
    listed = await client.get(f"/v1/users/{user.id}/api-keys", headers=admin.headers)
    assert [k["name"] for k in listed.json()["items"]] == ["nightly import"]
    assert key["key"] not in listed.text
    revoked = await client.delete(
        f"/v1/users/{user.id}/api-keys/{key['id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    by_key = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/v1/users/me", headers=by_key)).status_code == 401
    again = await client.delete(f"/v1/users/{user.id}/api-keys/{key['id']}", headers=admin.headers)
    assert_problem(again, 404, "api_key_not_found")


async def test_another_accounts_key_is_not_revoked_through_the_wrong_account(
    client: httpx.AsyncClient, admin: Account, user: Account, make_account: MakeAccount
) -> None:
    other = await make_account()
    made = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "k", "current_password": PASSWORD},
        headers=user.headers,
    )
    wrong = await client.delete(
        f"/v1/users/{other.id}/api-keys/{made.json()['id']}", headers=admin.headers
    )
    assert_problem(wrong, 404, "api_key_not_found")
    by_key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await client.get("/v1/users/me", headers=by_key)).status_code == 200


@pytest.mark.parametrize("tail", ["sessions", "api-keys"])
async def test_the_sessions_and_keys_of_an_unknown_account_are_404(
    tail: str, client: httpx.AsyncClient, admin: Account
) -> None:
    answer = await client.get(f"/v1/users/{ObjectId()}/{tail}", headers=admin.headers)
    assert_problem(answer, 404, "user_not_found")


# -- a schema's dry run -------------------------------------------------------------------


async def make_notes(client: httpx.AsyncClient, admin: Account, titles: list[Any]) -> list[str]:
    made = await client.post("/v1/collections", json={"name": "notes"}, headers=admin.headers)
    assert made.status_code == 201, made.text
    ids = []
    for title in titles:
        data = {} if title is None else {"title": title}
        doc = await client.post("/v1/collections/notes/documents", json=data, headers=admin.headers)
        ids.append(doc.json()["id"])
    return ids


STRICT = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}


async def test_a_schema_check_reports_the_documents_it_would_reject_and_changes_nothing(
    client: httpx.AsyncClient, admin: Account
) -> None:
    ids = await make_notes(client, admin, ["ok", 7, None, "fine"])
    answer = await client.post(
        "/v1/collections/notes/schema-check", json={"schema": STRICT}, headers=admin.headers
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["scanned"], report["rejected"], report["complete"]) == (4, 2, True)
    assert sorted(e["id"] for e in report["examples"]) == sorted([ids[1], ids[2]])
    where = {e["id"]: [err["loc"] for err in e["errors"]] for e in report["examples"]}
    assert where == {ids[1]: [["data", "title"]], ids[2]: [["data"]]}
    declared = await client.get("/v1/collections/notes", headers=admin.headers)
    assert declared.json()["schema"] is None
    loose = await client.post(
        "/v1/collections/notes/documents", json={"title": 1}, headers=admin.headers
    )
    assert loose.status_code == 201


async def test_a_schema_check_stops_at_its_document_limit_and_says_so(
    client: httpx.AsyncClient, admin: Account, container: Container
) -> None:
    await make_notes(client, admin, [1, 2, 3])
    container.settings.schema_check_max_documents = 2
    try:
        answer = await client.post(
            "/v1/collections/notes/schema-check", json={"schema": STRICT}, headers=admin.headers
        )
    finally:
        container.settings.schema_check_max_documents = 10_000
    report = answer.json()
    assert (report["scanned"], report["rejected"], report["complete"]) == (2, 2, False)


@pytest.mark.parametrize(
    "body",
    [
        {"schema": {"type": "no-such-type"}},
        {"schema": {"$ref": "https://example.com/remote.json"}},
        {"schema": STRICT, "force": True},
        {},
    ],
)
async def test_a_bad_schema_check_is_422(
    body: dict[str, Any], client: httpx.AsyncClient, admin: Account
) -> None:
    await make_notes(client, admin, [])
    answer = await client.post(
        "/v1/collections/notes/schema-check", json=body, headers=admin.headers
    )
    assert_problem(answer, 422, "validation_failed")


async def test_a_schema_check_of_an_unknown_collection_is_404(
    client: httpx.AsyncClient, admin: Account
) -> None:
    answer = await client.post(
        "/v1/collections/nothing/schema-check", json={"schema": {}}, headers=admin.headers
    )
    assert_problem(answer, 404, "collection_not_found")


async def test_an_admins_api_key_cannot_manage_another_accounts_credentials(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    made = await client.post(
        "/v1/users/me/api-keys",
        json={"name": "ops script", "current_password": PASSWORD},
        headers=admin.headers,
    )
    by_key = {"Authorization": f"Bearer {made.json()['key']}"}
    for method, path in [
        ("GET", f"/v1/users/{user.id}/sessions"),
        ("POST", f"/v1/users/{user.id}/logout-all"),
        ("GET", f"/v1/users/{admin.id}/api-keys"),
        ("DELETE", f"/v1/users/{admin.id}/api-keys/{made.json()['id']}"),
    ]:
        answer = await client.request(method, path, headers=by_key)
        assert_problem(answer, 403, "api_key_not_allowed")
    assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200
    assert (await client.get("/v1/users/me", headers=by_key)).status_code == 200


async def test_a_schema_change_that_stored_documents_break_is_refused_unless_forced(
    client: httpx.AsyncClient, admin: Account
) -> None:
    ids = await make_notes(client, admin, ["ok", 7])
    refused = await client.patch(
        "/v1/collections/notes", json={"schema": STRICT}, headers=admin.headers
    )
    body = assert_problem(refused, 409, "schema_rejects_documents")
    assert body["errors"] == [
        {"loc": ["documents", ids[1], "title"], "msg": "7 is not of type 'string'", "type": "type"}
    ]
    declared = await client.get("/v1/collections/notes", headers=admin.headers)
    assert declared.json()["schema"] is None
    forced = await client.patch(
        "/v1/collections/notes", json={"schema": STRICT, "force": True}, headers=admin.headers
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["schema"] == STRICT
    # The stored document stays as it was, and must be fixed to be saved again.
    kept = await client.get(f"/v1/collections/notes/documents/{ids[1]}", headers=admin.headers)
    assert kept.json()["data"] == {"title": 7}


async def test_a_schema_change_every_stored_document_passes_needs_no_force(
    client: httpx.AsyncClient, admin: Account
) -> None:
    await make_notes(client, admin, ["ok", "fine"])
    changed = await client.patch(
        "/v1/collections/notes", json={"schema": STRICT}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    # Other changes never run the check (nor does repeating the schema).
    again = await client.patch(
        "/v1/collections/notes",
        json={"schema": STRICT, "description": "d"},
        headers=admin.headers,
    )
    assert again.status_code == 200, again.text

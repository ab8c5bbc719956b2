"""Files attached to documents (product §11), on the real database."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import Binary, ObjectId
from fastapi import FastAPI

from app.clock import utc_now
from app.config import Settings
from app.files.names import RangeNotSatisfiable, byte_range, check_filename, content_disposition
from app.files.store import CHUNK_BYTES, CHUNKS_PER_WRITE, Abandoned, FileStore, StoredFile
from app.observability.metrics import REGISTRY
from tests.support.accounts import Account, MakeAccount
from tests.support.apps import shared_settings
from tests.support.problems import assert_problem

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def settings(database_url: str) -> Settings:
    return shared_settings(database_url, file_max_bytes=6 * 1024 * 1024, file_max_per_document=3)


async def declare(client: httpx.AsyncClient, admin: Account, name: str, read: str) -> None:
    body = {"name": name, "access": {"read": read, "write": "owner"}}
    assert (await client.post("/v1/collections", json=body, headers=admin.headers)).is_success


async def new_doc(client: httpx.AsyncClient, who: Account, name: str) -> str:
    response = await client.post(f"/v1/collections/{name}/documents", json={}, headers=who.headers)
    assert response.status_code == 201, response.text
    doc_id: str = response.json()["id"]
    return doc_id


def files_url(name: str, doc_id: str, filename: str = "") -> str:
    base = f"/v1/collections/{name}/documents/{doc_id}/files"
    return f"{base}/{filename}" if filename else base


async def chunks_of(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def stored_chunks(app: FastAPI) -> int:
    count: int = await app.state.container.db["files.chunks"].count_documents({})
    return count


async def test_a_5_mb_upload_streams_in_and_reads_back_identical(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "receipts", "owner")
    doc_id = await new_doc(client, user, "receipts")
    body = os.urandom(5 * 1024 * 1024)
    url = files_url("receipts", doc_id, "scan 1.bin")
    put = await client.put(
        url,
        content=chunks_of(body),  # chunked: no Content-Length, streamed
        headers={**user.headers, "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 201, put.text
    digest = hashlib.sha256(body).hexdigest()
    assert put.json()["sha256"] == digest and put.json()["size"] == len(body)
    assert put.headers["etag"] == f'"{digest}"'
    # Times as documents give them: UTC, milliseconds, Z.
    created = put.json()["created_at"]
    assert created.endswith("Z") and len(created) == 24, created
    got = await client.get(url, headers=user.headers)
    assert got.status_code == 200 and got.content == body
    assert got.headers["etag"] == f'"{digest}"'
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    listed = (await client.get(files_url("receipts", doc_id), headers=user.headers)).json()
    assert [(f["name"], f["size"]) for f in listed["items"]] == [("scan 1.bin", len(body))]
    same = await client.get(url, headers={**user.headers, "If-None-Match": f'"{digest}"'})
    assert same.status_code == 304 and not same.content
    weak = await client.get(url, headers={**user.headers, "If-None-Match": f'W/"{digest}"'})
    assert weak.status_code == 304  # If-None-Match compares weakly


async def test_an_upload_over_the_cap_is_413_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "big", "owner")
    doc_id = await new_doc(client, user, "big")
    body = b"x" * (6 * 1024 * 1024 + 1)
    url = files_url("big", doc_id, "too-big")
    streamed = await client.put(url, content=chunks_of(body), headers=user.headers)
    assert_problem(streamed, 413, "payload_too_large")
    declared = await client.put(url, content=body, headers=user.headers)  # Content-Length
    assert_problem(declared, 413, "payload_too_large")
    assert await stored_chunks(app) == 0
    assert (await client.get(files_url("big", doc_id), headers=user.headers)).json() == {
        "items": []
    }


async def test_range_requests(client: httpx.AsyncClient, admin: Account, user: Account) -> None:
    await declare(client, admin, "ranges", "owner")
    doc_id = await new_doc(client, user, "ranges")
    body = bytes(range(256)) * 4
    url = files_url("ranges", doc_id, "data")
    assert (await client.put(url, content=body, headers=user.headers)).status_code == 201
    first = await client.get(url, headers={**user.headers, "Range": "bytes=0-9"})
    assert first.status_code == 206 and first.content == body[:10]
    assert first.headers["content-range"] == f"bytes 0-9/{len(body)}"
    suffix = await client.get(url, headers={**user.headers, "Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.content == body[-5:]
    middle = await client.get(url, headers={**user.headers, "Range": "bytes=300-"})
    assert middle.content == body[300:]
    for bad in ("bytes=5000-", "bytes=9-3", "bytes=x-y", "bytes=0-x", "bytes=x-5", "bytes=-"):
        response = await client.get(url, headers={**user.headers, "Range": bad})
        assert_problem(response, 416, "range_not_satisfiable")
        assert response.headers["content-range"] == f"bytes */{len(body)}"


async def test_files_follow_the_documents_read_rule(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, "mine", "owner")
    await declare(client, admin, "open", "public")
    private = await new_doc(client, user, "mine")
    public = await new_doc(client, user, "open")
    for name, doc_id in (("mine", private), ("open", public)):
        put = await client.put(
            files_url(name, doc_id, "a.txt"),
            content=b"hello",
            headers={**user.headers, "Content-Type": "text/plain"},
        )
        assert put.status_code == 201, put.text
    for url in (files_url("mine", private, "a.txt"), files_url("mine", private)):
        assert_problem(await client.get(url, headers=other_user.headers), 404, "document_not_found")
    # Readable but not theirs to change (write rule: owner).
    assert_problem(
        await client.put(files_url("open", public, "b"), content=b"x", headers=other_user.headers),
        403,
        "forbidden",
    )
    anonymous = await client.get(files_url("open", public, "a.txt"))
    assert anonymous.status_code == 200 and anonymous.content == b"hello"
    assert anonymous.headers["content-type"].startswith("text/plain")
    assert anonymous.headers["content-disposition"].startswith("inline;")


async def test_signed_links_expire_and_die_with_a_replacement(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "photos", "owner")
    doc_id = await new_doc(client, user, "photos")
    url = files_url("photos", doc_id, "me.png")
    headers = {**user.headers, "Content-Type": "image/png"}
    assert (await client.put(url, content=PNG, headers=headers)).status_code == 201
    made = await client.post(f"{url}/link", json={"expires_in": 60}, headers=user.headers)
    assert made.status_code == 200, made.text
    link = made.json()["url"]
    served = await client.get(link)  # no token
    assert served.status_code == 200 and served.content == PNG
    # Tampered with, then after expiry (the service's clock a minute on): refused.
    assert_problem(await client.get(link.replace("expires=", "expires=1")), 403, "invalid_link")
    forged = link.split("sig=")[0] + "sig=%C3%A9t%C3%A9"  # not even ASCII
    assert_problem(await client.get(forged), 403, "invalid_link")
    service = app.state.container.files
    clock = service.clock
    service.clock = lambda: clock() + timedelta(seconds=61)
    try:
        assert_problem(await client.get(link), 403, "invalid_link")
    finally:
        service.clock = clock
    assert (await client.get(link)).status_code == 200
    # After a replacement the old link is dead (a new one works).
    assert (await client.put(url, content=PNG + b"2", headers=headers)).status_code == 200
    assert_problem(await client.get(link), 403, "invalid_link")
    fresh = await client.post(f"{url}/link", json={"expires_in": 60}, headers=user.headers)
    assert (await client.get(fresh.json()["url"])).content == PNG + b"2"
    # And after the file is deleted.
    assert (await client.delete(url, headers=user.headers)).status_code == 204
    assert_problem(await client.get(fresh.json()["url"]), 403, "invalid_link")


async def test_a_signed_link_needs_write_access_and_dies_with_its_creators_access(
    client: httpx.AsyncClient, admin: Account, user: Account, make_account: MakeAccount
) -> None:
    reader, leaver = await make_account(), await make_account()

    async def rules(read: str, write: str) -> None:
        body = {"access": {"read": read, "write": write}}
        changed = await client.patch("/v1/collections/shared", json=body, headers=admin.headers)
        assert changed.status_code == 200, changed.text

    async def link_by(who: Account) -> httpx.Response:
        return await client.post(f"{url}/link", json={"expires_in": 60}, headers=who.headers)

    await declare(client, admin, "shared", "authenticated")
    doc_id = await new_doc(client, user, "shared")
    url = files_url("shared", doc_id, "plan.txt")
    assert (await client.put(url, content=b"plan", headers=user.headers)).status_code == 201
    # Reading the document is not enough to hand the file to people without a token.
    assert (await client.get(url, headers=reader.headers)).status_code == 200
    assert_problem(await link_by(reader), 403, "forbidden")
    await rules("authenticated", "authenticated")
    made = await link_by(reader)
    assert made.status_code == 200, made.text
    link = made.json()["url"]
    assert (await client.get(link)).content == b"plan"
    # Reads become owner-only: the reader could not fetch it any more, nor can the link.
    await rules("owner", "authenticated")
    assert_problem(await client.get(link), 403, "invalid_link")
    await rules("authenticated", "authenticated")
    assert (await client.get(link)).content == b"plan"
    # The creator is disabled, or deletes the account: their links die with it.
    disabled = await client.patch(
        f"/v1/users/{reader.id}", json={"disabled": True}, headers=admin.headers
    )
    assert disabled.status_code == 200
    assert_problem(await client.get(link), 403, "invalid_link")
    leavers = (await link_by(leaver)).json()["url"]
    assert (await client.get(leavers)).status_code == 200
    gone = await client.delete(f"/v1/users/{leaver.id}", headers=admin.headers)
    assert gone.status_code == 204
    assert_problem(await client.get(leavers), 403, "invalid_link")
    # Signing out everywhere ends the owner's links too (they are a credential).
    owners = (await link_by(user)).json()["url"]
    assert (await client.get(owners)).status_code == 200
    assert (await client.post("/v1/auth/logout-all", headers=user.headers)).status_code == 204
    assert_problem(await client.get(owners), 403, "invalid_link")


async def test_a_client_that_leaves_mid_upload_is_a_disconnect_not_an_error(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: Account,
    user: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await declare(client, admin, "drafts", "owner")
    doc_id = await new_doc(client, user, "drafts")
    path = files_url("drafts", doc_id, "half.bin")
    route = "/v1/collections/{name}/documents/{doc_id:doc_id}/files/{filename}"
    before = REGISTRY.get_sample_value("docstore_client_disconnects_total", {"route": route})
    arriving = [{"type": "http.request", "body": b"x" * 300_000, "more_body": True}]

    async def receive() -> dict[str, Any]:
        # The first part of the body, then the client is gone (for good).
        return arriving.pop() if arriving else {"type": "http.disconnect"}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in user.headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"content-type", b"application/octet-stream"), (b"host", b"t")],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert sent[0]["status"] == 499  # for the log and metrics; nobody is there to read it
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("client disconnected" in r.getMessage() for r in caplog.records)
    after = REGISTRY.get_sample_value("docstore_client_disconnects_total", {"route": route})
    assert (after or 0) == (before or 0) + 1
    # Nothing of the half upload is left.
    listed = await client.get(files_url("drafts", doc_id), headers=user.headers)
    assert listed.json()["items"] == []
    assert await stored_chunks(app) == 0


async def test_deleting_documents_deletes_their_chunks(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "notes", "owner")
    one, two, three = [await new_doc(client, user, "notes") for _ in range(3)]
    for doc_id in (one, two, three):
        put = await client.put(
            files_url("notes", doc_id, "f"), content=b"abc", headers=user.headers
        )
        assert put.status_code == 201
    assert await stored_chunks(app) == 3
    deleted = await client.delete(f"/v1/collections/notes/documents/{one}", headers=user.headers)
    assert deleted.status_code == 204
    assert await stored_chunks(app) == 2
    bulk = await client.post(
        "/v1/collections/notes/documents/bulk-delete",
        json={"filter": {"id": two}},
        headers=user.headers,
    )
    assert bulk.status_code == 200, bulk.text
    assert await stored_chunks(app) == 1
    gone = await client.request(
        "DELETE", "/v1/users/me", json={"current_password": user.password}, headers=user.headers
    )
    assert gone.status_code == 204, gone.text
    assert await stored_chunks(app) == 0


async def test_replace_delete_preconditions_and_caps(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "docs", "owner")
    doc_id = await new_doc(client, user, "docs")
    url = files_url("docs", doc_id, "v")
    first = await client.put(url, content=b"1", headers={**user.headers, "If-None-Match": "*"})
    assert first.status_code == 201
    again = await client.put(url, content=b"2", headers={**user.headers, "If-None-Match": "*"})
    assert_problem(again, 412, "precondition_failed")
    stale = await client.put(url, content=b"2", headers={**user.headers, "If-Match": '"nope"'})
    assert_problem(stale, 412, "precondition_failed")
    ok = await client.put(
        url, content=b"2", headers={**user.headers, "If-Match": first.headers["etag"]}
    )
    assert ok.status_code == 200 and (await client.get(url, headers=user.headers)).content == b"2"
    for n in range(2):
        assert (
            await client.put(files_url("docs", doc_id, f"x{n}"), content=b"", headers=user.headers)
        ).is_success
    assert_problem(
        await client.put(
            files_url("docs", doc_id, "one-too-many"), content=b"", headers=user.headers
        ),
        409,
        "too_many_files",
    )
    assert (await client.delete(url, headers=user.headers)).status_code == 204
    assert_problem(await client.delete(url, headers=user.headers), 404, "file_not_found")
    assert_problem(await client.get(url, headers=user.headers), 404, "file_not_found")


async def test_a_lying_content_type_for_an_inline_type_is_refused(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "pics", "owner")
    doc_id = await new_doc(client, user, "pics")
    html = b"<html><script>alert(1)</script></html>"
    response = await client.put(
        files_url("pics", doc_id, "x.png"),
        content=html,
        headers={**user.headers, "Content-Type": "image/png"},
    )
    assert_problem(response, 415, "content_type_mismatch")
    assert await stored_chunks(app) == 0


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\\b", " x", "x\x00", "x\u202e", "é" * 200])
def test_bad_filenames_are_refused(bad: str) -> None:
    with pytest.raises(Exception) as caught:
        check_filename(bad)
    assert getattr(caught.value, "status", None) == 422


def test_filenames_are_nfc_and_dispositions_are_safe() -> None:
    assert check_filename("e\u0301t\u00e9.txt") == "\u00e9t\u00e9.txt"
    header = content_disposition('r\u00e9sum\u00e9 "final".pdf', inline=False)
    assert header == (
        'attachment; filename="r_sum_ _final_.pdf"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
    )


def test_byte_ranges() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=0-0", 10) == (0, 0)
    assert byte_range("bytes=-20", 10) == (0, 9)
    assert byte_range("bytes=0-1,3-4", 10) is None  # several: the whole file
    assert byte_range("items=0-1", 10) is None
    # Digits are ASCII digits: "²".isdigit() is true, but it is no number of bytes.
    for malformed in ("bytes=\u00b2-", "bytes=1-\u00b3", "bytes=1-2-3", "bytes=" + "9" * 5000):
        with pytest.raises(RangeNotSatisfiable):
            byte_range(malformed, 10)


async def upload_raw(
    app: FastAPI, document: str, body: AsyncIterator[bytes], clock: Callable[[], datetime]
) -> StoredFile:
    """The store's upload itself (no HTTP), of file "n" on document `document` of "c"."""
    store: FileStore = app.state.container.files.store
    return await store.upload(
        "c",
        document,
        "n",
        "application/octet-stream",
        body,
        max_bytes=10**9,
        first_bytes=lambda head: None,
        clock=clock,
    )


async def test_an_interrupted_upload_leaves_nothing_and_abandoned_ones_are_swept(
    app: FastAPI,
) -> None:
    store = app.state.container.files.store
    now = utc_now()

    async def client_goes_away() -> AsyncIterator[bytes]:
        yield os.urandom(2 * 1024 * 1024)  # some chunks are written
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        await upload_raw(app, "d", client_goes_away(), lambda: now)
    assert await stored_chunks(app) == 0
    # A process that died mid-upload: its marker and chunks stay, unlisted, until the
    # sweep finds the marker over an hour old.
    orphan = ObjectId()
    await store.uploads.insert_one({"_id": orphan, "active_at": now - timedelta(hours=2)})
    await store.chunks.insert_one({"files_id": orphan, "n": 0, "data": Binary(b"x")})
    recent = ObjectId()
    await store.uploads.insert_one({"_id": recent, "active_at": now})
    await store.chunks.insert_one({"files_id": recent, "n": 0, "data": Binary(b"y")})
    assert await store.list_current("c", "d") == []
    assert await store.sweep(now) == 1
    assert [c["files_id"] async for c in store.chunks.find()] == [recent]


async def test_a_slow_upload_survives_the_sweep_and_a_stalled_one_is_discarded(
    app: FastAPI,
) -> None:
    store = app.state.container.files.store
    moment = [utc_now()]
    write = os.urandom(CHUNK_BYTES * CHUNKS_PER_WRITE)  # one database write a piece

    async def slow_but_alive() -> AsyncIterator[bytes]:
        for _ in range(6):  # three hours in all, half an hour a piece
            yield write
            moment[0] += timedelta(minutes=30)
            assert await store.sweep(moment[0]) == 0  # another request's sweep

    stored = await upload_raw(app, "slow", slow_but_alive(), lambda: moment[0])
    assert stored.size == 6 * len(write)
    assert await stored_chunks(app) == 6 * CHUNKS_PER_WRITE

    async def stalls() -> AsyncIterator[bytes]:
        yield write
        moment[0] += timedelta(hours=2)  # nothing for two hours: the sweep takes it
        assert await store.sweep(moment[0]) == 1
        yield b"the rest, too late"

    with pytest.raises(Abandoned):
        await upload_raw(app, "stalled", stalls(), lambda: moment[0])
    assert await store.list_current("c", "stalled") == []
    assert await stored_chunks(app) == 6 * CHUNKS_PER_WRITE  # the slow one's only


async def test_a_stalled_upload_answers_408_and_one_outliving_its_document_404(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin, "drafts", "owner")
    service = app.state.container.files
    clock = service.clock
    doc_id = await new_doc(client, user, "drafts")
    url = files_url("drafts", doc_id, "voice.ogg")

    async def stalls() -> AsyncIterator[bytes]:
        yield os.urandom(CHUNK_BYTES * CHUNKS_PER_WRITE)
        later = clock() + timedelta(hours=2)
        service.clock = lambda: later
        assert await service.store.sweep(later) == 1
        yield b"late"

    try:
        assert_problem(
            await client.put(url, content=stalls(), headers=user.headers), 408, "upload_timed_out"
        )
    finally:
        service.clock = clock
    assert await stored_chunks(app) == 0

    async def document_deleted_meanwhile() -> AsyncIterator[bytes]:
        yield b"first half"
        # Another request (its own task, as a real one would be).
        gone = await asyncio.create_task(
            client.delete(f"/v1/collections/drafts/documents/{doc_id}", headers=user.headers)
        )
        assert gone.status_code == 204
        yield b"second half"

    response = await client.put(url, content=document_deleted_meanwhile(), headers=user.headers)
    assert_problem(response, 404, "document_not_found")
    # Nothing stays for a document created later under the same id to inherit.
    assert await stored_chunks(app) == 0
    assert await app.state.container.db["files.files"].count_documents({}) == 0

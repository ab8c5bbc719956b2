"""Document history (`history: true`): versions kept from every write, restoring one as a
new version, a trash of deleted documents restored with their files, purges, and access."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clock import utc_now
from app.config import Settings
from app.container import Container
from tests.support.accounts import Account, sign_in
from tests.support.apps import http_client, running_app
from tests.support.problems import assert_problem
from tests.support.scripts import script
from tests.support.waiting import until

NOTES = "/v1/collections/notes"


async def declare(client: httpx.AsyncClient, admin: Account, *, history: bool = True) -> None:
    body = {"name": "notes", "history": history, "access": {"read": "owner", "write": "owner"}}
    response = await client.post("/v1/collections", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    assert response.json()["history"] is history


async def versions(client: httpx.AsyncClient, who: Account, doc_id: str, **params: Any) -> Any:
    response = await client.get(
        f"{NOTES}/documents/{doc_id}/versions", params=params, headers=who.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def kept(client: httpx.AsyncClient, who: Account, doc_id: str, count: int) -> list[int]:
    """The versions listed, once `count` are (the pump records them just after each write)."""

    async def enough() -> bool:
        return len((await versions(client, who, doc_id))["items"]) >= count

    await until(enough)
    return [v["version"] for v in (await versions(client, who, doc_id))["items"]]


async def in_trash(client: httpx.AsyncClient, who: Account, doc_id: str) -> dict[str, Any]:
    async def there() -> bool:
        page = (await client.get(f"{NOTES}/trash", headers=who.headers)).json()
        return any(t["document"]["id"] == doc_id for t in page["items"])

    await until(there)
    page = (await client.get(f"{NOTES}/trash", headers=who.headers)).json()
    return next(t for t in page["items"] if t["document"]["id"] == doc_id)


async def test_every_write_keeps_a_version_and_an_old_one_comes_back_as_a_new_one(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    doc = (
        await client.post(f"{NOTES}/documents", json={"text": "one"}, headers=user.headers)
    ).json()
    path = f"{NOTES}/documents/{doc['id']}"
    await client.patch(path, json={"text": "two"}, headers=user.headers)
    await client.post(f"{path}/update", json={"set": {"text": "three"}}, headers=user.headers)
    assert await kept(client, user, doc["id"], 3) == [3, 2, 1]
    listed = await versions(client, user, doc["id"])
    assert listed["items"][0]["replaced_at"] is None  # the current one
    assert all(v["replaced_at"] for v in listed["items"][1:])
    first = await client.get(f"{path}/versions/1", headers=user.headers)
    assert first.status_code == 200 and first.json()["data"] == {"text": "one"}
    assert first.headers["etag"] == '"1"'
    # Restoring is a write: If-Match names the current version.
    stale = await client.post(
        f"{path}/versions/1/restore", headers={**user.headers, "If-Match": '"2"'}
    )
    assert_problem(stale, 412, "precondition_failed")
    restored = await client.post(
        f"{path}/versions/1/restore", headers={**user.headers, "If-Match": '"3"'}
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 4 and restored.json()["data"] == {"text": "one"}
    assert await kept(client, user, doc["id"], 4) == [4, 3, 2, 1]
    # Pages: newest first, a cursor for older ones.
    page = await versions(client, user, doc["id"], limit=2)
    assert [v["version"] for v in page["items"]] == [4, 3]
    rest = await versions(client, user, doc["id"], limit=2, cursor=page["next_cursor"])
    assert [v["version"] for v in rest["items"]] == [2, 1] and rest["next_cursor"] is None


async def test_versions_follow_the_documents_rules_and_need_history(
    client: httpx.AsyncClient, admin: Account, user: Account, other_user: Account
) -> None:
    await declare(client, admin, history=False)
    doc = (await client.post(f"{NOTES}/documents", json={}, headers=user.headers)).json()
    plain = await client.get(f"{NOTES}/documents/{doc['id']}/versions", headers=user.headers)
    assert_problem(plain, 404, "history_not_enabled")
    assert_problem(
        await client.get(f"{NOTES}/trash", headers=user.headers), 404, "history_not_enabled"
    )
    patched = await client.patch(
        "/v1/collections/notes", json={"history": True}, headers=admin.headers
    )
    assert patched.status_code == 200 and patched.json()["history"] is True
    await client.patch(f"{NOTES}/documents/{doc['id']}", json={"a": 1}, headers=user.headers)
    assert await kept(client, user, doc["id"], 2) == [2, 1]
    # Someone who may not read the document sees no versions of it, nor it in the trash.
    theirs = await client.get(f"{NOTES}/documents/{doc['id']}/versions", headers=other_user.headers)
    assert_problem(theirs, 404, "document_not_found")
    old = await client.get(f"{NOTES}/documents/{doc['id']}/versions/1", headers=other_user.headers)
    assert_problem(old, 404, "document_not_found")
    missing = await client.get(f"{NOTES}/documents/{doc['id']}/versions/9", headers=user.headers)
    assert_problem(missing, 404, "version_not_found")
    await client.delete(f"{NOTES}/documents/{doc['id']}", headers=user.headers)
    await in_trash(client, user, doc["id"])
    others = (await client.get(f"{NOTES}/trash", headers=other_user.headers)).json()
    assert others["items"] == []
    stolen = await client.post(f"{NOTES}/trash/{doc['id']}/restore", headers=other_user.headers)
    assert_problem(stolen, 404, "not_in_trash")
    purge = await client.delete(f"{NOTES}/trash/{doc['id']}", headers=user.headers)
    assert_problem(purge, 403, "forbidden")


async def test_a_deleted_document_comes_back_from_the_trash_with_its_files(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    doc = (
        await client.post(f"{NOTES}/documents", json={"text": "keep"}, headers=user.headers)
    ).json()
    path = f"{NOTES}/documents/{doc['id']}"
    put = await client.put(
        f"{path}/files/a.txt",
        content=b"hello",
        headers={**user.headers, "Content-Type": "text/plain"},
    )
    assert put.status_code == 201, put.text
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    trashed = await in_trash(client, user, doc["id"])
    assert trashed["document"]["data"] == {"text": "keep"}
    assert trashed["purge_at"] > trashed["deleted_at"]
    restored = await client.post(f"{NOTES}/trash/{doc['id']}/restore", headers=user.headers)
    assert restored.status_code == 201, restored.text
    assert restored.json()["version"] == 2 and restored.json()["data"] == {"text": "keep"}
    assert restored.headers["location"] == path
    file = await client.get(f"{path}/files/a.txt", headers=user.headers)
    assert file.status_code == 200 and file.content == b"hello"
    # Out of the trash now; its history goes on.
    assert (await client.get(f"{NOTES}/trash", headers=user.headers)).json()["items"] == []
    assert await kept(client, user, doc["id"], 2) == [2, 1]
    again = await client.post(f"{NOTES}/trash/{doc['id']}/restore", headers=user.headers)
    assert_problem(again, 404, "not_in_trash")


async def test_documents_deleted_together_come_back_each_with_its_own_files(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    text = {**user.headers, "Content-Type": "text/plain"}
    ids = []
    for n in range(3):
        made = await client.post(f"{NOTES}/documents", json={"n": n}, headers=user.headers)
        ids.append(made.json()["id"])
        for name in (f"own-{n}.txt", "shared-name.txt"):
            put = await client.put(
                f"{NOTES}/documents/{ids[-1]}/files/{name}", content=f"{n}".encode(), headers=text
            )
            assert put.status_code == 201, put.text
    gone = await client.post(
        f"{NOTES}/documents/bulk-delete", json={"filter": {}}, headers=user.headers
    )
    assert gone.json()["modified"] == 3
    for doc_id in ids:
        await in_trash(client, user, doc_id)
    # The middle one alone comes back: with its two files, the others' stay in the trash.
    back = await client.post(f"{NOTES}/trash/{ids[1]}/restore", headers=user.headers)
    assert back.status_code == 201, back.text
    files = (await client.get(f"{NOTES}/documents/{ids[1]}/files", headers=user.headers)).json()
    assert sorted(f["name"] for f in files["items"]) == ["own-1.txt", "shared-name.txt"]
    shared = await client.get(
        f"{NOTES}/documents/{ids[1]}/files/shared-name.txt", headers=user.headers
    )
    assert shared.content == b"1"
    later = await client.post(f"{NOTES}/trash/{ids[2]}/restore", headers=user.headers)
    assert later.status_code == 201, later.text
    files = (await client.get(f"{NOTES}/documents/{ids[2]}/files", headers=user.headers)).json()
    assert sorted(f["name"] for f in files["items"]) == ["own-2.txt", "shared-name.txt"]


async def test_a_trashed_document_whose_id_is_taken_again_is_not_restored_over_it(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    await declare(client, admin)
    path = f"{NOTES}/documents/mine"
    assert (await client.put(path, json={"v": 1}, headers=user.headers)).status_code == 201
    text = {**user.headers, "Content-Type": "text/plain"}
    assert (await client.put(f"{path}/files/a.txt", content=b"old", headers=text)).is_success
    await client.delete(path, headers=user.headers)
    # The new document under that id starts without the trashed one's files.
    assert (await client.put(path, json={"v": 2}, headers=user.headers)).status_code == 201
    assert (await client.get(f"{path}/files", headers=user.headers)).json()["items"] == []
    assert (await client.get(f"{path}/files/a.txt", headers=user.headers)).status_code == 404
    await in_trash(client, user, "mine")
    clash = await client.post(f"{NOTES}/trash/mine/restore", headers=user.headers)
    assert_problem(clash, 409, "duplicate_key")
    assert (await client.get(path, headers=user.headers)).json()["data"] == {"v": 2}
    # Deleted again: the trash holds this deletion, with this document's files only.
    assert (await client.put(f"{path}/files/b.txt", content=b"new", headers=text)).is_success
    await client.delete(path, headers=user.headers)

    async def second_in_trash() -> bool:
        trashed = await in_trash(client, user, "mine")
        return bool(trashed["document"]["data"] == {"v": 2})

    await until(second_in_trash)
    back = await client.post(f"{NOTES}/trash/mine/restore", headers=user.headers)
    assert back.status_code == 201, back.text
    listed = (await client.get(f"{path}/files", headers=user.headers)).json()["items"]
    assert [f["name"] for f in listed] == ["b.txt"]


@pytest.mark.parametrize("how", ["expired", "by_admin"])
async def test_a_purge_deletes_the_document_and_its_files_for_good(
    client: httpx.AsyncClient, container: Container, admin: Account, user: Account, how: str
) -> None:
    await declare(client, admin)
    doc = (await client.post(f"{NOTES}/documents", json={}, headers=user.headers)).json()
    path = f"{NOTES}/documents/{doc['id']}"
    await client.put(
        f"{path}/files/a.txt", content=b"x", headers={**user.headers, "Content-Type": "text/plain"}
    )
    await client.delete(path, headers=user.headers)
    await in_trash(client, user, doc["id"])
    files = container.db["files.files"]
    assert (
        await files.count_documents(
            {"$or": [{"metadata.document": doc["id"]}, {"metadata.trashed": doc["id"]}]}
        )
        == 1
    )
    if how == "expired":
        await container.history.trash.update_many(
            {}, {"$set": {"purge_at": utc_now() - timedelta(seconds=1)}}
        )
        assert await container.history.purge_expired() == 1
    else:
        response = await client.delete(f"{NOTES}/trash/{doc['id']}", headers=admin.headers)
        assert response.status_code == 204
    assert (
        await files.count_documents(
            {"$or": [{"metadata.document": doc["id"]}, {"metadata.trashed": doc["id"]}]}
        )
        == 0
    )
    assert (await client.get(f"{NOTES}/trash", headers=user.headers)).json()["items"] == []
    gone = await client.post(f"{NOTES}/trash/{doc['id']}/restore", headers=user.headers)
    assert_problem(gone, 404, "not_in_trash")


async def test_history_and_trash_survive_an_export_and_import(
    settings: Settings, client: httpx.AsyncClient, admin: Account, user: Account, tmp_path: Path
) -> None:
    await declare(client, admin)
    doc = (await client.post(f"{NOTES}/documents", json={"n": 1}, headers=user.headers)).json()
    await client.patch(f"{NOTES}/documents/{doc['id']}", json={"n": 2}, headers=user.headers)
    gone = (await client.post(f"{NOTES}/documents", json={"n": 9}, headers=user.headers)).json()
    gone_path = f"{NOTES}/documents/{gone['id']}"
    await client.put(
        f"{gone_path}/files/a.txt",
        content=b"kept",
        headers={**user.headers, "Content-Type": "text/plain"},
    )
    await client.delete(gone_path, headers=user.headers)
    assert await kept(client, user, doc["id"], 2) == [2, 1]
    await in_trash(client, user, gone["id"])

    backup = tmp_path / "backup"
    exported = script(settings, "scripts.export", "--all", "-o", str(backup))
    assert exported.returncode == 0, exported.stderr
    assert "2 old versions, 1 in the trash" in exported.stdout  # gone's v1 and doc's v1
    target = settings.model_copy(update={"mongodb_db": settings.mongodb_db + "_restored"})
    imported = script(target, "scripts.restore", "--all", str(backup))
    assert imported.returncode == 0, imported.stderr
    assert "history: 2 new, 0 present" in imported.stdout
    assert "trash: 1 new, 0 present" in imported.stdout
    again = script(target, "scripts.restore", "--all", str(backup))
    assert "history: 0 new, 2 present" in again.stdout
    async with running_app(target) as restored, http_client(restored) as there:
        me = await sign_in(there, user.email)
        old = await there.get(f"{NOTES}/documents/{doc['id']}/versions/1", headers=me.headers)
        assert old.status_code == 200 and old.json()["data"] == {"n": 1}
        back = await there.post(f"{NOTES}/trash/{gone['id']}/restore", headers=me.headers)
        assert back.status_code == 201, back.text
        file = await there.get(f"{gone_path}/files/a.txt", headers=me.headers)
        assert file.status_code == 200 and file.content == b"kept"

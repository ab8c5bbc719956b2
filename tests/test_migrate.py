"""scripts.migrate: a JSON Patch or update operators applied to every stored document, with
progress that resumes, and the schema change it prepares for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from tests.support.accounts import Account
from tests.support.scripts import script

DOCS = "/v1/collections/notes/documents"


async def notes(client: httpx.AsyncClient, admin: Account, items: list[dict[str, Any]]) -> None:
    made = await client.post(
        "/v1/collections",
        json={"name": "notes", "access": {"read": "public"}},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    for data in items:
        assert (await client.post(DOCS, json=data, headers=admin.headers)).status_code == 201


async def stored(client: httpx.AsyncClient, admin: Account) -> dict[int, dict[str, Any]]:
    page = (await client.get(f"{DOCS}?limit=100", headers=admin.headers)).json()
    return {d["data"]["n"]: d for d in page["items"]}


def change_file(tmp_path: Path, body: Any, name: str = "change.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return path


async def test_a_patch_changes_every_document_that_takes_it_and_lists_the_rest(
    settings: Settings, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    await notes(client, admin, [{"n": 1, "title": "a"}, {"n": 2, "title": "b"}, {"n": 3}])
    patch = change_file(
        tmp_path,
        [
            {"op": "move", "from": "/title", "path": "/name"},
            {"op": "add", "path": "/v", "value": 2},
        ],
    )
    result = script(
        settings, "scripts.migrate", "notes", "--patch", str(patch), "--batch-size", "2"
    )
    assert result.returncode == 1, result.stdout
    assert "changed 2 documents, 0 already as the change leaves them, 1 could not take it" in (
        result.stderr
    )
    after = await stored(client, admin)
    assert after[1]["data"] == {"n": 1, "name": "a", "v": 2} and after[1]["version"] == 2
    assert after[2]["data"] == {"n": 2, "name": "b", "v": 2}
    assert after[3]["data"] == {"n": 3} and after[3]["version"] == 1  # left alone, and listed
    assert after[3]["id"] in result.stderr
    assert "next: fix those documents" in result.stderr
    # Fixed, the same command tries only that one again (the others keep one change).
    fixed = await client.put(
        f"{DOCS}/{after[3]['id']}", json={"n": 3, "title": "c"}, headers=admin.headers
    )
    assert fixed.status_code == 200, fixed.text
    again = script(settings, "scripts.migrate", "notes", "--patch", str(patch))
    assert again.returncode == 0, again.stderr
    assert "trying again the 1 document that could not take it" in again.stderr
    final = await stored(client, admin)
    assert final[3]["data"] == {"n": 3, "name": "c", "v": 2}
    assert final[1]["data"] == {"n": 1, "name": "a", "v": 2} and final[1]["version"] == 2


async def test_update_operators_with_a_filter_write_only_what_they_change(
    settings: Settings, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    await notes(client, admin, [{"n": 1, "v": 1}, {"n": 2, "v": 2}, {"n": 3, "v": 2}])
    update = change_file(tmp_path, {"set": {"v": 2}})
    dry = script(settings, "scripts.migrate", "notes", "--update", str(update), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would change 1 document, 2 already as the change leaves them" in dry.stdout
    assert (await stored(client, admin))[1]["data"]["v"] == 1  # a dry run changes nothing
    only = script(
        settings,
        "scripts.migrate",
        "notes",
        "--update",
        str(update),
        "--filter",
        '{"data.n": {"$gte": 2}}',
    )
    assert "changed 0 documents, 2 already" in only.stdout
    # The filtered run's progress is another migration's: --restart sets it aside.
    done = script(settings, "scripts.migrate", "notes", "--update", str(update), "--restart")
    assert done.returncode == 0, done.stderr
    assert "changed 1 document, 2 already" in done.stdout
    after = await stored(client, admin)
    assert [after[n]["version"] for n in (1, 2, 3)] == [2, 1, 1]


async def test_a_migration_resumes_after_the_last_document_reached_and_runs_once(
    settings: Settings, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    await notes(client, admin, [{"n": n, "tags": []} for n in range(1, 6)])
    before = await stored(client, admin)
    ids = sorted(d["id"] for d in before.values())
    patch = change_file(tmp_path, [{"op": "add", "path": "/tags/-", "value": "x"}])
    # As a run killed in a batch after changing every document, its checkpoint saved
    # after the second, would have left it.
    progress = tmp_path / "change.json.migrate-progress"
    first = script(settings, "scripts.migrate", "notes", "--patch", str(patch), "--batch-size", "2")
    assert first.returncode == 0, first.stderr
    saved = json.loads(progress.read_text())
    assert saved["done"] is True
    counted = {"changed": 2, "unchanged": 0, "failed": 0}
    progress.write_text(json.dumps(saved | {"done": False, "after": ids[1], "counts": counted}))
    resumed = script(settings, "scripts.migrate", "notes", "--patch", str(patch))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after document {ids[1]}" in resumed.stderr
    by_id = {d["id"]: d for d in (await stored(client, admin)).values()}
    # The run's own writes are known: adding to a list happened once, not again.
    assert [len(by_id[i]["data"]["tags"]) for i in ids] == [1, 1, 1, 1, 1]
    assert [by_id[i]["version"] for i in ids] == [2, 2, 2, 2, 2]
    assert "changed 5 documents" in resumed.stdout
    # Run to the end: again only with --restart, a new run (adding is not idempotent).
    again = script(settings, "scripts.migrate", "notes", "--patch", str(patch))
    assert again.returncode == 1 and "--restart" in again.stderr
    restarted = script(settings, "scripts.migrate", "notes", "--patch", str(patch), "--restart")
    assert restarted.returncode == 0, restarted.stderr
    by_id = {d["id"]: d for d in (await stored(client, admin)).values()}
    assert [len(by_id[i]["data"]["tags"]) for i in ids] == [2, 2, 2, 2, 2]
    other = change_file(tmp_path, [{"op": "add", "path": "/tags/-", "value": "y"}], "other.json")
    progress.replace(tmp_path / "other.json.migrate-progress")  # another migration's
    moved = script(settings, "scripts.migrate", "notes", "--patch", str(other))
    assert moved.returncode == 1 and "belongs to another migration" in moved.stderr


async def test_a_bad_change_is_refused_before_anything_changes(
    settings: Settings, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    await notes(client, admin, [{"n": 1}])
    for body, says in [
        ([{"op": "jump", "path": "/x"}], "op"),
        ({"inc": {"n": "one"}}, "number"),
    ]:
        flag = "--patch" if isinstance(body, list) else "--update"
        result = script(
            settings, "scripts.migrate", "notes", flag, str(change_file(tmp_path, body))
        )
        assert result.returncode == 1 and says in result.stderr, result.stderr
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    result = script(settings, "scripts.migrate", "notes", "--patch", str(not_json))
    assert result.returncode == 1 and "is not JSON" in result.stderr
    empty = change_file(tmp_path, [], "empty.json")
    missing = script(settings, "scripts.migrate", "nothing", "--patch", str(empty))
    assert missing.returncode == 1 and "nothing" in missing.stderr
    assert (await stored(client, admin))[1]["version"] == 1


async def test_documents_migrated_to_a_new_schema_let_it_through(
    settings: Settings, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    await notes(client, admin, [{"n": 1, "title": 7}, {"n": 2, "title": "b"}])
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    refused = await client.patch(
        "/v1/collections/notes", json={"schema": schema}, headers=admin.headers
    )
    assert refused.status_code == 409
    fix = change_file(tmp_path, {"set": {"title": "7"}})
    fixed = script(
        settings, "scripts.migrate", "notes", "--update", str(fix), "--filter", '{"data.n": 1}'
    )
    assert fixed.returncode == 0, fixed.stderr
    changed = await client.patch(
        "/v1/collections/notes", json={"schema": schema}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text

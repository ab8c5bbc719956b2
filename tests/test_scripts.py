"""Operator scripts run as operators run them: seed, export, import (against the test DB)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from app.collections.schemas import CollectionIn
from app.config import Settings
from app.container import Container
from tests.support.accounts import sign_in
from tests.support.apps import ROOT
from tests.support.scripts import script

DEMO = ROOT / "fixtures" / "demo"


async def test_seed_loads_the_demo_once_and_it_is_readable_through_the_api(
    settings: Settings, container: Container, client: httpx.AsyncClient
) -> None:
    dry = script(settings, "scripts.seed", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would change 49 records")
    assert await container.db["users"].count_documents({}) == 0

    first = script(settings, "scripts.seed")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("changed 49 records")
    assert "1 file created" in first.stdout
    second = script(settings, "scripts.seed")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("changed 0 records")

    ada = await sign_in(client, "ada@demo.docstore", "demo user passphrase")
    notes = await client.get(
        "/v1/collections/notes/documents", params={"limit": 100}, headers=ada.headers
    )
    assert notes.status_code == 200
    assert len(notes.json()["items"]) == 20  # owner access: only Ada's half
    article = await client.get("/v1/collections/articles/documents/article-1")  # public
    assert article.json()["data"]["slug"] == "analytical-engine"
    grace = await sign_in(client, "grace@demo.docstore", "demo user passphrase")
    attached = await client.get(
        "/v1/collections/notes/documents/note-001/files/reading notes.txt", headers=grace.headers
    )
    assert attached.status_code == 200
    assert attached.content == (DEMO / "files" / "note-001.txt").read_bytes()


async def test_seed_changes_what_differs_and_reports_errors_with_file_and_line(
    settings: Settings, container: Container, tmp_path: Path
) -> None:
    assert script(settings, "scripts.seed").returncode == 0
    changed = tmp_path / "changes.ndjson"
    changed.write_text(
        json.dumps(
            {
                "kind": "document",
                "collection": "notes",
                "id": "note-001",
                "owner": "grace@demo.docstore",
                "data": {"title": "Rewritten"},
            }
        )
        + "\n"
    )
    result = script(settings, "scripts.seed", str(changed))
    assert result.returncode == 0, result.stderr
    assert "1 document updated" in result.stdout
    stored = await container.db["docs_notes"].find_one({"_id": "note-001"})
    assert stored is not None and stored["data"] == {"title": "Rewritten"}
    assert stored["version"] == 2

    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        json.dumps(
            {
                "kind": "document",
                "collection": "notes",
                "id": "ok-1",
                "owner": "ada@demo.docstore",
                "data": {"title": "fine"},
            }
        )
        + "\n"
        + json.dumps(
            {
                "kind": "document",
                "collection": "notes",
                "id": "bad-1",
                "owner": "ada@demo.docstore",
                "data": {"score": -1},
            }
        )
        + "\n"
    )
    refused = script(settings, "scripts.seed", str(bad))
    assert refused.returncode == 1
    assert f"{bad}:2" in refused.stderr and "schema" in refused.stderr
    assert "Traceback" not in refused.stderr

    for body, expected in (
        ("{not json", "not valid JSON"),
        (json.dumps({"kind": "robot"}), "kind must be user, collection, document or file"),
        (json.dumps({"kind": "user", "email": "x@example.com", "name": "X"}), "password"),
    ):
        odd = tmp_path / "odd.ndjson"
        odd.write_text(body + "\n")
        result = script(settings, "scripts.seed", str(odd))
        assert result.returncode == 1 and expected in result.stderr, result.stderr


async def test_export_then_import_into_an_empty_database_gives_identical_documents(
    settings: Settings, container: Container, tmp_path: Path
) -> None:
    assert script(settings, "scripts.seed").returncode == 0
    exported = script(settings, "scripts.export", "--all", "-o", str(tmp_path / "backup"))
    assert exported.returncode == 0, exported.stderr
    assert "notes: 40" in exported.stdout

    target = settings.model_copy(update={"mongodb_db": settings.mongodb_db + "_copy"})
    try:
        imported = script(target, "scripts.restore", "--all", str(tmp_path / "backup"))
        assert imported.returncode == 0, imported.stderr
        copy = container.db.client[target.mongodb_db]
        # All but the ids of the last writes (retry bookkeeping, not data: not exported).
        stored = {"writes": 0}
        for name in ("notes", "articles"):
            source = container.db[f"docs_{name}"]
            source_docs = [d async for d in source.find({}, stored).sort("_id")]
            copied = [d async for d in copy[f"docs_{name}"].find({}, stored).sort("_id")]
            assert copied == source_docs
        # Files: the same names, types and contents, byte for byte.
        # (uploadDate: the export's time, not the import's.)
        fields = {"_id": 0, "filename": 1, "length": 1, "metadata": 1, "uploadDate": 1}
        source_files = [f async for f in container.db["files.files"].find({}, fields)]
        copied_files = [f async for f in copy["files.files"].find({}, fields)]
        assert copied_files == source_files and len(source_files) == 1
        source_chunks = [c["data"] async for c in container.db["files.chunks"].find()]
        assert [c["data"] async for c in copy["files.chunks"].find()] == source_chunks
        declared = await copy["collections"].find_one({"_id": "articles"})
        assert declared is not None and declared["access"]["read"] == "public"
        again = script(target, "scripts.restore", "--all", str(tmp_path / "backup"))
        assert "notes: 0 new, 40 present" in again.stdout
        assert "files: 0 new, 0 replaced, 1 unchanged" in again.stdout
        # A manifest names blobs by hash only: a path in its place is refused, not read.
        manifest = tmp_path / "backup" / "files.ndjson"
        entry = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**entry, "sha256": "../users.ndjson"}) + "\n")
        tampered = script(target, "scripts.restore", "--all", str(tmp_path / "backup"))
        assert tampered.returncode == 1
        assert "files.ndjson:1: sha256 must be 64 hex digits" in tampered.stderr
        # A blob whose bytes are not what its hash names is refused, not stored.
        manifest.write_text(json.dumps(entry) + "\n")
        blob = tmp_path / "backup" / "files" / entry["sha256"]
        blob.write_bytes(b"damaged" + blob.read_bytes())
        await copy["files.files"].delete_many({})
        damaged = script(target, "scripts.restore", "--all", str(tmp_path / "backup"))
        assert damaged.returncode == 1
        assert "does not hold the content its name promises" in damaged.stderr
        assert await copy["files.files"].count_documents({}) == 0
    finally:
        await container.db.client.drop_database(target.mongodb_db)


async def test_an_import_stopped_by_a_bad_line_resumes_after_the_fix(
    settings: Settings, container: Container, tmp_path: Path
) -> None:
    assert script(settings, "scripts.seed").returncode == 0
    source = tmp_path / "notes.ndjson"
    assert script(settings, "scripts.export", "notes", "-o", str(source)).returncode == 0
    lines = source.read_text().splitlines()
    broken = [*lines[:23], '{"id": "oops", "broken": true}', *lines[23:]]
    source.write_text("\n".join(broken) + "\n")
    await container.db["docs_notes"].delete_many({})

    failed = script(settings, "scripts.restore", "notes", str(source), "--batch-size", "5")
    assert failed.returncode == 1
    assert "line 24" in failed.stderr and "Fix it and run the same command" in failed.stderr
    assert await container.db["docs_notes"].count_documents({}) == 23  # batches kept

    source.write_text("\n".join(lines) + "\n")
    resumed = script(settings, "scripts.restore", "notes", str(source), "--batch-size", "5")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert "imported 17 documents" in resumed.stdout
    assert await container.db["docs_notes"].count_documents({}) == 40


async def test_an_import_killed_half_way_resumes_without_duplicates(
    settings: Settings, container: Container, tmp_path: Path
) -> None:
    await container.collections.create(CollectionIn(name="big"))
    source = tmp_path / "big.ndjson"
    with source.open("w") as out:
        for i in range(3000):
            out.write(
                json.dumps(
                    {
                        "id": f"d{i:05d}",
                        "owner": None,
                        "version": 1,
                        "created_at": "2026-11-24T10:00:00.000Z",
                        "updated_at": "2026-11-24T10:00:00.000Z",
                        "data": {"n": i},
                    }
                )
                + "\n"
            )
    process = script(
        settings, "scripts.restore", "big", str(source), "--batch-size", "1", wait=False
    )
    marker = source.with_name(source.name + ".import-progress")
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL, "the import finished before it could be killed"
    partial = await container.db["docs_big"].count_documents({})
    assert 0 < partial < 3000

    resumed = script(settings, "scripts.restore", "big", str(source), "--batch-size", "500")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert await container.db["docs_big"].count_documents({}) == 3000
    assert not marker.exists()


def test_make_clients_says_what_to_do_when_it_cannot_fetch_the_contract(
    database_url: str, tmp_path: Path, capsys: Any
) -> None:
    from scripts import clients
    from tests.support.apps import make_settings
    from tests.support.servers import api_server, free_port

    unreachable = f"http://127.0.0.1:{free_port()}"
    assert clients.main(["--url", unreachable, "--out", str(tmp_path)]) == 1
    assert "start the server (`make run`) or set DOCSTORE_URL" in capsys.readouterr().err

    settings = make_settings(database_url)
    with api_server(database_url, settings.mongodb_db, JWT_SECRET=settings.jwt_secret) as (
        url,
        _,
    ):
        assert clients.main(["--url", url, "--token", "expired", "--out", str(tmp_path)]) == 1
        assert "export a fresh access token" in capsys.readouterr().err
        assert clients.main(["--url", url + "/nowhere", "--out", str(tmp_path)]) == 1
        assert "answered 404" in capsys.readouterr().err
    assert not (tmp_path / "openapi.json").exists()

"""Loading an export back: batched, resumable, never importing anything twice."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from app.backup import BackupError, Bars, Note, no_bars, no_notes
from app.backup.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from app.backup.files import attach, sha256_of
from app.backup.format import (
    BLOBS,
    MANIFEST,
    SHA256,
    HistoryLine,
    Line,
    TeamLine,
    TrashLine,
    UserLine,
    manifest_time,
)
from app.collections.models import CollectionSpec
from app.container import Container
from app.db.ids import canonical_id
from app.documents.models import StoredDocument
from app.errors import AppError
from app.teams.repository import Member, Team

T = TypeVar("T")
USERS_KEY = "users"  # the checkpoint's name for users.ndjson (a reserved collection name)
TEAMS_KEY = "_teams"  # and for _teams.ndjson (no collection name starts with _)
HISTORY_KEY = "_history"
TRASH_KEY = "_trash"


async def import_lines(
    source: Path,
    key: str,
    parse: Callable[[bytes], T],
    insert: Callable[[list[T]], Awaitable[tuple[int, int]]],
    *,
    batch_size: int,
    restart: bool,
    bars: Bars = no_bars,
    note: Note = no_notes,
) -> tuple[int, int]:
    """Parse and insert `source` line by line in batches, checkpointing after each one.
    `key` names what the file goes into (a collection, or users). (inserted, present)"""
    marker = checkpoint_path(source)
    if restart:
        marker.unlink(missing_ok=True)
    offset = load_checkpoint(source, key)
    if offset:
        note(f"resuming {source} at byte {offset}")
    inserted = skipped = 0
    # Blocking on a local file, as this whole module does: it runs from operator scripts.
    size = source.stat().st_size  # noqa: ASYNC240
    with source.open("rb") as lines, bars(size, f"importing {key}") as bar:
        lines.seek(offset)
        bar.update(offset)
        batch: list[T] = []
        position = offset

        async def flush() -> None:
            nonlocal inserted, skipped, batch
            if batch:
                try:
                    added, present = await insert(batch)
                except AppError as exc:
                    raise BackupError(
                        f"{source}: a batch ending at byte {position} was refused: {exc.detail}. "
                        "Fix the file and run the same command to resume"
                    ) from None
                inserted, skipped = inserted + added, skipped + present
                batch = []
            save_checkpoint(source, key, position)

        for number, raw in enumerate(lines, 1):
            if raw.strip():
                try:
                    batch.append(parse(raw))
                except ValidationError as exc:
                    first = exc.errors()[0]
                    field = ".".join(str(p) for p in first["loc"]) or "line"
                    await flush()  # keep what came before; resume from this line
                    raise BackupError(
                        f"{source}: line {number} after byte {position}: {field}: "
                        f"{first['msg']}. Fix it and run the same command to resume"
                    ) from None
            position += len(raw)
            bar.update(len(raw))
            if len(batch) >= batch_size:
                await flush()
        await flush()
    marker.unlink(missing_ok=True)
    return inserted, skipped


async def import_file(
    container: Container,
    spec: CollectionSpec,
    source: Path,
    *,
    batch_size: int,
    restart: bool,
    bars: Bars = no_bars,
    note: Note = no_notes,
) -> tuple[int, int]:
    """Documents of one collection. (inserted, already present)"""

    async def insert(batch: list[StoredDocument]) -> tuple[int, int]:
        return await container.documents.import_documents(spec, batch)

    return await import_lines(
        source,
        spec.id,
        lambda raw: Line.model_validate_json(raw).stored(),
        insert,
        batch_size=batch_size,
        restart=restart,
        bars=bars,
        note=note,
    )


async def import_users(
    container: Container,
    source: Path,
    *,
    batch_size: int,
    restart: bool,
    bars: Bars = no_bars,
    note: Note = no_notes,
) -> tuple[int, int, list[str]]:
    """Accounts, ids and password hashes kept. (inserted, already present, emails skipped
    because another account in this database has them)"""
    taken: list[str] = []

    async def insert(batch: list[UserLine]) -> tuple[int, int]:
        outcome = await container.user_service.import_users([line.user() for line in batch])
        taken.extend(outcome.email_taken)
        # Their linked providers and passkeys, unless the account was skipped (its email
        # belongs to another account here). Ones already here are left alone.
        skipped = set(outcome.email_taken)
        kept = [line for line in batch if line.email not in skipped]
        await container.oauth.identities.restore(
            [entry.raw(canonical_id(line.id)) for line in kept for entry in line.identities]
        )
        await container.passkeys.repository.restore(
            [entry.raw(canonical_id(line.id)) for line in kept for entry in line.passkeys]
        )
        return outcome.inserted, outcome.present

    added, present = await import_lines(
        source,
        USERS_KEY,
        UserLine.model_validate_json,
        insert,
        batch_size=batch_size,
        restart=restart,
        bars=bars,
        note=note,
    )
    return added, present, taken


async def import_teams(
    container: Container,
    source: Path,
    *,
    batch_size: int,
    restart: bool,
    bars: Bars = no_bars,
    note: Note = no_notes,
) -> tuple[int, int]:
    """Teams with their members, ids kept (import accounts first). (inserted, present)"""
    repository = container.teams.repository

    async def insert(batch: list[tuple[Team, list[Member]]]) -> tuple[int, int]:
        added = 0
        for team, members in batch:
            added += await repository.import_team(team, members)
        return added, len(batch) - added

    return await import_lines(
        source,
        TEAMS_KEY,
        lambda raw: TeamLine.model_validate_json(raw).team(),
        insert,
        batch_size=batch_size,
        restart=restart,
        bars=bars,
        note=note,
    )


async def import_history(
    container: Container,
    source: Path,
    which: Literal["versions", "trash"],
    *,
    batch_size: int,
    restart: bool,
    bars: Bars = no_bars,
    note: Note = no_notes,
) -> tuple[int, int]:
    """Kept versions (_history.ndjson) or trashed documents (_trash.ndjson); records whose
    key is taken are left alone, so running it again changes nothing. (inserted, present)"""
    model = HistoryLine if which == "versions" else TrashLine
    store = container.history

    async def insert(batch: list[dict[str, Any]]) -> tuple[int, int]:
        added = await store.import_records(which, batch)
        return added, len(batch) - added

    return await import_lines(
        source,
        HISTORY_KEY if which == "versions" else TRASH_KEY,
        lambda raw: model.model_validate_json(raw).record(),
        insert,
        batch_size=batch_size,
        restart=restart,
        bars=bars,
        note=note,
    )


async def import_files(
    container: Container, folder: Path, *, bars: Bars = no_bars
) -> dict[str, int]:
    """Load files.ndjson and its blobs; files already there with the same content are
    skipped, so running it again changes nothing."""
    manifest = folder / MANIFEST
    lines = [line for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with bars(len(lines), "importing files") as bar:
        for number, line in enumerate(lines, 1):
            try:
                entry: dict[str, Any] = json.loads(line)
                digest = str(entry["sha256"])
                if not SHA256.fullmatch(digest):
                    raise BackupError(f"{manifest}:{number}: sha256 must be 64 hex digits")
                blob = folder / BLOBS / digest
                if not blob.is_file():
                    raise BackupError(
                        f"{manifest}:{number}: {blob} is missing; export again with "
                        "scripts.export --all"
                    )
                if sha256_of(blob) != digest:
                    raise BackupError(
                        f"{manifest}:{number}: {blob} does not hold the content its name "
                        "promises (damaged or edited); export again with scripts.export --all"
                    )
                store = container.files.store
                collection, document = str(entry["collection"]), str(entry["document"])
                if entry.get("trashed"):
                    # A trashed document's file: stored, then set aside again; only while
                    # its document is in the trash and no live one has its id.
                    there = await store.current(
                        collection, document, str(entry["name"]), trashed=True
                    )
                    spec = await container.collections.get(collection)
                    if (
                        (there is not None and there.sha256 == digest)
                        or await container.history.trashed(collection, document) is None
                        or await container.documents.find_any(spec, document) is not None
                    ):
                        counts["unchanged"] += 1
                        bar.update()
                        continue
                outcome = await attach(
                    container,
                    collection,
                    document,
                    entry["name"],
                    entry["content_type"],
                    blob,
                    sha256=entry["sha256"],
                    # The export's time, not the import's (older exports have none).
                    created_at=(
                        manifest_time(entry["created_at"]) if "created_at" in entry else None
                    ),
                )
                if entry.get("trashed"):
                    await store.set_aside(collection, [document])
            except (KeyError, ValueError, TypeError) as exc:
                raise BackupError(f"{manifest}:{number}: not a file entry ({exc})") from None
            counts[outcome] += 1
            bar.update()
    return counts

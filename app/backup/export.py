"""Writing an export: documents, accounts and files, streamed in constant memory.

Everything written is private (0600 files, a 0700 directory): password hashes can be
attacked offline, and the documents are private data.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.accounts.models import User
from app.backup import BackupError, Bars, Note, no_bars, no_notes
from app.backup.format import (
    BLOBS,
    COLLECTIONS_FILE,
    HISTORY_FILE,
    MANIFEST,
    TEAMS_FILE,
    TRASH_FILE,
    USERS_FILE,
    declaration,
    history_line,
    manifest_line,
    team_line,
    to_line,
    trash_line,
    user_line,
)
from app.collections.models import CollectionSpec
from app.container import Container


def private_file(path: Path) -> IO[str]:
    """Open for writing, readable and writable by the owner only (0600), even if the file
    existed before with wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if stat.S_ISREG(os.fstat(fd).st_mode):  # not /dev/stdout, a pipe...
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def prepare_directory(folder: Path, *, note: Note = no_notes) -> None:
    """A new directory is created 0700; an existing one readable by others draws a warning."""
    if folder.exists() and not folder.is_dir():
        raise BackupError(f"{folder} is a file; --all writes into a directory: name a new one")
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    elif stat.S_IMODE(folder.stat().st_mode) & 0o077:
        note(
            f"warning: {folder} can be read by other users, and the export holds password "
            f"hashes; run chmod 700 {folder}"
        )


@dataclass(frozen=True)
class Exported:
    """What export_all wrote: accounts, documents per collection (in order), files."""

    users: int
    documents: list[tuple[str, int]]
    files: int
    teams: int = 0
    versions: int = 0
    trashed: int = 0


async def export_all(
    container: Container, folder: Path, *, bars: Bars = no_bars, note: Note = no_notes
) -> Exported:
    """A full backup into `folder`: declarations, accounts, each collection, files."""
    prepare_directory(folder, note=note)
    specs = await container.collections.list_all()
    with private_file(folder / COLLECTIONS_FILE) as out:
        out.write(json.dumps([declaration(s) for s in specs], indent=2))
    with private_file(folder / USERS_FILE) as out:
        users = await export_users(container, out, bars=bars)
    documents = []
    for spec in specs:
        with private_file(folder / f"{spec.id}.ndjson") as out:
            documents.append((spec.id, await export_one(container, spec, out, bars=bars)))
    with private_file(folder / TEAMS_FILE) as out:
        teams = await export_teams(container, out, bars=bars)
    history = container.history
    kept, trashed = await history.count_all()
    with private_file(folder / HISTORY_FILE) as out, bars(kept, "exporting history") as bar:
        async for raw in history.stream_versions():
            out.write(history_line(raw))
            bar.update()
    with private_file(folder / TRASH_FILE) as out, bars(trashed, "exporting trash") as bar:
        async for raw in history.stream_trash():
            out.write(trash_line(raw))
            bar.update()
    # The trash before the files: a file set aside for a trash entry purged meanwhile
    # is then left out on import rather than failing it.
    with private_file(folder / MANIFEST) as out:
        files = await export_files(container, folder, out, bars=bars)
    return Exported(users, documents, files, teams, kept, trashed)


async def export_teams(container: Container, out: IO[str], *, bars: Bars = no_bars) -> int:
    """Every team with its members, a line each. (how many)"""
    repository = container.teams.repository
    written = 0
    with bars(await repository.count_all(), "exporting teams") as bar:
        async for team, members in repository.stream_all():
            out.write(team_line(team, members))
            written += 1
            bar.update()
    return written


async def export_one(
    container: Container, spec: CollectionSpec, out: IO[str], *, bars: Bars = no_bars
) -> int:
    """The documents of one collection, a line each. (how many)"""
    total = await container.documents.count_all(spec)
    written = 0
    with bars(total, f"exporting {spec.id}") as bar:
        async for doc in container.documents.stream(spec):
            out.write(to_line(doc))
            written += 1
            bar.update()
    return written


EXPORT_PAGE = 500


async def export_users(container: Container, out: IO[str], *, bars: Bars = no_bars) -> int:
    """Every account, password hash included, a line each. (how many)"""
    total = await container.users.count_all()
    written = 0
    page: list[User] = []

    async def flush() -> None:
        # Linked providers and passkeys, one query each per page of accounts.
        ids = [str(user.id) for user in page]
        identities = await container.oauth.identities.raw_for_users(ids)
        passkeys = await container.passkeys.repository.raw_for_users(ids)
        for user in page:
            user_id = str(user.id)
            out.write(
                user_line(
                    user,
                    [raw for raw in identities if raw["user_id"] == user_id],
                    [raw for raw in passkeys if raw["user_id"] == user_id],
                )
            )
        bar.update(len(page))
        page.clear()

    with bars(total, "exporting users") as bar:
        async for user in container.users.stream_all():
            page.append(user)
            written += 1
            if len(page) == EXPORT_PAGE:
                await flush()
        await flush()
    return written


async def export_files(
    container: Container, folder: Path, manifest: IO[str], *, bars: Bars = no_bars
) -> int:
    """Every current file: a manifest line each, a blob per distinct content."""
    store = container.files.store
    blobs = folder / BLOBS
    blobs.mkdir(mode=0o700, exist_ok=True)
    records = [raw async for raw in store.records.find({}, {"_id": 1}).sort("_id")]
    written = 0
    with bars(len(records), "exporting files") as bar:
        async for raw in store.records.find({}).sort(
            [("metadata.collection", 1), ("metadata.document", 1), ("filename", 1), ("_id", -1)]
        ):
            bar.update()
            meta = raw["metadata"]
            trashed = meta.get("document") is None and "trashed" in meta
            document = meta["trashed"] if trashed else meta["document"]
            current = await store.current(
                meta["collection"], document, raw["filename"], trashed=trashed
            )
            if current is None or current.id != raw["_id"]:
                continue  # an older version about to be replaced
            blob = blobs / current.sha256
            if not blob.exists():
                # Written aside, then renamed: a blob under its hash is always whole.
                part = blobs / f"{current.sha256}.part"
                with part.open("wb") as out:
                    part.chmod(0o600)
                    async for piece in store.open(current, 0, current.size - 1):
                        out.write(piece)
                part.replace(blob)
            manifest.write(manifest_line(meta["collection"], document, current, trashed=trashed))
            written += 1
    return written

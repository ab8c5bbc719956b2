"""Loading an export back: batched, resumable, never importing anything twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.backup import BackupError, Bars, no_bars
from app.backup.files import attach, sha256_of
from app.backup.format import BLOBS, MANIFEST, SHA256, manifest_time
from app.container import Container


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
                outcome = await attach(
                    container,
                    entry["collection"],
                    entry["document"],
                    entry["name"],
                    entry["content_type"],
                    blob,
                    sha256=entry["sha256"],
                    # The export's time, not the import's (older exports have none).
                    created_at=(
                        manifest_time(entry["created_at"]) if "created_at" in entry else None
                    ),
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise BackupError(f"{manifest}:{number}: not a file entry ({exc})") from None
            counts[outcome] += 1
            bar.update()
    return counts

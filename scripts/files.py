"""Files in operator scripts: the manifest and blobs an export writes, and uploads from disk.

An export directory holds `files.ndjson` (one line a file: collection, document, name,
content_type, sha256, size, created_at) and `files/<sha256>` blobs (each content once,
named by its hash, so no file or document name ever becomes a path).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from app.backup.format import BLOBS, MANIFEST, SHA256, manifest_line, manifest_time
from app.clock import utc_now
from app.container import Container
from app.files.names import check_filename, check_sniff, media_type
from scripts.cli import ScriptError, progress

PIECE = 1024 * 1024


async def read_pieces(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            yield piece


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


async def attach(
    container: Container,
    collection: str,
    document: str,
    name: str,
    content_type: str,
    source: Path,
    *,
    sha256: str | None = None,
    created_at: datetime | None = None,
) -> str:
    """Store `source` as the document's file `name` unless it is already there with the
    same content: "created", "updated" or "unchanged"."""
    files = container.files
    name = check_filename(name)
    content_type = media_type(content_type)
    spec = await container.collections.get(collection)
    if await container.documents.find_any(spec, document) is None:
        raise ScriptError(f"document {collection}/{document} does not exist; load it first")
    current = await files.store.current(collection, document, name)
    wanted = sha256 or sha256_of(source)
    if current is not None and current.sha256 == wanted and current.content_type == content_type:
        return "unchanged"
    stored = await files.store.upload(
        collection,
        document,
        name,
        content_type,
        read_pieces(source),
        max_bytes=files.max_bytes,
        first_bytes=lambda head: check_sniff(content_type, head),
        clock=utc_now,
        created_at=created_at,
    )
    await files.store.drop_older(collection, document, name, keep=stored.id)
    return "created" if current is None else "updated"


async def export_files(container: Container, folder: Path, manifest: IO[str]) -> int:
    """Every current file: a manifest line each, a blob per distinct content."""
    store = container.files.store
    blobs = folder / BLOBS
    blobs.mkdir(mode=0o700, exist_ok=True)
    records = [raw async for raw in store.records.find({}, {"_id": 1}).sort("_id")]
    written = 0
    with progress(len(records), "exporting files") as bar:
        async for raw in store.records.find({}).sort(
            [("metadata.collection", 1), ("metadata.document", 1), ("filename", 1), ("_id", -1)]
        ):
            bar.update()
            meta = raw["metadata"]
            current = await store.current(meta["collection"], meta["document"], raw["filename"])
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
            manifest.write(manifest_line(meta["collection"], meta["document"], current))
            written += 1
    return written


async def import_files(container: Container, folder: Path) -> dict[str, int]:
    """Load files.ndjson and its blobs; files already there with the same content are
    skipped, so running it again changes nothing."""
    manifest = folder / MANIFEST
    lines = [line for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with progress(len(lines), "importing files") as bar:
        for number, line in enumerate(lines, 1):
            try:
                entry: dict[str, Any] = json.loads(line)
                digest = str(entry["sha256"])
                if not SHA256.fullmatch(digest):
                    raise ScriptError(f"{manifest}:{number}: sha256 must be 64 hex digits")
                blob = folder / BLOBS / digest
                if not blob.is_file():
                    raise ScriptError(
                        f"{manifest}:{number}: {blob} is missing; export again with "
                        "scripts.export --all"
                    )
                if sha256_of(blob) != digest:
                    raise ScriptError(
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
                    created_at=manifest_time(entry["created_at"])
                    if "created_at" in entry
                    else None,
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise ScriptError(f"{manifest}:{number}: not a file entry ({exc})") from None
            counts[outcome] += 1
            bar.update()
    return counts

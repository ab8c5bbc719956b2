"""Files from disk into the store: the blobs of an export, and a seed's uploads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from app.backup import BackupError
from app.clock import utc_now
from app.container import Container
from app.files.names import check_filename, check_sniff, media_type

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
    if await container.documents.find_any(spec, document) is None and (
        # (A trashed document keeps its files: they come back with it.)
        await container.history.trashed(collection, document) is None
    ):
        raise BackupError(f"document {collection}/{document} does not exist; load it first")
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

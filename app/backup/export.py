"""Writing an export: documents, accounts and files, streamed in constant memory.

Everything written is private (0600 files, a 0700 directory): password hashes can be
attacked offline, and the documents are private data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from app.backup import Bars, no_bars
from app.backup.format import BLOBS, manifest_line
from app.container import Container


def private_file(path: Path) -> IO[str]:
    """Open for writing, readable and writable by the owner only (0600), even if the file
    existed before with wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if stat.S_ISREG(os.fstat(fd).st_mode):  # not /dev/stdout, a pipe...
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


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

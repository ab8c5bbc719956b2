"""The resumable import's checkpoint: FILE.import-progress beside the input.

It holds what the file goes into, the byte offset reached and a hash of the bytes before
it, so lines after the offset may be fixed before resuming, but not the part imported.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from app.backup import BackupError


def checkpoint_path(source: Path) -> Path:
    return source.with_name(source.name + ".import-progress")


def prefix_digest(source: Path, length: int) -> str:
    """A hash of the part already imported: lines after it may be fixed before resuming."""
    digest = hashlib.sha256()
    with source.open("rb") as stream:
        while length > 0:
            chunk = stream.read(min(length, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            length -= len(chunk)
    return digest.hexdigest()


def save_checkpoint(source: Path, key: str, offset: int) -> None:
    # Write then rename: a kill mid-write leaves the previous checkpoint, never half of one.
    path = checkpoint_path(source)
    partial = path.with_name(path.name + ".tmp")
    state = {"collection": key, "offset": offset, "sha256": prefix_digest(source, offset)}
    partial.write_text(json.dumps(state))
    os.replace(partial, path)


def load_checkpoint(source: Path, key: str) -> int:
    """The offset to resume `source` at (0 without a checkpoint); `key` names what the
    file goes into (a collection, or users), and must be what the checkpoint says."""
    path = checkpoint_path(source)
    if not path.exists():
        return 0
    try:
        saved = json.loads(path.read_text())
        offset = int(saved.get("offset", 0))
    except (ValueError, AttributeError):
        raise BackupError(f"{path} is unreadable; delete it or pass --restart") from None
    if saved.get("collection") != key or saved.get("sha256") != prefix_digest(source, offset):
        raise BackupError(
            f"{path} belongs to another import (other collection, or the imported part of "
            "the file changed); delete it or pass --restart"
        )
    return offset

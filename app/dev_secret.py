"""The development signing key: random, made once, kept in the private data directory.

A public constant would let anyone who can reach a development server mint tokens for
any user id (ids are visible as `owner` on public documents). So, in `ENV=dev` without
`JWT_SECRET`, the first process to start writes 256 random bits to
`DATA_DIR/jwt-secret` (mode 0600, in a 0700 directory) and every later process, worker
or script reads it back. Production always sets `JWT_SECRET` (config.py refuses to
start otherwise).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

SECRET_FILE = "jwt-secret"


def private_dir(path: Path) -> Path:
    """Create `path` if needed and make it readable by its owner only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)  # mkdir's mode is filtered by the umask; older dirs were 0755
    return path


def load_or_create_secret(data_dir: Path) -> str:
    """The key in `data_dir`, made on first use. Safe when several processes start at
    once: the key is written to a temporary file and linked into place, which fails if
    another process got there first; everyone then reads the one that won."""
    folder = private_dir(data_dir)
    target = folder / SECRET_FILE
    if not target.exists():
        scratch = folder / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_urlsafe(32))
                out.flush()
                os.fsync(out.fileno())
            # Fails if another process made it first: then everyone uses theirs.
            with contextlib.suppress(FileExistsError):
                os.link(scratch, target)
        finally:
            scratch.unlink(missing_ok=True)
    secret = target.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise ValueError(
            f"{target} holds no usable key: delete it (a new one is made) or set JWT_SECRET"
        )
    return secret

"""Export documents (and, with --all, accounts) to NDJSON, streaming in constant memory.

    python -m scripts.export notes -o notes.ndjson     # one collection ("-o -": stdout)
    python -m scripts.export --all -o backup/          # a full backup: users.ndjson,
                                                       # collections.json (declarations)
                                                       # NAME.ndjson per collection,
                                                       # files.ndjson + files/<sha256>

Each document line is a document as the API shows it (id, owner, version, timestamps,
data); each users.ndjson line an account (id, email, name, role, disabled, timestamps
and its argon2 password hash, so people sign in with their passwords after a restore).
Sessions, refresh tokens, rate-limit counters and idempotency keys are not exported.
`scripts.restore --all backup/` loads it all back unchanged, into any database
(MONGODB_DB picks it).

The export directory is sensitive: password hashes can be attacked offline, and the
documents are private data. Files are created readable by their owner only (0600), a
new directory 0700; keep backups somewhere as private, and delete copies you no longer need.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path
from typing import IO

from app.backup.export import export_files
from app.backup.format import (
    COLLECTIONS_FILE,
    MANIFEST,
    USERS_FILE,
    declaration,
    to_line,
    user_line,
)
from app.collections.models import CollectionSpec
from app.container import Container
from scripts.cli import ScriptError, guarded, plural, progress, run


def private_file(path: Path) -> IO[str]:
    """Open for writing, readable and writable by the owner only (0600), even if the file
    existed before with wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if stat.S_ISREG(os.fstat(fd).st_mode):  # not /dev/stdout, a pipe...
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


async def export_one(container: Container, spec: CollectionSpec, out: IO[str]) -> int:
    total = await container.documents.count_all(spec)
    written = 0
    with progress(total, f"exporting {spec.id}") as bar:
        async for doc in container.documents.stream(spec):
            out.write(to_line(doc))
            written += 1
            bar.update()
    return written


async def export_users(container: Container, out: IO[str]) -> int:
    total = await container.users.count_all()
    written = 0
    with progress(total, "exporting users") as bar:
        async for user in container.users.stream_all():
            out.write(user_line(user))
            written += 1
            bar.update()
    return written


def prepare_directory(folder: Path) -> None:
    """A new directory is created 0700; an existing one readable by others draws a warning."""
    if folder.exists() and not folder.is_dir():
        raise ScriptError(f"{folder} is a file; --all writes into a directory: name a new one")
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask
    elif stat.S_IMODE(folder.stat().st_mode) & 0o077:
        print(
            f"warning: {folder} can be read by other users, and the export holds password "
            f"hashes; run chmod 700 {folder}",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("collection", nargs="?", help="the collection to export")
    parser.add_argument("--all", action="store_true", help="export every collection")
    parser.add_argument(
        "-o", "--output", required=True, help="file (or - for stdout); a directory with --all"
    )
    args = parser.parse_args(argv)
    if bool(args.collection) == bool(args.all):
        parser.error("name one collection or pass --all")

    async def export(container: Container) -> str:
        if not args.all:
            spec = await container.collections.get(args.collection)
            if args.output == "-":
                count = await export_one(container, spec, sys.stdout)
            else:
                with private_file(Path(args.output)) as out:
                    count = await export_one(container, spec, out)
            done = f"exported {plural(count, 'document')} of {spec.id} to {args.output}"
            if args.output == "-":
                return done
            return f"{done}\nload it with: python -m scripts.restore {spec.id} {args.output}"
        folder = Path(args.output)
        prepare_directory(folder)
        specs = await container.collections.list_all()
        with private_file(folder / COLLECTIONS_FILE) as out:
            out.write(json.dumps([declaration(s) for s in specs], indent=2))
        with private_file(folder / USERS_FILE) as out:
            users = await export_users(container, out)
        counts = []
        for spec in specs:
            with private_file(folder / f"{spec.id}.ndjson") as out:
                counts.append(
                    f"{spec.id}: {plural(await export_one(container, spec, out), 'document')}"
                )
        with private_file(folder / MANIFEST) as out:
            files = await export_files(container, folder, out, bars=progress)
        return (
            f"exported {plural(users, 'user')} and {plural(len(specs), 'collection')} to "
            f"{folder} ({', '.join(counts) or 'no documents'}; {plural(files, 'file')})\n"
            f"restore with: MONGODB_DB=<target> python -m scripts.restore --all {folder}\n"
            f"{folder} holds password hashes and private documents: keep it private"
        )

    def entry() -> int:
        print(run(export), file=sys.stderr if args.output == "-" else sys.stdout)
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())

"""Export documents (and, with --all, accounts) to NDJSON, streaming in constant memory.

    python -m scripts.export notes -o notes.ndjson     # one collection ("-o -": stdout)
    python -m scripts.export --all -o backup/          # a full backup: users.ndjson,
                                                       # collections.json (declarations)
                                                       # NAME.ndjson per collection,
                                                       # files.ndjson + files/<sha256>

Each document line is a document as the API shows it (id, owner, version, timestamps,
data); each users.ndjson line an account (id, email, name, role, disabled, timestamps
and its argon2 password hash, so people sign in with their passwords after a restore).
_teams.ndjson holds each team with its members. Sessions, refresh tokens, rate-limit
counters, idempotency keys and pending team invitations are not exported.
`scripts.restore --all backup/` loads it all back unchanged, into any database
(MONGODB_DB picks it).

The export directory is sensitive: password hashes can be attacked offline, and the
documents are private data. Files are created readable by their owner only (0600), a
new directory 0700; keep backups somewhere as private, and delete copies you no longer need.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.backup.export import export_all, export_one, private_file
from app.clock import utc_now
from app.container import Container
from scripts.cli import guarded, note, plural, progress, run


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
                count = await export_one(container, spec, sys.stdout, bars=progress)
            else:
                with private_file(Path(args.output)) as out:
                    count = await export_one(container, spec, out, bars=progress)
            done = f"exported {plural(count, 'document')} of {spec.id} to {args.output}"
            if args.output == "-":
                return done
            return f"{done}\nload it with: python -m scripts.restore {spec.id} {args.output}"
        folder = Path(args.output)
        exported = await export_all(container, folder, bars=progress, note=note)
        await container.audit.record_script(
            "data_exported",
            at=utc_now(),
            subject=str(folder),
            details={"users": str(exported.users), "files": str(exported.files)},
        )
        counts = [f"{name}: {plural(count, 'document')}" for name, count in exported.documents]
        return (
            f"exported {plural(exported.users, 'user')} and {plural(len(counts), 'collection')} to "
            f"{folder} ({', '.join(counts) or 'no documents'}; {plural(exported.files, 'file')}; "
            f"{plural(exported.teams, 'team')}; "
            f"{plural(exported.versions, 'old version')}, {exported.trashed} in the trash)\n"
            f"restore with: MONGODB_DB=<target> python -m scripts.restore --all {folder}\n"
            f"{folder} holds password hashes and private documents: keep it private"
        )

    def entry() -> int:
        print(run(export), file=sys.stderr if args.output == "-" else sys.stdout)
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())

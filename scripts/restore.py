"""Import what scripts.export wrote (accounts, declarations, documents), batched and resumable.

    python -m scripts.restore --all backup/              # users, declarations, documents
    python -m scripts.restore notes notes.ndjson         # one collection
    MONGODB_DB=other python -m scripts.restore --all backup/   # into another database

--all imports users.ndjson first (accounts keep their ids and password hashes, so
document owners match and people sign in with their passwords; sessions are not
copied, so everyone signs in again), then the teams with their members (_teams.ndjson;
pending invitations are not exported), then declares the collections in collections.json,
then loads each NAME.ndjson, then the files (files.ndjson and files/). One collection
into a database where it is not declared: the declaration is taken from
collections.json beside the file, when there is one.

Documents keep their ids, owners, versions and timestamps. After each batch the byte
offset reached is saved beside the input (FILE.import-progress); if the import stops
(a crash, a bad line, Ctrl-C), running the same command again resumes there. Ids that
already exist are skipped, so nothing is ever imported twice; so are accounts whose
email another account in the target database has (reported, never merged).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.backup.format import (
    COLLECTIONS_FILE,
    HISTORY_FILE,
    MANIFEST,
    TEAMS_FILE,
    TRASH_FILE,
    USERS_FILE,
    read_declarations,
)
from app.backup.restore import (
    import_file,
    import_files,
    import_history,
    import_teams,
    import_users,
)
from app.clock import utc_now
from app.collections.models import CollectionSpec
from app.container import Container
from scripts.cli import ScriptError, guarded, note, plural, progress, run
from scripts.seed import Record, Seeder


def _users_summary(added: int, present: int, taken: list[str], database: str) -> str:
    summary = f"{plural(added, 'user')} ({present} already there)"
    if taken:
        shown = ", ".join(taken[:3]) + (", ..." if len(taken) > 3 else "")
        print(
            f"warning: skipped {plural(len(taken), 'user')} whose email another account in "
            f"database {database} already has ({shown}); their documents will have no owner "
            "account. Delete or rename those accounts and run the same command again",
            file=sys.stderr,
        )
        summary += f", {len(taken)} skipped (email taken)"
    return summary


async def declare_from_export(container: Container, name: str, source: Path) -> CollectionSpec:
    """The spec of `name`; when it is not declared here, declare it from the
    collections.json beside `source` (an export --all directory), or say what to do."""
    existing = await container.collections.repository.get(name)
    if existing is not None:
        return existing
    database = container.settings.mongodb_db
    declarations = source.parent / COLLECTIONS_FILE
    advice = (
        "import with --all from the export directory, or declare it first "
        "(a seed file, or POST /v1/collections)"
    )
    if not declarations.is_file():
        raise ScriptError(f"collection {name} is not declared in database {database}: {advice}")
    records = read_declarations(declarations)
    for index, body in enumerate(records):
        if isinstance(body, dict) and body.get("name") == name:
            await Seeder(container, dry_run=False).apply(Record(f"{declarations}[{index}]", body))
            print(
                f"declared collection {name} in database {database} from {declarations}",
                file=sys.stderr,
            )
            return await container.collections.get(name)
    raise ScriptError(
        f"collection {name} is not declared in database {database}, nor in {declarations}: {advice}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("collection", nargs="?", help="the collection to import into")
    parser.add_argument("source", type=Path, help="an NDJSON file; a directory with --all")
    parser.add_argument(
        "--all", action="store_true", help="import a directory written by export --all"
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--restart", action="store_true", help="ignore a saved checkpoint")
    args = parser.parse_args(argv)
    if bool(args.collection) == bool(args.all):
        parser.error("name one collection, or pass --all with a directory")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")

    async def load(container: Container) -> str:
        database = container.settings.mongodb_db
        if not args.all:
            if not args.source.is_file():
                raise ScriptError(
                    f"{args.source} is not a file: give an NDJSON file written by "
                    "scripts.export (for a whole export directory, use --all DIR)"
                )
            spec = await declare_from_export(container, args.collection, args.source)
            added, present = await import_file(
                container,
                spec,
                args.source,
                batch_size=args.batch_size,
                restart=args.restart,
                bars=progress,
                note=note,
            )
            return (
                f"imported {plural(added, 'document')} into {spec.id} in database {database} "
                f"({present} already there)"
            )
        declarations = args.source / COLLECTIONS_FILE
        if not declarations.is_file():
            raise ScriptError(
                f"{declarations} is missing: --all takes a directory written by "
                "scripts.export --all (for one NDJSON file, name its collection instead)"
            )
        lines = [f"imported {args.source} into database {database}:"]
        await container.audit.record_script(
            "data_imported", at=utc_now(), subject=str(args.source), details={}
        )
        users_file = args.source / USERS_FILE
        if users_file.is_file():
            added, present, taken = await import_users(
                container,
                users_file,
                batch_size=args.batch_size,
                restart=args.restart,
                bars=progress,
                note=note,
            )
            lines.append(f"  users: {_users_summary(added, present, taken, database)}")
        else:
            print(
                f"warning: {users_file} is missing (an export made before accounts were "
                "exported): document owners have no accounts here; recreate them with "
                "scripts.seed, or export again and re-run this import",
                file=sys.stderr,
            )
            lines.append("  users: none (no users.ndjson)")
        teams_file = args.source / TEAMS_FILE
        if teams_file.is_file():
            added, present = await import_teams(
                container,
                teams_file,
                batch_size=args.batch_size,
                restart=args.restart,
                bars=progress,
                note=note,
            )
            lines.append(f"  teams: {added} new, {present} present")
        seeder = Seeder(container, dry_run=False)
        for index, body in enumerate(read_declarations(declarations)):
            await seeder.apply(Record(f"{declarations}[{index}]", body))
        changes = seeder.changes
        lines.append(
            f"  collections: {plural(changes['collection created'], 'collection')} created"
            f", {changes['collection updated']} updated"
            f", {changes['collection unchanged']} unchanged"
        )
        parts, total = [], 0
        for spec in await container.collections.list_all():
            source = args.source / f"{spec.id}.ndjson"
            if source.exists():
                added, present = await import_file(
                    container,
                    spec,
                    source,
                    batch_size=args.batch_size,
                    restart=args.restart,
                    bars=progress,
                    note=note,
                )
                total += added
                parts.append(f"{spec.id}: {added} new, {present} present")
        lines.append(
            f"  documents: {plural(total, 'document')} imported ({'; '.join(parts) or 'none'})"
        )
        # The trash before the files: a trashed document's files come back with it.
        for which, name in (("versions", HISTORY_FILE), ("trash", TRASH_FILE)):
            if (args.source / name).is_file():
                added, present = await import_history(
                    container,
                    args.source / name,
                    which,  # type: ignore[arg-type]
                    batch_size=args.batch_size,
                    restart=args.restart,
                    bars=progress,
                    note=note,
                )
                label = "history" if which == "versions" else "trash"
                lines.append(f"  {label}: {added} new, {present} present")
        if (args.source / MANIFEST).is_file():
            files = await import_files(container, args.source, bars=progress)
            lines.append(
                f"  files: {files['created']} new, {files['updated']} replaced, "
                f"{files['unchanged']} unchanged"
            )
        lines.append(
            f"next: serve it with MONGODB_DB={database}; people sign in with their passwords "
            "(sessions were not copied)"
        )
        return "\n".join(lines)

    def entry() -> int:
        print(run(load))
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())

"""Import NDJSON documents (as written by scripts.export), batched and resumable.

    python -m scripts.import notes notes.ndjson         # into an existing collection
    python -m scripts.import --all backup/              # declarations + every collection

Documents keep their ids, owners, versions and timestamps. After each batch the byte
offset reached is saved beside the input (FILE.import-progress); if the import stops
(a crash, a bad line, Ctrl-C), running the same command again resumes there. Ids that
already exist are skipped, so nothing is ever imported twice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from app.collections.models import CollectionSpec
from app.container import Container
from app.documents.models import StoredDocument
from app.documents.schemas import DocId
from app.errors import AppError
from scripts.cli import ScriptError, guarded, progress, run
from scripts.export import COLLECTIONS_FILE
from scripts.seed import Record, Seeder


class Line(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: DocId
    owner: str | None
    version: int = Field(ge=1)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    data: dict[str, Any]

    def stored(self) -> StoredDocument:
        return StoredDocument(
            id=self.id,
            owner=self.owner,
            version=self.version,
            created_at=_millis(self.created_at),
            updated_at=_millis(self.updated_at),
            data=self.data,
        )


def _millis(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def checkpoint_path(source: Path) -> Path:
    return source.with_name(source.name + ".import-progress")


def _prefix_digest(source: Path, length: int) -> str:
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


def _save_checkpoint(source: Path, collection: str, offset: int) -> None:
    # Write then rename: a kill mid-write leaves the previous checkpoint, never half of one.
    path = checkpoint_path(source)
    partial = path.with_name(path.name + ".tmp")
    state = {"collection": collection, "offset": offset, "sha256": _prefix_digest(source, offset)}
    partial.write_text(json.dumps(state))
    os.replace(partial, path)


def _load_checkpoint(source: Path, collection: str) -> int:
    path = checkpoint_path(source)
    if not path.exists():
        return 0
    try:
        saved = json.loads(path.read_text())
        offset = int(saved.get("offset", 0))
    except (ValueError, AttributeError):
        raise ScriptError(f"{path} is unreadable; delete it or pass --restart") from None
    if saved.get("collection") != collection or saved.get("sha256") != _prefix_digest(
        source, offset
    ):
        raise ScriptError(
            f"{path} belongs to another import (other collection, or the imported part of "
            "the file changed); delete it or pass --restart"
        )
    return offset


async def import_file(
    container: Container, spec: CollectionSpec, source: Path, *, batch_size: int, restart: bool
) -> tuple[int, int]:
    marker = checkpoint_path(source)
    if restart:
        marker.unlink(missing_ok=True)
    offset = _load_checkpoint(source, spec.id)
    if offset:
        print(f"resuming {source} at byte {offset}", file=sys.stderr)
    inserted = skipped = 0
    size = source.stat().st_size
    with source.open("rb") as lines, progress(size, f"importing {spec.id}") as bar:
        lines.seek(offset)
        bar.update(offset)
        batch: list[StoredDocument] = []
        position = offset

        async def flush() -> None:
            nonlocal inserted, skipped, batch
            if batch:
                try:
                    added, present = await container.documents.import_documents(spec, batch)
                except AppError as exc:
                    raise ScriptError(
                        f"{source}: a batch ending at byte {position} was refused: {exc.detail}"
                    ) from None
                inserted, skipped = inserted + added, skipped + present
                batch = []
            _save_checkpoint(source, spec.id, position)

        for number, raw in enumerate(lines, 1):
            if raw.strip():
                try:
                    batch.append(Line.model_validate_json(raw).stored())
                except ValidationError as exc:
                    first = exc.errors()[0]
                    field = ".".join(str(p) for p in first["loc"]) or "line"
                    await flush()  # keep what came before; resume from this line
                    raise ScriptError(
                        f"{source}: line {number} after byte {position}: {field}: "
                        f"{first['msg']}. Fix it and run the same command to resume"
                    ) from None
            position += len(raw)
            bar.update(len(raw))
            if len(batch) >= batch_size:
                await flush()
        await flush()
    marker.unlink(missing_ok=True)
    return inserted, skipped


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
        if not args.all:
            if not args.source.is_file():
                raise ScriptError(f"{args.source} is not a file")
            spec = await container.collections.get(args.collection)
            added, present = await import_file(
                container, spec, args.source, batch_size=args.batch_size, restart=args.restart
            )
            return f"imported {added} documents into {spec.id} ({present} were already there)"
        declarations = args.source / COLLECTIONS_FILE
        if not declarations.is_file():
            raise ScriptError(f"{declarations} is missing: is {args.source} an export --all?")
        seeder = Seeder(container, dry_run=False)
        for index, body in enumerate(json.loads(declarations.read_text(encoding="utf-8"))):
            await seeder.apply(Record(f"{declarations}[{index}]", body))
        parts = []
        for spec in await container.collections.list_all():
            source = args.source / f"{spec.id}.ndjson"
            if source.exists():
                added, present = await import_file(
                    container, spec, source, batch_size=args.batch_size, restart=args.restart
                )
                parts.append(f"{spec.id}: {added} new, {present} present")
        return f"imported {args.source} ({'; '.join(parts) or 'no documents'})"

    def entry() -> int:
        print(run(load))
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())

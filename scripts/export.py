"""Export documents to NDJSON, streaming (constant memory however large the collection).

    python -m scripts.export notes -o notes.ndjson     # one collection ("-o -": stdout)
    python -m scripts.export --all -o backup/          # every collection, plus their
                                                       # declarations in collections.json

Each line is a document as the API shows it (id, owner, version, timestamps, data);
`scripts.import` loads it back unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from app.clock import rfc3339
from app.collections.models import CollectionSpec
from app.container import Container
from app.documents.models import StoredDocument
from scripts.cli import ScriptError, guarded, progress, run

COLLECTIONS_FILE = "collections.json"


def to_line(doc: StoredDocument) -> str:
    body = {
        "id": doc.id,
        "owner": doc.owner,
        "version": doc.version,
        "created_at": rfc3339(doc.created_at),
        "updated_at": rfc3339(doc.updated_at),
        "data": doc.data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"


def declaration(spec: CollectionSpec) -> dict[str, Any]:
    """A collection as a seed record, so `scripts.seed` or `scripts.import --all` recreate it."""
    return {
        "kind": "collection",
        "name": spec.id,
        "description": spec.description,
        "schema": spec.json_schema,
        "indexes": [i.model_dump() for i in spec.indexes],
        "access": spec.access.model_dump(mode="json"),
    }


async def export_one(container: Container, spec: CollectionSpec, out: IO[str]) -> int:
    total = await container.documents.count_all(spec)
    written = 0
    with progress(total, f"exporting {spec.id}") as bar:
        async for doc in container.documents.stream(spec):
            out.write(to_line(doc))
            written += 1
            bar.update()
    return written


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
                with Path(args.output).open("w", encoding="utf-8") as out:
                    count = await export_one(container, spec, out)
            return f"exported {count} documents of {spec.id} to {args.output}"
        folder = Path(args.output)
        if folder.exists() and not folder.is_dir():
            raise ScriptError(f"{folder} is a file; --all writes into a directory")
        folder.mkdir(parents=True, exist_ok=True)
        specs = await container.collections.list_all()
        (folder / COLLECTIONS_FILE).write_text(
            json.dumps([declaration(s) for s in specs], indent=2), encoding="utf-8"
        )
        counts = []
        for spec in specs:
            with (folder / f"{spec.id}.ndjson").open("w", encoding="utf-8") as out:
                counts.append(f"{spec.id}: {await export_one(container, spec, out)}")
        return f"exported {len(specs)} collections to {folder} ({', '.join(counts) or 'none'})"

    def entry() -> int:
        print(run(export), file=sys.stderr if args.output == "-" else sys.stdout)
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())

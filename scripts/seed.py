"""Load users, collections and documents from JSON or NDJSON fixture files, idempotently.

    make seed                                  # the demo data in fixtures/demo
    python -m scripts.seed FILE_OR_DIR ... [--dry-run]

Each record is an object with a "kind":
    {"kind": "user", "email": "...", "password": "...", "name": "...", "role": "user",
     "email_verified": true}
    {"kind": "collection", "name": "notes", "description": "...", "schema": {...},
     "indexes": [...], "access": {"read": "owner", "write": "owner"}}
    {"kind": "document", "collection": "notes", "id": "n1", "owner": "email", "data": {...}}
    {"kind": "file", "collection": "notes", "document": "n1", "name": "a.txt",
     "path": "files/a.txt", "content_type": "text/plain"}      (path: from the fixture file)

A .json file holds one record or a list of records; a .ndjson file one record a line.
Directories are read in file-name order. Records go through the same services as the
API, so every rule (schemas, access, name rules) holds; running twice changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.accounts.auth_schemas import Email, Name, Password
from app.accounts.models import Role
from app.accounts.principal import Principal
from app.backup.files import attach, sha256_of
from app.backup.format import declaration
from app.collections.models import CollectionSpec
from app.collections.schemas import CollectionIn, CollectionPatch
from app.container import Container
from app.documents.core import Preconditions
from app.documents.schemas import DocId
from app.errors import AppError
from scripts.cli import ScriptError, guarded, plural, progress, run

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"


class UserRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    email: Email
    password: Password
    name: Name
    role: Role = Role.USER
    # Seeded accounts are usually known addresses (demo, staff): say so to skip the mail.
    email_verified: bool = False


class DocumentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    collection: str
    id: DocId
    owner: Email
    data: dict[str, Any] = Field(default_factory=dict)


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    collection: str
    document: DocId
    name: str
    # Relative to the fixture file that names it.
    path: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Record:
    where: str  # file:line, for error messages
    body: dict[str, Any]
    # The folder of the fixture file (file records name their content relative to it).
    base: Path = Path(".")


def read_records(paths: list[Path]) -> Iterator[Record]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".json", ".ndjson"))
        elif path.exists():
            files.append(path)
        else:
            raise ScriptError(f"{path} does not exist")
    for file in files:
        if file.suffix == ".ndjson":
            with file.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    if line.strip():
                        where = f"{file}:{number}"
                        yield Record(where, _parse(line, where), file.parent)
        else:
            loaded = _parse(file.read_text(encoding="utf-8"), str(file))
            items = loaded if isinstance(loaded, list) else [loaded]
            for index, item in enumerate(items):
                yield Record(f"{file}[{index}]", item, file.parent)


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def _explain(where: str, exc: ValidationError | AppError) -> ScriptError:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "record"
        return ScriptError(f"{where}: {field}: {first['msg']}")
    fields = ", ".join(".".join(map(str, e.loc)) for e in exc.errors[:3])
    return ScriptError(f"{where}: {exc.detail}" + (f" ({fields})" if fields else ""))


class Seeder:
    def __init__(self, container: Container, *, dry_run: bool) -> None:
        self.c = container
        self.dry_run = dry_run
        self.changes: Counter[str] = Counter()
        self.admin = Principal(id="seed", role=Role.ADMIN, disabled=False, token_version=0)
        # A dry run writes nothing, so later records see what earlier ones would create.
        self.planned_users: set[str] = set()
        self.planned_collections: dict[str, CollectionSpec] = {}

    async def apply(self, record: Record) -> None:
        kind = record.body.get("kind") if isinstance(record.body, dict) else None

        async def file(body: dict[str, Any]) -> str:
            return await self.file(body, record.base)

        handlers = {
            "user": self.user,
            "collection": self.collection,
            "document": self.document,
            "file": file,
        }
        handler = handlers.get(str(kind))
        if handler is None:
            raise ScriptError(
                f"{record.where}: kind must be user, collection, document or file, not {kind!r}"
            )
        try:
            outcome = await handler(record.body)
        except (ValidationError, AppError) as exc:
            raise _explain(record.where, exc) from None
        self.changes[f"{kind} {outcome}"] += 1

    async def user(self, body: dict[str, Any]) -> str:
        wanted = UserRecord.model_validate(body)
        existing = await self.c.users.get_by_email(wanted.email)
        if existing is None:
            self.planned_users.add(wanted.email)
            if not self.dry_run:
                await self.c.auth.create_user(
                    email=wanted.email,
                    password=wanted.password,
                    name=wanted.name,
                    role=wanted.role,
                    email_verified=wanted.email_verified,
                )
            return "created"
        wanted_fields = {
            "name": wanted.name,
            "role": wanted.role,
            "email_verified": wanted.email_verified,
        }
        changes = {k: v for k, v in wanted_fields.items() if getattr(existing, k) != v}
        if not changes:
            return "unchanged"  # the password of an existing account is left alone
        if not self.dry_run:
            await self.c.user_service.admin_update(self.admin, str(existing.id), changes)
        return "updated"

    async def collection(self, body: dict[str, Any]) -> str:
        wanted = CollectionIn.model_validate({k: v for k, v in body.items() if k != "kind"})
        existing = await self.c.collections.repository.get(wanted.name)
        if existing is None:
            self.planned_collections[wanted.name] = self.c.collections.draft(wanted)
            if not self.dry_run:
                await self.c.collections.create(wanted)
            return "created"
        current = CollectionIn.model_validate(
            {k: v for k, v in declaration(existing).items() if k != "kind"}
        )
        if current == wanted:
            return "unchanged"
        if not self.dry_run:
            patch = CollectionPatch.model_validate(
                wanted.model_dump(by_alias=True, exclude={"name"})
            )
            await self.c.collections.update(wanted.name, patch)
        return "updated"

    async def document(self, body: dict[str, Any]) -> str:
        wanted = DocumentRecord.model_validate(body)
        service = self.c.documents
        owner = await self.c.users.get_by_email(wanted.owner)
        if owner is None and wanted.owner not in self.planned_users:
            raise ScriptError(f"owner {wanted.owner} is not a user; seed the user first")
        spec = self.planned_collections.get(wanted.collection) or await self.c.collections.get(
            wanted.collection
        )
        current = await service.find_any(spec, wanted.id)
        if current is not None and current.data == wanted.data:
            return "unchanged"
        if self.dry_run:
            service.check_data(spec, wanted.data)  # report what a real run would refuse
            return "created" if current is None else "updated"
        assert owner is not None
        principal = await self.c.users.get_principal(str(owner.id))
        assert principal is not None
        _, created = await service.put(
            wanted.collection, wanted.id, wanted.data, principal, Preconditions()
        )
        return "created" if created else "updated"

    async def file(self, body: dict[str, Any], base: Path) -> str:
        wanted = FileRecord.model_validate(body)
        source = (base / wanted.path).resolve()
        if not source.is_file():
            raise ScriptError(f"{source} does not exist (path is relative to the fixture file)")
        if self.dry_run:
            spec = self.planned_collections.get(wanted.collection)
            if spec is None:
                spec = await self.c.collections.get(wanted.collection)
            current = await self.c.files.store.current(
                wanted.collection, wanted.document, wanted.name
            )
            return "unchanged" if current and current.sha256 == sha256_of(source) else "created"
        return await attach(
            self.c, wanted.collection, wanted.document, wanted.name, wanted.content_type, source
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[DEMO],
        help="fixture files or directories (default: the demo data)",
    )
    parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)

    async def seed(container: Container) -> Counter[str]:
        records = list(read_records(args.paths))
        seeder = Seeder(container, dry_run=args.dry_run)
        with progress(len(records), "seeding") as bar:
            for record in records:
                await seeder.apply(record)
                bar.update()
        return seeder.changes

    def entry() -> int:
        changes = run(seed)
        changed = sum(n for key, n in changes.items() if not key.endswith("unchanged"))
        verb = "would change" if args.dry_run else "changed"
        parts = []
        for key, n in sorted(changes.items()):
            kind, _, outcome = key.partition(" ")  # "document created"
            parts.append(f"{plural(n, kind)} {outcome}")
        details = ", ".join(parts) or "no records"
        print(f"{verb} {plural(changed, 'record')} ({details})")
        return 0

    return guarded(entry)


if __name__ == "__main__":
    sys.exit(main())

"""Versions and trash of collections with `history: true` (the store: history.py).

Reading follows the document's rules: a document's versions are listed to whoever may
read the document now, each shown with the field rules applied; a trashed document to
whoever could read it as it was. Restoring is a write like any other: a version comes
back as a new version (update rule, field rules, schema and If-Match apply); a trashed
document comes back under its id with its files, its version one past the deleted one
(create rule, field rules and the current schema apply).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from bson import ObjectId

from app.accounts.principal import Principal
from app.collections.models import CollectionSpec
from app.documents import access
from app.documents.core import Preconditions
from app.documents.crud import DocumentCrud
from app.documents.history import HistoryStore
from app.documents.models import StoredDocument
from app.documents.repository import DocumentExistsError
from app.errors import Conflict, ErrorCode, Forbidden, NotFound, Unauthorized


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    updated_at: datetime
    # When a later version replaced it; None for the current version.
    replaced_at: datetime | None


@dataclass(frozen=True, slots=True)
class Trashed:
    doc: StoredDocument
    deleted_at: datetime
    purge_at: datetime
    cursor: str


def restored_data(_current: dict[str, Any], *, data: dict[str, Any]) -> dict[str, Any]:
    return data


class DocumentHistory(DocumentCrud):
    # Set by the container.
    history: HistoryStore | None = None

    async def _keeping(self, name: str) -> tuple[CollectionSpec, HistoryStore]:
        spec = await self.collections.get(name)
        if not spec.history or self.history is None:
            raise NotFound(
                f"Collection {name} keeps no history: declare it with history: true",
                code=ErrorCode.HISTORY_NOT_ENABLED,
            )
        return spec, self.history

    async def versions(
        self, name: str, doc_id: str, caller: Principal | None, *, below: int | None, limit: int
    ) -> list[VersionInfo]:
        """Newest first: the current version, then those it replaced (below `below`)."""
        _, store = await self._keeping(name)
        current = await self.get(name, doc_id, caller)
        found: list[VersionInfo] = []
        if below is None or current.version < below:
            found.append(VersionInfo(current.version, current.updated_at, None))
        older = (
            await store.version_page(
                name,
                doc_id,
                current.created_at,
                below=min(below, current.version) if below is not None else current.version,
                limit=limit - len(found),
            )
            if limit > len(found)
            else []
        )
        found += [
            VersionInfo(
                raw["v"],
                raw.get("doc", {}).get("updated_at", raw["replaced_at"]),
                raw["replaced_at"],
            )
            for raw in older
        ]
        return found

    async def _version(
        self, name: str, doc_id: str, version: int, caller: Principal | None
    ) -> tuple[access.Gate, StoredDocument, StoredDocument]:
        """(gate, the current document, that version as stored)."""
        spec, store = await self._keeping(name)
        gate = await self.gate(spec, caller)
        current = await self._repository(spec).get(doc_id, scope=gate.read_scope())
        if current is None:
            raise access.document_not_found(name, doc_id)
        if version == current.version:
            return gate, current, current
        raw = await store.version(name, doc_id, current.created_at, version)
        if raw is None:
            raise NotFound(
                f"{name}/{doc_id} has no version {version} kept (versions are kept "
                "HISTORY_RETENTION_DAYS)",
                code=ErrorCode.VERSION_NOT_FOUND,
            )
        return gate, current, StoredDocument.from_mongo(raw)

    async def version(
        self, name: str, doc_id: str, version: int, caller: Principal | None
    ) -> StoredDocument:
        gate, _, found = await self._version(name, doc_id, version, caller)
        return gate.shown(found)

    async def restore_version(
        self, name: str, doc_id: str, version: int, caller: Principal | None, pre: Preconditions
    ) -> StoredDocument:
        gate, _, found = await self._version(name, doc_id, version, caller)
        data = gate.shown(found).data
        return await self._modify(
            name, doc_id, caller, pre, partial(restored_data, data=data), weight=data
        )

    async def trash(
        self, name: str, caller: Principal | None, *, before: ObjectId | None, limit: int
    ) -> tuple[list[Trashed], str | None]:
        """Deleted documents the caller could read, newest deletion first; and where the
        next page starts (a page may hold fewer than `limit` when rules hide some)."""
        spec, store = await self._keeping(name)
        gate = await self.gate(spec, caller)
        gate.read_scope("list")  # 401 for an anonymous caller the list rule shows nothing
        rows = await store.trash_page(name, before=before, limit=limit + 1)
        # The list rule, as the documents' own list follows (it may be narrower than read).
        shown = [
            Trashed(gate.shown(doc), raw["deleted_at"], raw["purge_at"], str(raw["_id"]))
            for raw in rows[:limit]
            if gate.can_list(doc := StoredDocument.from_mongo(raw["doc"]))
        ]
        return shown, str(rows[limit - 1]["_id"]) if len(rows) > limit else None

    async def _trashed(
        self, spec: CollectionSpec, store: HistoryStore, gate: access.Gate, doc_id: str
    ) -> tuple[dict[str, Any], StoredDocument]:
        entry = await store.trashed(spec.id, doc_id)
        if entry is None or not gate.can_read(doc := StoredDocument.from_mongo(entry["doc"])):
            raise NotFound(f"{spec.id}/{doc_id} is not in the trash", code=ErrorCode.NOT_IN_TRASH)
        return entry, doc

    async def restore_trashed(
        self, name: str, doc_id: str, caller: Principal | None
    ) -> StoredDocument:
        spec, store = await self._keeping(name)
        gate = await self.gate(spec, caller)
        gate.writer()
        entry, old = await self._trashed(spec, store, gate, doc_id)
        data = await self._checked(spec, old.data)
        doc = replace(old, data=data, version=old.version + 1, updated_at=self.clock(), writes=())
        gate.check_create(doc)
        gate.check_field_writes(None, doc.data, new=doc)
        await self.check_references(gate, None, doc.data)
        try:
            await self._insert_new(spec, doc)
        except DocumentExistsError:
            raise Conflict(
                f"A document {name}/{doc_id} exists again: delete it first, or keep both",
                code=ErrorCode.DUPLICATE_KEY,
            ) from None
        await store.untrash(entry)
        return gate.shown(doc)

    async def purge_trashed(self, name: str, doc_id: str, caller: Principal | None) -> None:
        """Delete a trashed document and its files for good (admins)."""
        spec, store = await self._keeping(name)
        if caller is None:
            raise Unauthorized("Sign in first: send 'Authorization: Bearer <access token>'")
        if not caller.is_admin:
            raise Forbidden("Only admins empty the trash")
        gate = await self.gate(spec, caller)
        entry, _ = await self._trashed(spec, store, gate, doc_id)
        await store.purge(entry)

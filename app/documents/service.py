"""Business rules of documents: access, versions and preconditions, idempotency, queries."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, NoReturn

from app import strict_json
from app.accounts.principal import Principal
from app.clock import Clock
from app.collections.models import CollectionSpec
from app.collections.service import CollectionService
from app.collections.validation import validate_data
from app.config import Settings
from app.db import transaction
from app.db.client import Db
from app.documents import access
from app.documents.budget import json_cost
from app.documents.filters import InvalidFilter, compile_fields, compile_filter, compile_sort
from app.documents.idempotency import IdempotencyStore, Replay, request_fingerprint
from app.documents.json_patch import apply_json_patch, parse_json_patch
from app.documents.keyset import (
    after_clause,
    decode_cursor,
    encode_cursor,
    query_scope,
    sort_values,
)
from app.documents.merge_patch import merge_patch
from app.documents.models import StoredDocument
from app.documents.offload import Transform, WorkPool, checked, checked_each
from app.documents.operators import apply_update, parse_update
from app.documents.repository import DocumentExistsError, DocumentRepository
from app.documents.validation import DataLimits, check_data
from app.errors import AppError, ErrorCode, FieldError, Forbidden, ValidationFailed
from app.observability.metrics import WRITE_RETRIES
from app.pagination import CursorCodec

ANY = "*"
# Without If-Match a write re-reads and re-applies itself when another write slipped in
# between; this bounds the retries under extreme contention.
MAX_WRITE_ATTEMPTS = 10
# Counters and sets see crowds (a like button): more rounds before 409 write_conflict.
MAX_UPDATE_ATTEMPTS = 100
# Pauses between write retries (not a secret; its own instance, not the shared generator).
_JITTER = random.Random()  # noqa: S311


def _new_write_id() -> int:
    """A random id for one write (63 bits: a BSON int64)."""
    return secrets.randbits(63)


# A change whose request or stored document is bigger than this (JSON bytes, measured no
# further) is applied and checked in a worker process (offload.py); smaller ones are
# cheaper to do in place than to hand over.
OFFLOAD_BYTES = 64 * 1024


def _heavy(value: Any) -> bool:
    return value is not None and json_cost(value, OFFLOAD_BYTES) > OFFLOAD_BYTES


def _outcome(check: Callable[[], dict[str, Any]]) -> dict[str, Any] | AppError:
    try:
        return check()
    except AppError as exc:
        return exc


async def _landed(repo: DocumentRepository, doc_id: str, write_id: int) -> StoredDocument | None:
    """The document, if the write `write_id` is among its last writes (it landed)."""
    current = await repo.get(doc_id)
    return current if current is not None and write_id in current.writes else None


# `GET .../documents/count` is a route: no document may take that id.
RESERVED_IDS = frozenset({"count", "bulk", "bulk-update", "bulk-delete"})


class PreconditionFailed(AppError):
    code, status = ErrorCode.PRECONDITION_FAILED, 412


class PreconditionRequired(AppError):
    code, status = ErrorCode.PRECONDITION_REQUIRED, 428


class WriteConflict(AppError):
    code, status = ErrorCode.WRITE_CONFLICT, 409


class TooManyDocuments(AppError):
    code, status = ErrorCode.PAYLOAD_TOO_LARGE, 413


@dataclass(frozen=True, slots=True)
class Preconditions:
    """Parsed conditional-request headers. `if_match` None means the header was absent;
    an empty tuple means it named no version that can exist (so it never matches)."""

    if_match: tuple[int, ...] | Literal["*"] | None = None
    if_none_match_any: bool = False

    def matches(self, version: int) -> bool:
        return self.if_match is None or self.if_match == ANY or version in self.if_match

    def version_condition(self) -> dict[str, Any]:
        if self.if_match is None or self.if_match == ANY:
            return {}
        return {"version": {"$in": list(self.if_match)}}


@dataclass(slots=True)
class BulkItem:
    index: int
    status: int
    id: str | None = None
    version: int | None = None
    code: ErrorCode | None = None
    detail: str | None = None
    errors: list[FieldError] = field(default_factory=list)


# Document repositories kept at once (one per collection in use).
_MAX_REPOSITORIES = 1024


@dataclass(frozen=True, slots=True)
class Page:
    items: list[StoredDocument]
    next_cursor: str | None


def envelope(collection: str, doc: StoredDocument) -> dict[str, Any]:
    """The JSON shape clients see (as stored for idempotent replays)."""
    return {
        "id": doc.id,
        "collection": collection,
        "owner": doc.owner,
        "version": doc.version,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "data": doc.data,
    }


@dataclass
class BulkFailure:
    id: str
    status: int
    code: ErrorCode
    detail: str


@dataclass
class BulkChange:
    matched: int
    more: bool
    modified: int = 0
    failed: list[BulkFailure] = field(default_factory=list)


class DocumentService:
    def __init__(
        self,
        *,
        db: Db,
        settings: Settings,
        collections: CollectionService,
        idempotency: IdempotencyStore,
        cursors: CursorCodec,
        clock: Clock,
        work: WorkPool | None = None,
    ) -> None:
        # Told (collection, ids) once documents are deleted: their files go with them
        # (set by the container, as CollectionService.on_delete is; documents know no
        # file store).
        self.on_delete: Callable[[str, list[str]], Awaitable[object]] | None = None
        self.work = work or WorkPool(settings.work_processes)
        self.db = db
        self.settings = settings
        self.collections = collections
        self.idempotency = idempotency
        self.cursors = cursors
        self.clock = clock
        self._repositories: dict[str, DocumentRepository] = {}
        self.limits = DataLimits(
            max_bytes=settings.document_max_bytes, max_depth=settings.document_max_depth
        )

    # -- helpers ---------------------------------------------------------------------------

    def _repository(self, spec: CollectionSpec) -> DocumentRepository:
        # One per storage collection, built on first use: a repository holds only the
        # driver's collection handle and settings, so sharing it is safe.
        repository = self._repositories.get(spec.storage_name)
        if repository is None:
            if len(self._repositories) >= _MAX_REPOSITORIES:
                self._repositories.clear()
            repository = DocumentRepository(
                self.db, spec.storage_name, max_time_ms=self.settings.query_max_time_ms
            )
            self._repositories[spec.storage_name] = repository
        return repository

    async def find_any(self, spec: CollectionSpec, doc_id: str) -> StoredDocument | None:
        """A document whoever owns it (operator scripts; no caller to check)."""
        return await self._repository(spec).get(doc_id)

    def check_data(self, spec: CollectionSpec, data: Any) -> dict[str, Any]:
        """`data` if it may be stored in `spec` (shape, limits, schema), else the 4xx error."""
        check_data(data, self.limits)
        validator = self.collections.validator(spec)
        if validator is not None:
            validate_data(validator, data)
        assert isinstance(data, dict)
        return data

    async def _checked(
        self,
        spec: CollectionSpec,
        data: Any,
        transform: Transform | None = None,
        *,
        weight: Any = None,
    ) -> dict[str, Any]:
        """`transform(data)` (or `data`) if it may be stored in `spec`; a big one is worked
        out in a worker process, so the event loop keeps serving other requests."""
        if _heavy(weight) or _heavy(data):
            return await self.work.run(checked, data, transform, self.limits, spec.json_schema)
        return self.check_data(spec, data if transform is None else transform(data))

    def _new(self, doc_id: str, owner: Principal, data: dict[str, Any]) -> StoredDocument:
        now = self.clock()
        return StoredDocument(
            id=doc_id, owner=owner.id, version=1, created_at=now, updated_at=now, data=data
        )

    def _require_precondition(self, pre: Preconditions, *, creating_allowed: bool) -> None:
        if not self.settings.require_if_match or pre.if_match is not None:
            return
        if creating_allowed and pre.if_none_match_any:
            return
        raise PreconditionRequired(
            "This server requires If-Match (the document's ETag) on changes; GET the document first"
        )

    async def _explain_failed_write(
        self,
        spec: CollectionSpec,
        repo: DocumentRepository,
        caller: Principal | None,
        doc_id: str,
        pre: Preconditions,
    ) -> NoReturn:
        """A conditional write matched nothing: say why, exposing nothing unreadable."""
        existing = await repo.get(doc_id)
        if existing is None or not access.can_read(spec, caller, existing):
            raise access.document_not_found(spec.id, doc_id)
        if not access.can_write(spec, caller, existing):
            raise Forbidden(f"You may read {spec.id}/{doc_id} but not change it")
        if not pre.matches(existing.version):
            raise PreconditionFailed(
                f"Document {spec.id}/{doc_id} is at version {existing.version}, "
                f"not {_shown(pre.if_match)}"
            )
        raise PreconditionFailed(
            f"Document {spec.id}/{doc_id} changed while this request ran; retry"
        )

    # -- single documents ------------------------------------------------------------------

    async def create(
        self,
        name: str,
        data: Any,
        caller: Principal | None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[StoredDocument | None, Replay | None]:
        """A new document with a server-chosen id; or, for a repeated Idempotency-Key, the
        first response to replay."""
        spec = await self.collections.get(name)
        owner = access.check_create(spec, caller)
        data = await self._checked(spec, data)
        if idempotency_key is None:
            doc = self._new(new_document_id(), owner, data)
            await self._insert_new(spec, doc)
            return doc, None

        record = self.idempotency.record_id(owner.id, name, idempotency_key)
        replay = await self.idempotency.claim(record, request_fingerprint(data), now=self.clock())
        if replay is not None:
            return None, replay
        try:
            doc = self._new(new_document_id(), owner, data)
            await self._insert_new(spec, doc)
        except BaseException:
            await self.idempotency.release(record)
            raise
        await self.idempotency.complete(record, body=envelope(name, doc))
        return doc, None

    async def _insert_new(self, spec: CollectionSpec, doc: StoredDocument) -> None:
        """Insert a document under a fresh random id. The id can only clash with this very
        insert, landed once already when the driver retried it after a lost answer."""
        repo = self._repository(spec)
        doc.writes = (write_id := _new_write_id(),)
        try:
            await repo.insert(doc)
        except DocumentExistsError:
            if await _landed(repo, doc.id, write_id) is None:
                raise

    async def get(self, name: str, doc_id: str, caller: Principal | None) -> StoredDocument:
        spec = await self.collections.get(name)
        scope = access.read_scope(spec, caller)
        doc = await self._repository(spec).get(doc_id, scope=scope)
        if doc is None:
            raise access.document_not_found(name, doc_id)
        return doc

    async def put(
        self,
        name: str,
        doc_id: str,
        data: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> tuple[StoredDocument, bool]:
        """Replace a document's data, or create it with this id. Returns (doc, created)."""
        spec = await self.collections.get(name)
        owner = access.check_create(spec, caller)
        if doc_id in RESERVED_IDS:
            raise ValidationFailed(
                f"{doc_id} is reserved and cannot be a document id",
                errors=[FieldError(loc=["path", "doc_id"], msg="reserved id", type="reserved")],
            )
        self._require_precondition(pre, creating_allowed=True)
        replacement = await self._checked(spec, data)

        async def replace(_current: dict[str, Any]) -> dict[str, Any]:
            return replacement

        return await self._change(
            spec,
            caller,
            doc_id,
            pre,
            replace,
            create=lambda: self._new(doc_id, owner, replacement),
        )

    async def patch(
        self,
        name: str,
        doc_id: str,
        patch: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> StoredDocument:
        """Apply an RFC 7396 merge patch to `data`; never loses a concurrent update."""
        return await self._modify(
            name, doc_id, caller, pre, partial(merge_patch, patch=patch), weight=patch
        )

    async def _modify(
        self,
        name: str,
        doc_id: str,
        caller: Principal | None,
        pre: Preconditions,
        transform: Transform,
        *,
        attempts: int = MAX_WRITE_ATTEMPTS,
        weight: Any = None,
    ) -> StoredDocument:
        """Change an existing document's data by `transform` (a module-level function or
        a partial of one: it may run in a worker process), validated and written
        atomically (see `_change`); `weight` is what the request brought (its size
        decides where the work runs)."""
        spec = await self.collections.get(name)
        access.check_create(spec, caller)
        self._require_precondition(pre, creating_allowed=False)
        doc, _ = await self._change(
            spec,
            caller,
            doc_id,
            pre,
            lambda data: self._checked(spec, data, transform, weight=weight),
            attempts=attempts,
        )
        return doc

    async def _change(
        self,
        spec: CollectionSpec,
        caller: Principal | None,
        doc_id: str,
        pre: Preconditions,
        new_data: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        *,
        create: Callable[[], StoredDocument] | None = None,
        attempts: int = MAX_WRITE_ATTEMPTS,
    ) -> tuple[StoredDocument, bool]:
        """Read, check, and write conditioned on the version read: the precondition check
        and the version bump are one database operation. Without If-Match, a write that
        lost a race re-reads and re-applies itself (no update is ever lost), after a short
        random pause that grows with each loss, so a crowd of writers spreads out."""
        repo = self._repository(spec)
        # This write's id, whichever attempt lands it: see DocumentRepository.update_data.
        write_id = _new_write_id()
        inserting = False  # what the last attempt tried: an insert, or an update
        for attempt in range(attempts):
            if attempt:
                WRITE_RETRIES.inc()
                await asyncio.sleep(_JITTER.uniform(0, 0.002 * min(attempt, 25)))
            current = await repo.get(doc_id)
            if current is not None and write_id in current.writes:
                # An earlier attempt did land (its answer was lost, the driver's retry
                # found the version moved on): done, not to be applied twice.
                return current, inserting
            if current is None and create is not None and pre.if_match is None:
                doc = create()
                doc.writes = (write_id,)
                inserting = True
                try:
                    await repo.insert(doc)
                except DocumentExistsError:
                    if pre.if_none_match_any and not await _landed(repo, doc_id, write_id):
                        raise self._exists(spec, doc_id) from None
                    continue  # created meanwhile (or by us): the next read tells
                return doc, True
            inserting = False
            if current is None or not access.can_read(spec, caller, current):
                raise access.document_not_found(spec.id, doc_id)
            if pre.if_none_match_any:
                raise self._exists(spec, doc_id)
            if not access.can_write(spec, caller, current):
                raise Forbidden(f"You may read {spec.id}/{doc_id} but not change it")
            if not pre.matches(current.version):
                raise PreconditionFailed(
                    f"Document {spec.id}/{doc_id} is at version {current.version}, "
                    f"not {_shown(pre.if_match)}"
                )
            changed = await new_data(current.data)
            updated = await repo.update_data(current, changed, now=self.clock(), write_id=write_id)
            if updated is not None:
                return updated, False
            if pre.if_match is not None:
                landed = await _landed(repo, doc_id, write_id)
                if landed is not None:
                    return landed, False
                raise PreconditionFailed(
                    f"Document {spec.id}/{doc_id} changed while this request ran; "
                    "GET it again for the new ETag"
                )
        raise WriteConflict(f"Document {spec.id}/{doc_id} is changing too fast; retry")

    async def json_patch(
        self,
        name: str,
        doc_id: str,
        operations: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> StoredDocument:
        """Apply an RFC 6902 JSON Patch to `data` (app/documents/json_patch.py)."""
        patch = parse_json_patch(operations)
        return await self._modify(
            name,
            doc_id,
            caller,
            pre,
            partial(apply_json_patch, patch=patch, max_bytes=self.limits.max_bytes),
            weight=operations,
        )

    async def update(
        self,
        name: str,
        doc_id: str,
        body: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> StoredDocument:
        """Apply update operators (app/documents/operators.py) to `data`: validated like any
        write, atomic per document, retried (not lost) when another write comes first."""
        operations = parse_update(body)
        return await self._modify(
            name,
            doc_id,
            caller,
            pre,
            partial(apply_update, operations=operations, max_bytes=self.limits.max_bytes),
            attempts=MAX_UPDATE_ATTEMPTS,
            weight=body,
        )

    @staticmethod
    def _exists(spec: CollectionSpec, doc_id: str) -> PreconditionFailed:
        return PreconditionFailed(f"Document {spec.id}/{doc_id} already exists (If-None-Match: *)")

    async def delete(
        self, name: str, doc_id: str, caller: Principal | None, pre: Preconditions
    ) -> None:
        spec = await self.collections.get(name)
        self._require_precondition(pre, creating_allowed=False)
        conditions = {**self._change_scope(spec, caller), **pre.version_condition()}
        repo = self._repository(spec)
        if not await repo.delete(doc_id, conditions=conditions):
            await self._explain_failed_write(spec, repo, caller, doc_id, pre)
        if transaction.current() is None:  # a batch deletes files once it has committed
            await self.delete_files(name, [doc_id])

    async def delete_files(self, name: str, doc_ids: list[str]) -> None:
        """The files of deleted documents go with them."""
        if self.on_delete is not None:
            await self.on_delete(name, doc_ids)

    # -- many documents --------------------------------------------------------------------

    async def bulk_create(
        self, name: str, documents: Sequence[Any], caller: Principal | None
    ) -> list[BulkItem]:
        """Create many documents; each item succeeds or fails on its own."""
        spec = await self.collections.get(name)
        owner = access.check_create(spec, caller)
        limit = self.settings.bulk_max_documents
        if len(documents) > limit:
            raise TooManyDocuments(f"At most {limit} documents per bulk request")
        results: list[BulkItem] = []
        valid: list[StoredDocument] = []
        positions: list[int] = []
        if _heavy(documents):  # many or big items: checked in a worker process
            outcomes = await self.work.run(
                checked_each, list(documents), self.limits, spec.json_schema
            )
        else:
            outcomes = [_outcome(partial(self.check_data, spec, data)) for data in documents]
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, AppError):
                exc = outcome
                results.append(
                    BulkItem(
                        index,
                        exc.status,
                        code=exc.code,
                        detail=exc.detail,
                        errors=_relocate(exc.errors, index),
                    )
                )
                continue
            doc = self._new(new_document_id(), owner, outcome)
            valid.append(doc)
            positions.append(index)
            results.append(BulkItem(index, 201, id=doc.id, version=1))
        failures = await self._repository(spec).insert_many(valid)
        for position, error in failures.items():
            item = results[positions[position]]
            pattern = ", ".join((error.details or {}).get("keyPattern", {}) or ["a unique field"])
            item.status, item.id, item.version = 409, None, None
            item.code = ErrorCode.DUPLICATE_KEY
            item.detail = f"Another document already has this value for {pattern}"
        return results

    async def _changeable(
        self, spec: CollectionSpec, caller: Principal | None, parsed_filter: Any, limit: int
    ) -> tuple[list[str], bool]:
        """Ids (creation order) of up to `limit` documents matching the filter that the
        caller may read and change; and whether more match."""
        query = self._compile_query(
            spec, caller, parsed_filter, scope=self._change_scope(spec, caller)
        )
        rows = await self._repository(spec).find_page(
            query, sort=compile_sort(""), limit=limit + 1, projection={"_id": 1}
        )
        ids = [row["_id"] for row in rows]
        return ids[:limit], len(ids) > limit

    def _bulk_limit(self, limit: int | None) -> int:
        cap = self.settings.bulk_max_documents
        if limit is not None and not 1 <= limit <= cap:
            raise ValidationFailed(
                f"limit is 1 to {cap} (BULK_MAX_DOCUMENTS)",
                errors=[FieldError(loc=["body", "limit"], msg=f"1 to {cap}", type="limit")],
            )
        return limit or cap

    async def bulk_update(
        self,
        name: str,
        filter_: Any,
        body: Any,
        caller: Principal | None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> BulkChange:
        """Apply update operators to each matching document the caller may change, each
        atomically (validated, version bumped); not all-or-nothing (that is /v1/batch)."""
        operations = parse_update(body)
        spec = await self.collections.get(name)
        access.check_create(spec, caller)
        ids, more = await self._changeable(spec, caller, filter_, self._bulk_limit(limit))
        result = BulkChange(matched=len(ids), more=more)
        if dry_run:
            return result
        transform = partial(apply_update, operations=operations, max_bytes=self.limits.max_bytes)

        async def updated(data: dict[str, Any]) -> dict[str, Any]:
            return await self._checked(spec, data, transform, weight=body)

        for doc_id in ids:
            try:
                await self._change(
                    spec, caller, doc_id, Preconditions(), updated, attempts=MAX_UPDATE_ATTEMPTS
                )
                result.modified += 1
            except AppError as exc:
                if exc.status == 404:  # deleted meanwhile: no longer matches
                    result.matched -= 1
                    continue
                result.failed.append(BulkFailure(doc_id, exc.status, exc.code, exc.detail))
        return result

    async def bulk_delete(
        self,
        name: str,
        filter_: Any,
        caller: Principal | None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> BulkChange:
        spec = await self.collections.get(name)
        access.check_create(spec, caller)
        ids, more = await self._changeable(spec, caller, filter_, self._bulk_limit(limit))
        result = BulkChange(matched=len(ids), more=more)
        if dry_run or not ids:
            return result
        repo = self._repository(spec)
        result.modified = await repo.delete_ids(ids, conditions=self._change_scope(spec, caller))
        remaining = {doc.id for doc in await repo.get_many(ids)}
        await self.delete_files(name, [i for i in ids if i not in remaining])
        return result

    @staticmethod
    def _change_scope(spec: CollectionSpec, caller: Principal | None) -> dict[str, Any]:
        """The documents `caller` may change: both scopes, so a document the caller may
        not read stays untouched (and looks absent) even where the write rule allows."""
        return {**access.write_scope(spec, caller), **access.read_scope(spec, caller)}

    def _compile_query(
        self,
        spec: CollectionSpec,
        caller: Principal | None,
        parsed_filter: Any,
        *,
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The client's filter limited to `scope` (default: what `caller` may read)."""
        if scope is None:
            scope = access.read_scope(spec, caller)
        client = compile_filter(parsed_filter) if parsed_filter is not None else {}
        parts = [p for p in (client, scope) if p]
        return parts[0] if len(parts) == 1 else ({"$and": parts} if parts else {})

    async def list_page(
        self,
        name: str,
        caller: Principal | None,
        *,
        filter_raw: str | None,
        sort_raw: str | None,
        fields_raw: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        spec = await self.collections.get(name)
        parsed_filter = parse_filter(filter_raw) if filter_raw else None
        query = self._compile_query(spec, caller, parsed_filter)
        sort = compile_sort(sort_raw or "")
        projection = compile_fields(fields_raw) if fields_raw else None
        scope = f"{name}:{query_scope(parsed_filter, sort)}"
        if cursor:
            after = after_clause(sort, decode_cursor(self.cursors, cursor, scope))
            query = {"$and": [query, after]} if query else after
        repo = self._repository(spec)
        rows = await repo.find_page(query, sort=sort, limit=limit + 1, projection=projection)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            if projection is not None:
                # The page may not carry every sort key; read them for the last row only.
                last = await repo.fields_of(last["_id"], [path for path, _ in sort]) or last
            next_cursor = encode_cursor(self.cursors, sort_values(last, sort), scope)
        return Page(items=[StoredDocument.from_mongo(row) for row in rows], next_cursor=next_cursor)

    def stream(
        self, spec: CollectionSpec, *, batch_size: int = 1000
    ) -> AsyncIterator[StoredDocument]:
        """Every document of a collection in id order, fetched in batches (exports)."""
        return self._repository(spec).stream(batch_size=batch_size)

    async def count_all(self, spec: CollectionSpec) -> int:
        return await self._repository(spec).count({})

    async def import_documents(
        self, spec: CollectionSpec, docs: list[StoredDocument]
    ) -> tuple[int, int]:
        """Insert documents exactly as given (ids, owners, versions, timestamps kept).

        Returns (inserted, already present). Ids that exist are left as they are, so a
        repeated or resumed import changes nothing twice. Each document's data must pass
        the same checks as an API write; a unique-index clash raises 409.
        """
        for doc in docs:
            self.check_data(spec, doc.data)
        return await self._repository(spec).insert_many_keep_existing(docs)

    async def delete_owned_by(self, user_id: str) -> int:
        """Delete every document `user_id` owns, in every collection (account deletion)."""
        deleted = 0
        for spec in await self.collections.list_all():
            repo = self._repository(spec)
            owned = await repo.ids_owned_by(user_id)
            deleted += await repo.delete_owned_by(user_id)
            await self.delete_files(spec.id, owned)
        return deleted

    async def count(self, name: str, caller: Principal | None, filter_raw: str | None) -> int:
        spec = await self.collections.get(name)
        parsed_filter = parse_filter(filter_raw) if filter_raw else None
        return await self._repository(spec).count(self._compile_query(spec, caller, parsed_filter))


def new_document_id() -> str:
    """A server-chosen id: 128 bits from the OS's CSPRNG, URL-safe (22 characters), so one
    id tells nothing about any other (ObjectIds are a timestamp plus a counter)."""
    return secrets.token_urlsafe(16)


def parse_filter(raw: str) -> Any:
    try:
        return strict_json.loads(raw)
    except ValueError as exc:
        raise InvalidFilter(f"filter is not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the parser goes: far past the depth limit anyway
        raise InvalidFilter("filter nests too deeply") from None


def _relocate(errors: list[FieldError], index: int) -> list[FieldError]:
    return [
        FieldError(loc=["documents", index, *e.loc[1:]], msg=e.msg, type=e.type) for e in errors
    ]


def _shown(if_match: tuple[int, ...] | Literal["*"] | None) -> str:
    if isinstance(if_match, tuple):
        return " or ".join(str(v) for v in if_match) or "any version that can exist"
    return str(if_match)

"""What every part of the document service shares: settings, repositories, checks.

The service is split by what callers do (`crud.py`, `bulk.py`, `queries.py`,
`maintenance.py`); `service.py` puts them together as `DocumentService`.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app import strict_json
from app.accounts.principal import Principal
from app.clock import Clock, rfc3339
from app.collections.models import CollectionSpec
from app.collections.service import CollectionService
from app.collections.validation import validate_data
from app.config import Settings
from app.db.client import Db
from app.documents import access, rules
from app.documents.budget import json_cost
from app.documents.filters import InvalidFilter, compile_filter
from app.documents.idempotency import IdempotencyStore
from app.documents.models import StoredDocument
from app.documents.offload import Transform, WorkPool, checked
from app.documents.repository import DocumentRepository
from app.documents.search import Indexer
from app.documents.validation import DataLimits, check_data
from app.errors import AppError, ErrorCode, Forbidden
from app.pagination import CursorCodec

ANY = "*"
# Without If-Match a write re-reads and re-applies itself when another write slipped in
# between; this bounds the retries under extreme contention.
MAX_WRITE_ATTEMPTS = 10
# Counters and sets see crowds (a like button): more rounds before 409 write_conflict.
MAX_UPDATE_ATTEMPTS = 100
# Pauses between write retries (not a secret; its own instance, not the shared generator).
WRITE_JITTER = random.Random()  # noqa: S311


def new_write_id() -> int:
    """A random id for one write (63 bits: a BSON int64)."""
    return secrets.randbits(63)


# A change whose request or stored document is bigger than this (JSON bytes, measured no
# further) is applied and checked in a worker process (offload.py); smaller ones are
# cheaper to do in place than to hand over.
OFFLOAD_BYTES = 64 * 1024


def is_heavy(value: Any) -> bool:
    return value is not None and json_cost(value, OFFLOAD_BYTES) > OFFLOAD_BYTES


def check_outcome(check: Callable[[], dict[str, Any]]) -> dict[str, Any] | AppError:
    try:
        return check()
    except AppError as exc:
        return exc


async def write_landed(
    repo: DocumentRepository, doc_id: str, write_id: int
) -> StoredDocument | None:
    """The document, if the write `write_id` is among its last writes (it landed)."""
    current = await repo.get(doc_id)
    return current if current is not None and write_id in current.writes else None


# `GET .../documents/count` is a route: no document may take that id.
RESERVED_IDS = frozenset({"count", "bulk", "bulk-update", "bulk-delete", "aggregate"})


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


# Document repositories kept at once (one per collection in use).
MAX_REPOSITORIES = 1024


@dataclass(frozen=True, slots=True)
class Page:
    items: list[StoredDocument]
    next_cursor: str | None
    # Each item's `expanded`, by id, when the read asked for `expand`.
    expanded: dict[str, dict[str, Any]] | None = None


def json_envelope(collection: str, doc: StoredDocument) -> dict[str, Any]:
    """The JSON shape clients see, ready to encode (dates as RFC 3339 text)."""
    return {
        "id": doc.id,
        "collection": collection,
        "owner": doc.owner,
        "team": doc.team,
        "version": doc.version,
        "created_at": rfc3339(doc.created_at),
        "updated_at": rfc3339(doc.updated_at),
        "data": doc.data,
    }


def row_envelope(collection: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """json_envelope of a stored row as it came from the database (no StoredDocument in
    between: for many documents shown whole, e.g. expanded references)."""
    return {
        "id": row["_id"],
        "collection": collection,
        "owner": row.get("owner"),
        "team": row.get("team"),
        "version": row["version"],
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "data": row.get("data", {}),
    }


def envelope(collection: str, doc: StoredDocument) -> dict[str, Any]:
    """The JSON shape clients see (as stored for idempotent replays)."""
    return {
        "id": doc.id,
        "collection": collection,
        "owner": doc.owner,
        "team": doc.team,
        "version": doc.version,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "data": doc.data,
    }


class DocumentCore:
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
        # A user's teams and their role in each (TeamService.roles_of), for rules that
        # name @user.teams, @team.role or shares; set by the container.
        self.team_roles: Callable[[str], Awaitable[Mapping[str, str]]] | None = None
        self.work = work or WorkPool(settings.work_processes)
        self.db = db
        self.settings = settings
        self.collections = collections
        self.idempotency = idempotency
        self.cursors = cursors
        self.clock = clock
        self._repositories: dict[tuple[str, Any], DocumentRepository] = {}
        self.limits = DataLimits(
            max_bytes=settings.document_max_bytes, max_depth=settings.document_max_depth
        )

    # -- helpers ---------------------------------------------------------------------------

    def _repository(self, spec: CollectionSpec) -> DocumentRepository:
        # One per storage collection, built on first use: a repository holds only the
        # driver's collection handle and settings, so sharing it is safe.
        # Full-text search changes what a write stores: a declaration with other search
        # fields gets a repository of its own.
        search = spec.search
        key = (spec.storage_name, None if search is None else (*search.fields, search.language))
        repository = self._repositories.get(key)
        if repository is None:
            if len(self._repositories) >= MAX_REPOSITORIES:
                self._repositories.clear()
            repository = DocumentRepository(
                self.db,
                spec.storage_name,
                max_time_ms=self.settings.query_max_time_ms,
                indexer=None if search is None else Indexer(search.fields, search.language),
            )
            self._repositories[key] = repository
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
        if is_heavy(weight) or is_heavy(data):
            return await self.work.run(checked, data, transform, self.limits, spec.json_schema)
        return self.check_data(spec, data if transform is None else transform(data))

    def _new(
        self, doc_id: str, owner: Principal, data: dict[str, Any], team: str | None = None
    ) -> StoredDocument:
        now = self.clock()
        return StoredDocument(
            id=doc_id,
            owner=owner.id,
            version=1,
            created_at=now,
            updated_at=now,
            data=data,
            team=team,
        )

    async def delete_files(self, name: str, doc_ids: list[str]) -> None:
        """The files of deleted documents go with them."""
        if self.on_delete is not None:
            await self.on_delete(name, doc_ids)

    async def gate(self, spec: CollectionSpec, principal: Principal | None) -> access.Gate:
        """`principal` in front of `spec`: what its rules let them read and write."""
        policy = access.policy(spec)
        if principal is None:
            return access.Gate(spec, None, policy, rules.Caller(None))
        teams: Mapping[str, str] = {}
        if policy.uses_teams and not principal.is_admin and self.team_roles is not None:
            teams = await self.team_roles(principal.id)
        return access.Gate(
            spec,
            principal,
            policy,
            # An admin without the second factor ADMIN_MFA_REQUIRED asks for is a user.
            rules.Caller(principal.id, "admin" if principal.is_admin else "user", teams),
        )

    @staticmethod
    def _compile_query(
        gate: access.Gate, parsed_filter: Any, scope: dict[str, Any], sort: Any = ()
    ) -> dict[str, Any]:
        return limited_query(gate, parsed_filter, scope, sort)


def limited_query(
    gate: access.Gate, parsed_filter: Any, scope: dict[str, Any], sort: Any = ()
) -> dict[str, Any]:
    """The client's filter limited to `scope`; refused when it (or the sort) names a
    field the caller may not read everywhere (lists, counts, bulk changes, streams)."""
    client = compile_filter(parsed_filter) if parsed_filter is not None else {}
    named = [*filter_paths(client), *(path for path, _ in sort)]
    hidden = gate.unfilterable(named)
    if hidden is not None:
        raise Forbidden(
            f"{hidden} is readable only in some documents: it cannot filter or sort",
            code=ErrorCode.FIELD_FORBIDDEN,
        )
    return access.both(client, scope)


def filter_paths(query: Any) -> Iterator[str]:
    """The stored paths a compiled filter reads."""
    if isinstance(query, dict):
        for key, value in query.items():
            if key.startswith("$"):
                yield from filter_paths(value)
            else:
                yield key
    elif isinstance(query, list):
        for part in query:
            yield from filter_paths(part)


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

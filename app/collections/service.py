"""Business rules of collection declarations: names, schemas, indexes, access."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from jsonschema import Draft202012Validator

from app.clock import Clock
from app.collections.models import Access, CollectionSpec, IndexSpec, SearchSpec
from app.collections.repository import (
    CollectionExistsError,
    CollectionRepository,
    DeclarationBusy,
    IndexBuildError,
    internal_index_like,
)
from app.collections.schemas import AccessIn, CollectionIn, CollectionPatch, IndexIn, SearchIn
from app.collections.validation import check_schema, compile_validator
from app.documents import rules
from app.documents.relations import Ref, ref_problems, refs_of
from app.errors import Conflict, ErrorCode, FieldError, NotFound, ValidationFailed

log = logging.getLogger("docstore.collections")

# Names of internal MongoDB collections and words that would confuse people.
RESERVED_NAMES = frozenset(
    {"users", "sessions", "rate_limits", "collections", "idempotency_keys", "system", "admin"}
)
ENVELOPE_INDEX_PATHS = frozenset({"id", "owner", "version", "created_at", "updated_at"})
TTL_PATHS = frozenset({"created_at", "updated_at"})
_DATA_PATH = re.compile(r"^data(\.[^.$\x00][^.\x00]*)+$")


def _expires(spec: CollectionSpec) -> bool:
    """Whether the collection's documents expire (a TTL index among its indexes)."""
    return any(index.expire_after_seconds is not None for index in spec.indexes)


def collection_not_found(name: str) -> NotFound:
    return NotFound(f"Collection {name} does not exist", code=ErrorCode.COLLECTION_NOT_FOUND)


def _index_problems(indexes: list[IndexIn]) -> list[FieldError]:
    problems: list[FieldError] = []

    def problem(i: int, where: str, msg: str) -> None:
        problems.append(FieldError(loc=["body", "indexes", i, where], msg=msg, type="index"))

    names: set[str] = set()
    keys: dict[tuple[str, ...], str] = {}
    for i, index in enumerate(indexes):
        if index.name in names:
            problem(i, "name", f"index name {index.name} is used twice")
        names.add(index.name)
        # MongoDB refuses a second index on the same keys under another name.
        same = keys.setdefault(tuple(index.fields), index.name)
        if same != index.name:
            problem(i, "fields", f"index {same} has the same fields; declare each key once")
        paths = [f.removeprefix("-") for f in index.fields]
        for path in paths:
            if path not in ENVELOPE_INDEX_PATHS and not _DATA_PATH.match(path):
                problem(i, "fields", f"{path} is not an indexable path (data.<field> or envelope)")
        if len(set(paths)) != len(paths):
            problem(i, "fields", "a field appears twice")
        elif not problems and internal_index_like(IndexSpec(**index.model_dump())):
            problem(
                i,
                "fields",
                "every collection is indexed on (created_at, id) and (owner, created_at, id) "
                "already; declare a different one",
            )
        if index.expire_after_seconds is not None and (
            len(paths) != 1 or paths[0] not in TTL_PATHS
        ):
            problem(
                i,
                "expire_after_seconds",
                "expiry needs exactly one field: created_at or updated_at",
            )
    return problems


def _access_problems(declared: AccessIn) -> list[FieldError]:
    """Every rule that cannot be declared, each with where and why."""
    problems: list[FieldError] = []

    def check(text: str | None, *loc: str | int) -> None:
        if text is None:
            return
        try:
            rules.parse(text)
        except rules.RuleError as exc:
            problems.append(FieldError(loc=["body", "access", *loc], msg=str(exc), type="rule"))

    for action in ("list", "read", "create", "update", "delete"):
        check(getattr(declared.rules, action), "rules", action)
    seen: set[str] = set()
    for i, field in enumerate(declared.fields):
        if field.read is None and field.write is None:
            problems.append(
                FieldError(
                    loc=["body", "access", "fields", i],
                    msg="a field rule needs a read rule, a write rule or both",
                    type="rule",
                )
            )
        if field.path in seen:
            problems.append(
                FieldError(
                    loc=["body", "access", "fields", i, "path"],
                    msg=f"{field.path} has two field rules",
                    type="rule",
                )
            )
        seen.add(field.path)
        check(field.read, "fields", i, "read")
        check(field.write, "fields", i, "write")
    return problems


def check_search(declared: SearchIn | None) -> None:
    if declared is None:
        return
    seen: set[str] = set()
    for index, path in enumerate(declared.fields):
        if path in seen:
            raise ValidationFailed(
                f"{path} is listed twice in search.fields",
                errors=[
                    FieldError(
                        loc=["body", "search", "fields", index], msg="listed twice", type="unique"
                    )
                ],
            )
        seen.add(path)


def check_access(declared: AccessIn) -> None:
    problems = _access_problems(declared)
    if problems:
        raise ValidationFailed(
            "The access rules are not valid: " + problems[0].msg, errors=problems
        )


class CollectionService:
    def __init__(self, *, repository: CollectionRepository, clock: Clock) -> None:
        self.on_delete: Callable[[str], Awaitable[object]] | None = None
        self.repository = repository
        self.clock = clock
        # Compiled validators, keyed by (name, updated_at): a change makes a new key.
        self._validators: dict[tuple[str, Any], Draft202012Validator] = {}
        # The references of each declaration, keyed like the validators.
        self._refs: dict[tuple[str, Any], list[Ref]] = {}

    def _check(self, schema: dict[str, Any] | None, indexes: list[IndexIn]) -> None:
        if schema is not None:
            check_schema(schema)
            wrong = ref_problems(schema)
            if wrong:
                raise ValidationFailed(
                    "The schema's references are not valid: " + wrong[0].msg, errors=wrong
                )
        problems = _index_problems(indexes)
        if problems:
            raise ValidationFailed(
                "The index declarations are not valid: " + problems[0].msg, errors=problems
            )

    def draft(self, body: CollectionIn) -> CollectionSpec:
        """The declaration `body` describes, checked but not stored."""
        if body.name in RESERVED_NAMES:
            raise ValidationFailed(
                f"{body.name} is a reserved name",
                errors=[FieldError(loc=["body", "name"], msg="reserved name", type="reserved")],
            )
        self._check(body.json_schema, body.indexes)
        check_access(body.access)
        check_search(body.search)
        now = self.clock()
        return CollectionSpec(
            id=body.name,
            description=body.description,
            json_schema=body.json_schema,
            indexes=[IndexSpec(**i.model_dump()) for i in body.indexes],
            access=Access(**body.access.model_dump()),
            search=SearchSpec(**body.search.model_dump()) if body.search else None,
            history=body.history,
            created_at=now,
            updated_at=now,
        )

    async def _check_expiry(self, spec: CollectionSpec) -> None:
        """A TTL index deletes documents without asking what references them: no
        declared relation (x-on-delete) may name a collection whose documents expire
        (422), or its restrict, set_null and cascade would silently not happen."""
        problems: list[FieldError] = []
        if _expires(spec):
            for source, ref in await self._relations_from_others(spec):
                problems.append(
                    FieldError(
                        loc=["body", "indexes"],
                        msg=f"{source.id}.{ref.name} declares what deleting these "
                        f"documents does (x-on-delete: {ref.on_delete}), which expiry "
                        "would skip",
                        type="expiry",
                    )
                )
        for ref in refs_of(spec.json_schema).values():  # (as changed: not the cached ones)
            if ref.on_delete is None or ref.target == spec.id:
                continue
            target = await self.repository.get(ref.target, fresh=True)
            if target is not None and _expires(target):
                problems.append(
                    FieldError(
                        loc=["body", "schema"],
                        msg=f"{ref.name}: documents of {ref.target} expire (a TTL index), "
                        "which no x-on-delete can follow: make it a plain reference",
                        type="expiry",
                    )
                )
        if problems:
            raise ValidationFailed(
                "Expiry and declared relations do not mix: " + problems[0].msg, errors=problems
            )

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Changes to declarations one at a time (in any process): their checks across
        collections (declared relations, expiry) read what no other change is writing."""
        try:
            async with self.repository.declaring(self.clock):
                yield
        except DeclarationBusy:
            raise Conflict(
                "Another change to the collections' declarations is still under way; "
                "try again in a few seconds",
                code=ErrorCode.WRITE_CONFLICT,
            ) from None

    async def create(self, body: CollectionIn) -> CollectionSpec:
        spec = self.draft(body)
        async with self._turn():
            await self._check_expiry(spec)
            try:
                await self.repository.insert(spec)
            except CollectionExistsError:
                raise Conflict(
                    f"Collection {body.name} already exists", code=ErrorCode.COLLECTION_EXISTS
                ) from None
            try:
                await self.repository.sync_indexes(spec)
            except BaseException:
                await self.repository.delete(spec)
                raise
        return spec

    async def get(self, name: str, *, fresh: bool = False) -> CollectionSpec:
        spec = await self.repository.get(name, fresh=fresh)
        if spec is None:
            raise collection_not_found(name)
        return spec

    async def list_all(self) -> list[CollectionSpec]:
        return await self.repository.list_all()

    async def refs_of(self, spec: CollectionSpec) -> list[Ref]:
        """The references `spec`'s schema declares (parsed once per version of it)."""
        key = (spec.id, spec.updated_at)
        refs = self._refs.get(key)
        if refs is None:
            if len(self._refs) > 1000:
                self._refs.clear()
            refs = self._refs[key] = list(refs_of(spec.json_schema).values())
        return refs

    async def _relations_from_others(
        self, spec: CollectionSpec
    ) -> list[tuple[CollectionSpec, Ref]]:
        """The declared relations (x-on-delete) other collections hold to `spec`."""
        return [
            (source, ref)
            for source, ref in await self.referrers(spec.id, fresh=True)
            if source.id != spec.id
        ]

    async def referrers(
        self, target: str, *, fresh: bool = False
    ) -> list[tuple[CollectionSpec, Ref]]:
        """The references to `target` that say what its deletes do (x-on-delete); `fresh`
        reads the declarations rather than the read cache (a change's checks, in its turn)."""
        found = []
        listed = self.repository.list_all() if fresh else self.repository.list_all_cached()
        for spec in await listed:
            refs = await self.refs_of(spec)
            found += [(spec, r) for r in refs if r.target == target and r.on_delete is not None]
        return found

    async def update(self, name: str, patch: CollectionPatch) -> CollectionSpec:
        async with self._turn():
            spec = await self.get(name, fresh=True)
            given = patch.model_fields_set
            changed: CollectionSpec = spec.model_copy(deep=True)
            if "description" in given and patch.description is not None:
                changed.description = patch.description
            if "json_schema" in given:
                changed.json_schema = patch.json_schema
            if "access" in given and patch.access is not None:
                check_access(patch.access)
                changed.access = Access(**patch.access.model_dump())
            indexes_in = patch.indexes if "indexes" in given and patch.indexes is not None else None
            self._check(
                changed.json_schema if "json_schema" in given else None,
                indexes_in or [],
            )
            if "history" in given and patch.history is not None:
                changed.history = patch.history
            if "search" in given:
                check_search(patch.search)
                changed.search = SearchSpec(**patch.search.model_dump()) if patch.search else None
            if indexes_in is not None:
                changed.indexes = [IndexSpec(**i.model_dump()) for i in indexes_in]
            if indexes_in is not None or "json_schema" in given:
                await self._check_expiry(changed)
            if indexes_in is not None or changed.search != spec.search:
                try:
                    await self.repository.sync_indexes(changed)
                except IndexBuildError:
                    await self.repository.sync_indexes(spec)  # put the old indexes back
                    raise Conflict(
                        "Existing documents have duplicate values for a new unique index; "
                        "fix them first",
                        code=ErrorCode.DUPLICATE_KEY,
                    ) from None
            changed.updated_at = self.clock()
            await self.repository.replace(changed)
            return changed

    async def delete(self, name: str) -> None:
        async with self._turn():
            spec = await self.get(name, fresh=True)
            # A reference that says what deletes do (x-on-delete) is a declared relation: as
            # PocketBase (and a foreign key in SQL) does, the collection it names stays while
            # another collection holds one. Plain references may dangle (they expand as
            # not_found); a collection's references to itself go with it.
            if others := await self._relations_from_others(spec):
                source, ref = others[0]
                raise Conflict(
                    f"Collection {source.id} references {spec.id} through {ref.name} "
                    f"(x-on-delete: {ref.on_delete}): take that from its schema "
                    f"(PATCH /v1/collections/{source.id}) or delete {source.id} first",
                    code=ErrorCode.REFERENCE_RESTRICTED,
                )
            await self.repository.delete(spec)
        if self.on_delete is not None:  # the documents' files go with them
            await self.on_delete(name)

    async def ensure_all_indexes(self) -> None:
        """Re-ensure every declared index (start-up)."""
        await self.repository.ensure_locks()
        for spec in await self.repository.list_all():
            try:
                await self.repository.sync_indexes(spec)
            except IndexBuildError as exc:
                log.error("cannot build an index", extra={"collection": spec.id, "error": str(exc)})

    def validator(self, spec: CollectionSpec) -> Draft202012Validator | None:
        if spec.json_schema is None:
            return None
        key = (spec.id, spec.updated_at)
        validator = self._validators.get(key)
        if validator is None:
            if len(self._validators) > 1000:
                self._validators.clear()
            validator = self._validators[key] = compile_validator(spec.json_schema)
        return validator

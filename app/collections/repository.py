"""The only door from the collections domain to MongoDB: declarations and their indexes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure, PyMongoError

from app.clock import Clock
from app.collections.models import CollectionSpec, IndexSpec
from app.db.change_feed import ReadCache
from app.db.client import Db, keep_change_images
from app.db.leases import take_lease
from app.documents.access import rule_fields
from app.documents.relations import refs_of

log = logging.getLogger("docstore.collections")

# Indexes every document collection gets, whatever is declared. User index names match
# ^[a-z]..., so the leading underscore keeps these apart.
_INTERNAL_INDEXES = [
    # Listing in the default order (creation, then id: ids are random), in full and
    # owner-scoped ("owner" read access), served by an index.
    IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="_created"),
    IndexModel(
        [("owner", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="_owner"
    ),
]
# Only for collections whose access rules read these fields (team and sharing rules):
# the rule's filter, e.g. {"team": {"$in": [...]}}, is then served by an index.
_RULE_INDEXES = {
    "team": IndexModel(
        [("team", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="_team"
    ),
    "shared.read": IndexModel(
        [("shared.read", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
        name="_shared",
    ),
}


_SEARCH_INDEX = IndexModel([("_search", ASCENDING)], name="_search")


def internal_indexes(spec: CollectionSpec | None) -> list[IndexModel]:
    """Our own indexes of a collection: always `_created` and `_owner`; `_team` and
    `_shared` when its rules read `team` or `shared.*`; `_search` with full-text search."""
    models = list(_INTERNAL_INDEXES)
    if spec is not None:
        read = rule_fields(spec)
        if "team" in read:
            models.append(_RULE_INDEXES["team"])
        if read & {"shared.read", "shared.write"}:
            models.append(_RULE_INDEXES["shared.read"])
        if spec.search is not None:  # the token index of full-text search (its terms)
            models.append(_SEARCH_INDEX)
        # References whose deletes act on this collection's documents are looked up by id.
        for ref in refs_of(spec.json_schema).values():
            if ref.on_delete is not None:
                models.append(IndexModel([(ref.path, ASCENDING)], name=f"_ref_{ref.name}"))
    return models


class CollectionExistsError(Exception):
    pass


class IndexBuildError(Exception):
    """Existing documents prevent an index (e.g. duplicates under a new unique index)."""


def storage_path(client_path: str) -> str:
    return "_id" if client_path == "id" else client_path


def index_model(spec: IndexSpec) -> IndexModel:
    keys = [
        (storage_path(f.removeprefix("-")), DESCENDING if f.startswith("-") else ASCENDING)
        for f in spec.fields
    ]
    options: dict[str, Any] = {"name": spec.name}
    if not spec.unique and spec.expire_after_seconds is None and keys[-1][0] != "_id":
        # Listing always ends its sort with an _id tie-breaker in the direction of the
        # last key (see compile_sort); with _id in the index too, the whole sort is
        # served by the index instead of an in-memory SORT stage.
        keys.append(("_id", keys[-1][1]))
    if spec.unique:
        options["unique"] = True
        # Unique among documents that have the fields: documents without them do not
        # collide on null.
        options["partialFilterExpression"] = {k: {"$exists": True} for k, _ in keys}
    if spec.expire_after_seconds is not None:
        options["expireAfterSeconds"] = spec.expire_after_seconds
    return IndexModel(keys, **options)


def internal_index_like(spec: IndexSpec) -> str | None:
    """The name of our own index with the same keys as `spec`, if any: MongoDB refuses a
    second index on the same keys, and that one serves the same queries already."""
    keys = list(index_model(spec).document["key"].items())
    for internal in [*_INTERNAL_INDEXES, *_RULE_INDEXES.values()]:
        if list(internal.document["key"].items()) == keys:
            return str(internal.document["name"])
    return None


def _same_index(existing: dict[str, Any], wanted: IndexModel) -> bool:
    doc = wanted.document
    return (
        list(existing.get("key", [])) == list(doc["key"].items())
        and bool(existing.get("unique", False)) == bool(doc.get("unique", False))
        and existing.get("expireAfterSeconds") == doc.get("expireAfterSeconds")
    )


SpecCache = ReadCache[str, "CollectionSpec | None"]


# Changes to declarations take turns across processes (CollectionRepository.declaring).
LOCKS = "declaration_lock"
# A holder that died frees the turn after this long (a live one renews it every third of
# it, however long its index builds take); a change waits at most LOCK_WAIT.
LOCK_SECONDS = 30.0
LOCK_WAIT = 10.0


class DeclarationBusy(Exception):
    """Another change to the declarations held its turn for longer than the wait."""


class CollectionRepository:
    def __init__(self, db: Db, *, cache: SpecCache | None = None) -> None:
        self.db = db
        self.specs = db[CollectionSpec.Settings.name]
        self.locks = db[LOCKS]
        self.lock_wait = LOCK_WAIT
        self.lock_seconds = LOCK_SECONDS
        # Declarations are read on every document request; see app.db.change_feed.
        # Cached specs are shared: callers copy before they change one.
        self.cache = cache
        self._all: tuple[int, list[CollectionSpec]] | None = None

    def _forget(self, name: str) -> None:
        if self.cache is not None:
            self.cache.invalidate(name)

    @staticmethod
    def _to_model(raw: dict[str, Any] | None) -> CollectionSpec | None:
        return None if raw is None else CollectionSpec.model_validate(raw)

    async def insert(self, spec: CollectionSpec) -> None:
        try:
            await self.specs.insert_one(
                spec.model_dump(by_alias=True, exclude={"revision_id"}, mode="python")
            )
        except DuplicateKeyError as exc:
            raise CollectionExistsError(spec.id) from exc
        finally:
            self._forget(spec.id)

    async def get(self, name: str, *, fresh: bool = False) -> CollectionSpec | None:
        """The declaration, from the read cache unless `fresh` (read-modify-write callers:
        a copy that another process has just changed must not be written back)."""
        if fresh or self.cache is None:
            return await self._read(name)
        return await self.cache.load(name, lambda: self._read(name))

    async def _read(self, name: str) -> CollectionSpec | None:
        return self._to_model(await self.specs.find_one({"_id": name}))

    async def list_all(self) -> list[CollectionSpec]:
        return [CollectionSpec.model_validate(raw) async for raw in self.specs.find().sort("_id")]

    async def list_all_cached(self) -> list[CollectionSpec]:
        """Every declaration, kept while the read cache is trusted and no declaration has
        changed since (any change, here or in another process, moves its epoch)."""
        cache = self.cache
        if cache is None or not cache.trusted():
            return await self.list_all()
        epoch = cache.epoch
        if self._all is not None and self._all[0] == epoch:
            return self._all[1]
        found = await self.list_all()
        if cache.epoch == epoch and cache.trusted():
            self._all = (epoch, found)
        return found

    async def ensure_locks(self) -> None:
        """The turns' collection, made at start-up rather than by the first change."""
        with suppress(CollectionInvalid):  # (made by an earlier start)
            await self.db.create_collection(LOCKS)

    @asynccontextmanager
    async def declaring(self, clock: Clock) -> AsyncIterator[None]:
        """One change to the declarations at a time, in any process: the checks that
        read other declarations (declared relations, expiry) and the write that follows
        them are not interleaved with another change's. A turn is a lease on one
        document (a process that dies frees it after `lock_seconds`; the holder renews it
        while its change runs); DeclarationBusy when it stays taken for `lock_wait`
        seconds."""
        token = ObjectId()
        deadline = time.monotonic() + self.lock_wait
        pause = 0.01
        while not await self._hold(token, clock):
            if time.monotonic() >= deadline:
                raise DeclarationBusy
            await asyncio.sleep(pause)  # another change holds the turn: wait for it
            pause = min(pause * 2, 0.2)
        done = asyncio.Event()
        renewing = asyncio.create_task(self._renew(token, clock, done))
        try:
            yield
        finally:
            # The renewer stops at once, or after the renewal it is making: never
            # cancelled half-way through a driver call (its connection could be left
            # unusable).
            done.set()
            await renewing
            await self.locks.delete_one({"_id": "declarations", "owner": token})

    async def _hold(self, token: ObjectId, clock: Clock) -> bool:
        now = clock()
        until = now + timedelta(seconds=self.lock_seconds)
        return await take_lease(self.locks, "declarations", token, now=now, until=until)

    async def _renew(self, token: ObjectId, clock: Clock, done: asyncio.Event) -> None:
        """Renew the turn every third of its lease until `done`: a change whose index
        build outlasts the lease (a big collection) keeps it, so no other change's checks
        and writes interleave with its own."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.lock_seconds / 3)
            if done.is_set():
                return
            try:
                held = await self._hold(token, clock)
            except PyMongoError as exc:  # the change itself meets the outage; try again
                log.warning("could not renew the turn to change declarations: %s", exc)
                continue
            if not held:
                # Only a process stalled for a whole lease (a frozen VM) gets here.
                log.error(
                    "the turn to change collection declarations lapsed while a change "
                    "was under way; another change may have interleaved with it"
                )
                return

    async def replace(self, spec: CollectionSpec) -> None:
        try:
            await self.specs.replace_one(
                {"_id": spec.id}, spec.model_dump(by_alias=True, exclude={"revision_id"})
            )
        finally:
            self._forget(spec.id)

    async def delete(self, spec: CollectionSpec) -> bool:
        """Drop the documents first, then the declaration (a crash in between leaves a
        declared, empty collection rather than orphaned documents)."""
        await self.db.drop_collection(spec.storage_name)
        try:
            result = await self.specs.delete_one({"_id": spec.id})
        finally:
            self._forget(spec.id)
        return result.deleted_count == 1

    async def _keep_change_images(self, storage: str) -> None:
        await keep_change_images(self.db, storage)

    async def sync_indexes(self, spec: CollectionSpec) -> None:
        """Make the storage collection's indexes exactly the declared ones (plus ours).

        Idempotent: run at declaration, on every change and at each start-up.
        """
        storage = self.db[spec.storage_name]
        await self._keep_change_images(spec.storage_name)
        declared = [index_model(i) for i in spec.indexes]
        # A declaration made before our own indexes existed may have the same keys as
        # one of them: it serves the same queries, and MongoDB refuses a second.
        declared_keys = [list(m.document["key"].items()) for m in declared]
        wanted = declared + [
            m
            for m in internal_indexes(spec)
            if list(m.document["key"].items()) not in declared_keys
        ]
        wanted_by_name = {m.document["name"]: m for m in wanted}
        existing = await storage.index_information()
        stale = [
            name
            for name, info in existing.items()
            if name != "_id_"
            and (name not in wanted_by_name or not _same_index(info, wanted_by_name[name]))
        ]
        for name in stale:
            await storage.drop_index(name)
        to_create = [
            model for name, model in wanted_by_name.items() if name not in existing or name in stale
        ]
        if not to_create:
            return
        try:
            await storage.create_indexes(to_create)
        except (DuplicateKeyError, OperationFailure) as exc:
            if isinstance(exc, DuplicateKeyError) or exc.code in (11000, 11001):
                raise IndexBuildError(str(exc)) from exc
            raise

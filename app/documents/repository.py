"""The only door from the documents domain to MongoDB: one collection's stored documents."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.db import transaction
from app.db.client import Db
from app.documents.models import StoredDocument
from app.documents.search import Indexer

# How many of a document's last write ids it keeps: more than the writes that can land
# between a lost answer and the re-read that looks for it (one retry, one read).
WRITES_KEPT = 16

# What a write may be conditioned on: an owner (owner-write access) and/or a version
# (If-Match). None means "any".
Conditions = dict[str, Any]


class DocumentExistsError(Exception):
    """An insert met an existing document with the same id."""


def _is_id_clash(exc: DuplicateKeyError) -> bool:
    pattern = (exc.details or {}).get("keyPattern") or {}
    return list(pattern) == ["_id"] or "_id_" in str(exc)


class DocumentRepository:
    """Documents of one Docstore collection (MongoDB collection `storage_name`)."""

    def __init__(
        self, db: Db, storage_name: str, *, max_time_ms: int, indexer: Indexer | None = None
    ) -> None:
        self.collection = db[storage_name]
        # Pages are read with dates left without a time zone (they are all UTC): the
        # driver's time-zone-aware decoding is most of a page's decoding time. Their rows
        # hold naive UTC dates; StoredDocument.from_mongo and rfc3339 read them as UTC.
        self._pages = self.collection.with_options(
            codec_options=self.collection.codec_options.with_options(tz_aware=False)
        )
        self.max_time_ms = max_time_ms
        # Full-text search's terms, stored beside `data` on every write (search.py).
        self.indexer = indexer

    def _raw(self, doc: StoredDocument, terms: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = doc.to_mongo()
        if self.indexer is not None:
            raw.update(terms if terms is not None else self.indexer.terms(doc.data))
        return raw

    async def insert(self, doc: StoredDocument) -> None:
        try:
            await self.collection.insert_one(self._raw(doc), session=transaction.current())
        except DuplicateKeyError as exc:
            if _is_id_clash(exc):
                raise DocumentExistsError(doc.id) from exc
            raise  # a declared unique index: 409 duplicate_key

    async def insert_many(
        self, docs: list[StoredDocument], terms: list[dict[str, Any]] | None = None
    ) -> dict[int, DuplicateKeyError]:
        """Insert what can be inserted (with their search `terms`, when worked out
        already); return the failures by position."""
        if not docs:
            return {}
        raws = [self._raw(d, terms[i] if terms is not None else None) for i, d in enumerate(docs)]
        try:
            await self.collection.insert_many(raws, ordered=False)
        except BulkWriteError as exc:
            failures: dict[int, DuplicateKeyError] = {}
            for err in exc.details.get("writeErrors", []):
                if err.get("code") not in (11000, 11001):
                    raise
                failures[int(err["index"])] = DuplicateKeyError(err.get("errmsg", ""), 11000, err)
            return failures
        return {}

    async def insert_many_keep_existing(self, docs: list[StoredDocument]) -> tuple[int, int]:
        """Insert; documents whose id exists already are skipped. (inserted, skipped)"""
        present = {
            raw["_id"]
            async for raw in self.collection.find(
                {"_id": {"$in": [d.id for d in docs]}}, {"_id": 1}
            )
        }
        fresh = [d for d in docs if d.id not in present]
        failures = await self.insert_many(fresh)
        if failures:
            raise next(iter(failures.values()))  # a declared unique index: 409 duplicate_key
        return len(fresh), len(present)

    async def stream(self, *, batch_size: int) -> AsyncIterator[StoredDocument]:
        async for raw in self.collection.find().sort("_id", 1).batch_size(batch_size):
            yield StoredDocument.from_mongo(raw)

    async def get(self, doc_id: str, *, scope: Conditions | None = None) -> StoredDocument | None:
        raw = await self.collection.find_one(
            _and({"_id": doc_id}, scope or {}),
            max_time_ms=self.max_time_ms,
            session=transaction.current(),
        )
        return None if raw is None else StoredDocument.from_mongo(raw)

    async def update_data(
        self, current: StoredDocument, data: dict[str, Any], *, now: datetime, write_id: int
    ) -> StoredDocument | None:
        """Set `data` and bump `version` by one, only if the document is still at the version
        read (one atomic operation); the new state, or None if it no longer was.

        None is ambiguous when the driver retried the write after losing its answer (the
        first attempt may have applied it): `write_id` joins the document's last
        WRITES_KEPT write ids, so the caller can tell by reading it again.

        `update_one` plus the state we know, rather than `find_one_and_update`: the result
        is the same, and findAndModify costs far more on some servers.
        """
        result = await self.collection.update_one(
            {"_id": current.id, "version": current.version},
            {
                "$set": {
                    "data": data,
                    "updated_at": now,
                    **(self.indexer.terms(data) if self.indexer is not None else {}),
                },
                "$inc": {"version": 1},
                "$push": {"writes": {"$each": [write_id], "$slice": -WRITES_KEPT}},
            },
            session=transaction.current(),
        )
        if result.matched_count != 1:
            return None
        writes = (*current.writes, write_id)[-WRITES_KEPT:]
        return dataclasses.replace(
            current, data=data, version=current.version + 1, updated_at=now, writes=writes
        )

    async def set_shares(
        self,
        current: StoredDocument,
        readers: tuple[str, ...],
        writers: tuple[str, ...],
        *,
        now: datetime,
    ) -> StoredDocument | None:
        """Set who the document is shared with, bumping `version` (an ETag a client holds
        no longer describes who may see it), only if it is still at the version read."""
        change: dict[str, Any] = {"$set": {"updated_at": now}, "$inc": {"version": 1}}
        if readers:
            change["$set"]["shared"] = {"read": list(readers), "write": list(writers)}
        else:
            change["$unset"] = {"shared": ""}
        result = await self.collection.update_one(
            {"_id": current.id, "version": current.version},
            change,
            session=transaction.current(),
        )
        if result.matched_count != 1:
            return None
        return dataclasses.replace(
            current,
            readers=readers,
            writers=writers,
            version=current.version + 1,
            updated_at=now,
        )

    async def delete(self, doc_id: str, *, conditions: Conditions) -> bool:
        result = await self.collection.delete_one(
            _and({"_id": doc_id}, conditions), session=transaction.current()
        )
        return result.deleted_count == 1

    async def delete_ids(self, ids: list[str], *, conditions: Conditions) -> int:
        result = await self.collection.delete_many(
            _and({"_id": {"$in": ids}}, conditions), session=transaction.current()
        )
        return result.deleted_count

    async def update_where(self, query: Conditions, change: dict[str, Any]) -> int:
        """Change every document `query` matches (integrity.py: cleared references)."""
        result = await self.collection.update_many(query, change, session=transaction.current())
        return result.modified_count

    async def get_many(self, ids: list[str]) -> list[StoredDocument]:
        cursor = self.collection.find({"_id": {"$in": ids}}, {"data": 0})
        return [StoredDocument.from_mongo(raw) async for raw in cursor]

    async def ids_owned_by(self, owner: str) -> list[str]:
        return [raw["_id"] async for raw in self.collection.find({"owner": owner}, {"_id": 1})]

    async def delete_owned_by(self, owner: str) -> int:
        result = await self.collection.delete_many({"owner": owner})
        return result.deleted_count

    async def find_page(
        self,
        query: dict[str, Any],
        *,
        sort: list[tuple[str, int]],
        limit: int,
        projection: dict[str, int] | None,
        joins: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """A page of stored rows (naive UTC dates); with `joins` (`$lookup` stages, no
        projection), one aggregation that brings what they join with the page."""
        if joins:
            assert projection is None
            pipeline: list[dict[str, Any]] = [{"$match": query}]
            if sort:
                pipeline.append({"$sort": dict(sort)})
            pipeline += [{"$limit": limit}, *joins]
            rows = await self._pages.aggregate(
                pipeline, maxTimeMS=self.max_time_ms, session=transaction.current()
            )
            return await rows.to_list(length=limit)
        cursor = (
            self._pages.find(query, projection, session=transaction.current())
            .sort(sort)
            .limit(limit)
            .max_time_ms(self.max_time_ms)
        )
        return await cursor.to_list(length=limit)

    async def aggregate(
        self, pipeline: list[dict[str, Any]], *, page: bool = False
    ) -> list[dict[str, Any]]:
        """Run a pipeline built by the service (never a client's), time-bounded, in memory;
        `page`: its rows are stored documents, read as `find_page` reads them."""
        cursor = await (self._pages if page else self.collection).aggregate(
            pipeline, maxTimeMS=self.max_time_ms, allowDiskUse=False
        )
        return await cursor.to_list()

    async def fields_of(self, doc_id: str, paths: list[str]) -> dict[str, Any] | None:
        """Only `paths` of one stored document (raw), or None."""
        return await self.collection.find_one(
            {"_id": doc_id}, dict.fromkeys(paths, 1), max_time_ms=self.max_time_ms
        )

    async def count(self, query: dict[str, Any]) -> int:
        return await self.collection.count_documents(query, maxTimeMS=self.max_time_ms)

    async def reindex(self, *, after: str | None, size: int) -> tuple[str | None, int]:
        """Store the search terms of the next `size` documents after id `after` (derived
        data: no version bump): the last id reached (None when none were left), and how
        many were indexed."""
        assert self.indexer is not None
        query = {} if after is None else {"_id": {"$gt": after}}
        rows = await (
            self.collection.find(query, {"data": 1, "version": 1}).sort("_id", 1).to_list(size)
        )
        for raw in rows:
            # At the version read: a write meanwhile has stored its own (newer) terms.
            await self.collection.update_one(
                {"_id": raw["_id"], "version": raw.get("version")},
                {"$set": self.indexer.terms(raw.get("data", {}))},
            )
        return (rows[-1]["_id"] if rows else None), len(rows)


def _and(query: Conditions, conditions: Conditions) -> Conditions:
    """Both filters: merged when their keys differ (the common case), else `$and`."""
    if query.keys().isdisjoint(conditions.keys()):
        return {**query, **conditions}
    return {"$and": [query, conditions]}

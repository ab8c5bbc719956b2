"""Old versions and the trash of collections declared with `history: true`.

Recorded by the change pump (app/db/change_pump.py) from each change's pre-image, the
exact document before the change, so every write is kept, whichever way it was made
(the API, a batch, a script, TTL expiry, mongosh):

- `doc_versions`: each replaced version, keyed by collection, document, the document's
  birth (`created_at`: a document deleted and made again with the same id starts a new
  line) and version; kept HISTORY_RETENTION_DAYS (TTL). The current version is the
  document itself.
- `doc_trash`: the last version of each deleted document, with `purge_at`. The files of
  a deleted document stay (the document deletion skips them) until the trash entry is
  purged, so a restore brings them back. Purged by the pump's leader every minute
  (files first), or by an admin at once.

Recording is idempotent (a version is inserted once; a trash entry is replaced by the
same content), so a batch the pump records twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReplaceOne

from app.clock import Clock
from app.collections.models import STORAGE_PREFIX, CollectionSpec
from app.db.change_pump import Committed
from app.db.client import Db, ensure_ttl, insert_new
from app.files.store import FileStore

VERSIONS = "doc_versions"
TRASH = "doc_trash"
# What a stored document holds that is not part of a version (search terms, write ids).
_INTERNAL = ("_search", "writes")
_INTERNAL_SET = frozenset(_INTERNAL)
PURGE_BATCH = 200


def kept(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in _INTERNAL}


class HistoryStore:
    config = frozenset({CollectionSpec.Settings.name})

    def __init__(
        self,
        db: Db,
        *,
        clock: Clock,
        version_days: int,
        trash_days: int,
        max_time_ms: int,
    ) -> None:
        self.db = db
        self.versions = db[VERSIONS]
        self.trash = db[TRASH]
        self.clock = clock
        self.version_days = version_days
        self.trash_for = timedelta(days=trash_days)
        self.max_time_ms = max_time_ms
        self.keeping: frozenset[str] = frozenset()
        # Where a trashed document's files wait (set by the container).
        self.files: FileStore | None = None

    async def ensure_indexes(self) -> None:
        await self.versions.create_indexes(
            [
                IndexModel(
                    [("c", ASCENDING), ("d", ASCENDING), ("born", ASCENDING), ("v", DESCENDING)],
                    name="version",
                    unique=True,
                ),
            ]
        )
        await ensure_ttl(self.versions, "retention", "replaced_at", self.version_days * 86_400)
        await self.trash.create_indexes(
            [
                IndexModel([("c", ASCENDING), ("d", ASCENDING)], name="document", unique=True),
                IndexModel([("c", ASCENDING), ("_id", DESCENDING)], name="listing"),
                IndexModel([("purge_at", ASCENDING)], name="purge"),
            ]
        )

    # -- the change pump's consumer --------------------------------------------------------

    async def reload(self) -> None:
        cursor = self.db[CollectionSpec.Settings.name].find(
            {"history": True}, projection={"_id": True}
        )
        self.keeping = frozenset([STORAGE_PREFIX + raw["_id"] async for raw in cursor])

    def match(self) -> dict[str, Any] | None:
        return {"ns.coll": {"$in": sorted(self.keeping)}} if self.keeping else None

    async def take(self, changes: list[Committed]) -> None:
        versions: list[dict[str, Any]] = []
        trashed: list[ReplaceOne[Any]] = []
        for change in changes:
            if change.namespace not in self.keeping or change.before is None:
                continue
            if change.fields is not None and change.fields <= _INTERNAL_SET:
                continue  # only search terms re-indexed: the same version
            name = change.namespace[len(STORAGE_PREFIX) :]
            before = kept(change.before)
            versions.append(
                {
                    "c": name,
                    "d": change.doc_id,
                    "born": before.get("created_at"),
                    "v": before.get("version"),
                    "doc": before,
                    "replaced_at": change.at,
                    "deleted": change.kind == "deleted",
                }
            )
            if change.kind == "deleted":
                key = {"c": name, "d": change.doc_id}
                trashed.append(
                    ReplaceOne(
                        key,
                        {
                            **key,
                            "doc": before,
                            "deleted_at": change.at,
                            "purge_at": change.at + self.trash_for,
                        },
                        upsert=True,
                    )
                )
        await insert_new(self.versions, versions)
        if trashed:
            await self.trash.bulk_write(trashed, ordered=True)

    # -- reading ---------------------------------------------------------------------------

    async def version_page(
        self, name: str, doc_id: str, born: datetime, *, below: int | None, limit: int
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"c": name, "d": doc_id, "born": born}
        if below is not None:
            query["v"] = {"$lt": below}
        cursor = self.versions.find(
            query,
            projection={"v": True, "replaced_at": True, "doc.updated_at": True},
            max_time_ms=self.max_time_ms,
        ).sort("v", -1)
        return [raw async for raw in cursor.limit(limit)]

    async def version(
        self, name: str, doc_id: str, born: datetime, version: int
    ) -> dict[str, Any] | None:
        raw = await self.versions.find_one({"c": name, "d": doc_id, "born": born, "v": version})
        return None if raw is None else raw["doc"]

    async def trash_page(
        self, name: str, *, before: ObjectId | None, limit: int
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"c": name}
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = self.trash.find(query, max_time_ms=self.max_time_ms).sort("_id", -1)
        return [raw async for raw in cursor.limit(limit)]

    async def trashed(self, name: str, doc_id: str) -> dict[str, Any] | None:
        return await self.trash.find_one({"c": name, "d": doc_id})

    async def untrash(self, entry: dict[str, Any]) -> None:
        """A restored document's files are its own again; its trash entry goes."""
        if self.files is not None:
            await self.files.bring_back(entry["c"], entry["d"])
        await self.trash.delete_one({"_id": entry["_id"]})

    # -- purging ---------------------------------------------------------------------------

    async def purge(self, entry: dict[str, Any]) -> None:
        """Delete a trash entry and its document's files for good."""
        if self.files is not None:
            await self.files.delete_set_aside(entry["c"], entry["d"])
        await self.trash.delete_one({"_id": entry["_id"], "purge_at": entry["purge_at"]})

    async def purge_expired(self) -> int:
        """The leader's chore: purge what has waited its time."""
        cursor = self.trash.find(
            {"purge_at": {"$lte": self.clock()}}, max_time_ms=self.max_time_ms
        ).limit(PURGE_BATCH)
        purged = 0
        async for entry in cursor:
            await self.purge(entry)
            purged += 1
        return purged

    # -- backups ---------------------------------------------------------------------------

    async def count_all(self) -> tuple[int, int]:
        """(versions kept, documents in the trash)"""
        return await self.versions.count_documents({}), await self.trash.count_documents({})

    def stream_versions(self) -> Any:
        return self.versions.find({}, projection={"_id": False}).sort(
            [("c", 1), ("d", 1), ("born", 1), ("v", -1)]
        )

    def stream_trash(self) -> Any:
        return self.trash.find({}, projection={"_id": False}).sort([("c", 1), ("d", 1)])

    async def import_records(self, which: str, records: list[dict[str, Any]]) -> int:
        """Insert exported records (`which`: versions or trash), leaving alone those whose
        key is taken. Returns how many were new."""
        return await insert_new(self.versions if which == "versions" else self.trash, records)

    async def forget_collection(self, name: str) -> None:
        """A deleted collection's history and trash (its files are gone with it)."""
        await self.versions.delete_many({"c": name})
        await self.trash.delete_many({"c": name})

"""Files in GridFS: streamed in and out in chunks, never whole in memory.

Each upload is a new GridFS file; when it completes, older versions of the same
(collection, document, name) are deleted, so a replacement is atomic for readers
(they see the old version or the new one, newest first). Chunks are written as they
arrive (about 1 MiB buffered, not the driver's GridIn buffer of up to 48 MB) in GridFS's
own layout, and the file's record only once every chunk is in, so a half-written upload
is never listed or served; reads use the driver's GridFS. An upload that dies with its
process leaves chunks behind: each upload first writes a marker, removed on completion
or abort; a sweep (run by uploads, at most once a minute per process, and safe to run
from several) deletes the chunks of markers older than an hour.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, IndexModel

from app.db.client import Db
from app.observability.metrics import FILE_BYTES

BUCKET = "files"
CHUNK_BYTES = 255 * 1024
# Chunks sent to MongoDB per write: about 1 MiB held in memory per upload.
CHUNKS_PER_WRITE = 4
SNIFF = 16
SEND_BYTES = 1024 * 1024
SET_ASIDE_BATCH = 1000  # documents whose files one update sets aside
ABANDONED_AFTER = timedelta(hours=1)
# An upload in progress moves its marker forward this often, so the sweep never takes it.
TOUCH_EVERY = timedelta(minutes=1)
SWEEP_EVERY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: ObjectId
    name: str
    size: int
    content_type: str
    sha256: str
    created_at: datetime

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    @classmethod
    def from_mongo(cls, raw: dict[str, Any]) -> StoredFile:
        meta = raw["metadata"]
        return cls(
            id=raw["_id"],
            name=raw["filename"],
            size=raw["length"],
            content_type=meta["content_type"],
            sha256=meta["sha256"],
            created_at=raw["uploadDate"],
        )


class TooLarge(Exception):
    pass


class Abandoned(Exception):
    """The sweep took the upload (no data for over ABANDONED_AFTER): its chunks are gone."""


class FileStore:
    def __init__(self, db: Db) -> None:
        self.db = db
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)
        self.records = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]
        self.uploads = db["file_uploads"]
        self._swept_at = 0.0

    async def ensure_indexes(self) -> None:
        await self.records.create_indexes(
            [
                IndexModel(
                    [
                        ("metadata.collection", ASCENDING),
                        ("metadata.document", ASCENDING),
                        ("filename", ASCENDING),
                        ("uploadDate", DESCENDING),
                    ],
                    name="by_document",
                ),
                # Files of trashed documents, set aside (history: true collections).
                IndexModel(
                    [("metadata.collection", ASCENDING), ("metadata.trashed", ASCENDING)],
                    name="trashed",
                    sparse=True,
                ),
            ]
        )
        # GridFS's own chunk index (the driver makes it on the first upload only).
        await self.chunks.create_indexes(
            [
                IndexModel(
                    [("files_id", ASCENDING), ("n", ASCENDING)], name="files_id_1_n_1", unique=True
                )
            ]
        )
        await self.uploads.create_indexes([IndexModel([("active_at", ASCENDING)], name="activity")])

    @staticmethod
    def _of(collection: str, document: str) -> dict[str, Any]:
        return {"metadata.collection": collection, "metadata.document": document}

    async def current(
        self, collection: str, document: str, name: str, *, trashed: bool = False
    ) -> StoredFile | None:
        where = self._set_aside(collection, document) if trashed else self._of(collection, document)
        raw = await self.records.find_one(
            {**where, "filename": name},
            sort=[("uploadDate", DESCENDING), ("_id", DESCENDING)],
        )
        return StoredFile.from_mongo(raw) if raw else None

    async def list_current(self, collection: str, document: str) -> list[StoredFile]:
        newest: dict[str, StoredFile] = {}
        cursor = self.records.find(self._of(collection, document)).sort(
            [("filename", ASCENDING), ("uploadDate", DESCENDING), ("_id", DESCENDING)]
        )
        async for raw in cursor:
            newest.setdefault(raw["filename"], StoredFile.from_mongo(raw))
        return list(newest.values())

    async def count_names(self, collection: str, document: str) -> int:
        return len(await self.records.distinct("filename", self._of(collection, document)))

    async def upload(
        self,
        collection: str,
        document: str,
        name: str,
        content_type: str,
        body: AsyncIterator[bytes],
        *,
        max_bytes: int,
        first_bytes: Any,
        clock: Callable[[], datetime],
        created_at: datetime | None = None,
    ) -> StoredFile:
        """Stream `body` into a new version (raises TooLarge past `max_bytes`, leaving
        nothing); `first_bytes(head)` may refuse the upload from its first bytes.
        `created_at` (imports) keeps the version's original time instead of now."""
        now = clock()
        await self._sweep(now)
        file_id = ObjectId()
        await self.uploads.insert_one({"_id": file_id, "active_at": now})
        touched = now
        digest = hashlib.sha256()
        size = 0
        head = b""
        buffer = bytearray()
        pending: list[dict[str, Any]] = []
        n = 0

        async def flush(force: bool) -> None:
            nonlocal n, touched
            while len(buffer) >= CHUNK_BYTES or (force and buffer):
                data = bytes(buffer[:CHUNK_BYTES])
                del buffer[:CHUNK_BYTES]
                pending.append({"files_id": file_id, "n": n, "data": Binary(data)})
                n += 1
            if pending and (force or len(pending) >= CHUNKS_PER_WRITE):
                await self.chunks.insert_many(pending, ordered=True)
                pending.clear()
                moment = clock()
                if moment - touched >= TOUCH_EVERY:
                    touched = moment
                    await self._still_active(file_id, touched)

        try:
            async for piece in body:
                size += len(piece)
                if size > max_bytes:
                    raise TooLarge
                if len(head) < SNIFF:
                    head += piece[: SNIFF - len(head)]
                    if len(head) == SNIFF:
                        first_bytes(head)
                digest.update(piece)
                buffer += piece
                await flush(False)
            if len(head) < SNIFF:
                first_bytes(head)
            await flush(True)
            await self._still_active(file_id, clock())
            # GridFS's own record layout, written last: until then nothing lists it.
            await self.records.insert_one(
                {
                    "_id": file_id,
                    "length": size,
                    "chunkSize": CHUNK_BYTES,
                    "uploadDate": created_at or now,
                    "filename": name,
                    "metadata": {
                        "collection": collection,
                        "document": document,
                        "content_type": content_type,
                        "sha256": digest.hexdigest(),
                    },
                }
            )
        except BaseException:
            await self.chunks.delete_many({"files_id": file_id})
            await self.uploads.delete_one({"_id": file_id})
            raise
        FILE_BYTES.labels("in").inc(size)
        await self.uploads.delete_one({"_id": file_id})
        stored = await self.records.find_one({"_id": file_id})
        assert stored is not None
        return StoredFile.from_mongo(stored)

    async def _still_active(self, file_id: ObjectId, moment: datetime) -> None:
        """Move the upload's marker forward; Abandoned when a sweep has taken it (the
        sweep deletes the marker before the chunks, so either this or the sweep wins)."""
        moved = await self.uploads.update_one({"_id": file_id}, {"$set": {"active_at": moment}})
        if moved.matched_count == 0:
            raise Abandoned

    async def drop_older(self, collection: str, document: str, name: str, keep: ObjectId) -> None:
        """Delete every version of the file but `keep` (and anything newer than it)."""
        query = {**self._of(collection, document), "filename": name, "_id": {"$lt": keep}}
        await self._delete_where(query)

    async def _delete_version(self, file_id: ObjectId) -> None:
        # Record first: from then on the version is invisible; then its chunks.
        await self.records.delete_one({"_id": file_id})
        await self.chunks.delete_many({"files_id": file_id})

    async def _delete_where(self, query: dict[str, Any]) -> int:
        """Delete the file versions `query` matches (their chunks too): how many."""
        ids = [raw["_id"] async for raw in self.records.find(query, {"_id": 1})]
        for file_id in ids:
            await self._delete_version(file_id)
        return len(ids)

    async def delete(self, collection: str, document: str, name: str) -> bool:
        return await self._delete_where({**self._of(collection, document), "filename": name}) > 0

    # -- files of trashed documents ----------------------------------------------------------
    # A document deleted into the trash keeps its files, set aside: no longer its id's (a
    # new document under that id starts without them), back when it is restored, deleted
    # when it is purged.

    @staticmethod
    def _set_aside(collection: str, document: str) -> dict[str, Any]:
        return {"metadata.collection": collection, "metadata.trashed": document}

    async def set_aside(self, collection: str, documents: list[str]) -> None:
        """Keep the files of these deleted documents for the trash: a few round trips for
        a thousand documents (account deletions and cascades set many aside at once)."""
        for start in range(0, len(documents), SET_ASIDE_BATCH):
            some = documents[start : start + SET_ASIDE_BATCH]
            # The trash keeps one deletion per id: files set aside by an earlier one (a
            # document deleted, made again, deleted again) go, never to come back with
            # the later one.
            await self._delete_where(
                {"metadata.collection": collection, "metadata.trashed": {"$in": some}}
            )
            await self.records.update_many(
                {"metadata.collection": collection, "metadata.document": {"$in": some}},
                # Each file's own document id moves to `trashed` (a pipeline update).
                [{"$set": {"metadata.trashed": "$metadata.document", "metadata.document": None}}],
            )

    async def bring_back(self, collection: str, document: str) -> None:
        await self.records.update_many(
            self._set_aside(collection, document),
            {"$set": {"metadata.document": document}, "$unset": {"metadata.trashed": ""}},
        )

    async def delete_set_aside(self, collection: str, document: str) -> int:
        return await self._delete_where(self._set_aside(collection, document))

    async def delete_for(self, collection: str, documents: list[str] | None = None) -> int:
        """Delete the files of these documents (None: of the whole collection)."""
        query: dict[str, Any] = {"metadata.collection": collection}
        if documents is not None:
            if not documents:
                return 0
            query["metadata.document"] = {"$in": documents}
        return await self._delete_where(query)

    async def open(self, stored: StoredFile, first: int, last: int) -> AsyncIterator[bytes]:
        """Bytes first..last (inclusive) of a version, chunk by chunk."""
        out = await self.bucket.open_download_stream(stored.id)
        try:
            await out.seek(first)
            left = last - first + 1
            while left > 0:
                # About 1 MiB a send: fewer, larger writes to the socket.
                parts = []
                size = 0
                while size < SEND_BYTES and left - size > 0:
                    piece = await out.readchunk()
                    if not piece:
                        left = size  # the file ended early: send what there is
                        break
                    piece = piece[: left - size]
                    parts.append(piece)
                    size += len(piece)
                if not parts:
                    break
                left -= size
                FILE_BYTES.labels("out").inc(size)
                yield b"".join(parts)
        finally:
            await out.close()

    async def _sweep(self, now: datetime) -> None:
        if time.monotonic() - self._swept_at < SWEEP_EVERY_SECONDS:
            return
        self._swept_at = time.monotonic()
        await self.sweep(now)

    async def sweep(self, now: datetime) -> int:
        """Delete the chunks of uploads idle for over an hour; how many there were."""
        swept = 0
        idle = {"active_at": {"$lt": now - ABANDONED_AFTER}}
        async for marker in self.uploads.find(idle, {"_id": 1}):
            file_id = marker["_id"]
            # The marker goes first, and only if still idle: an upload that moved it on
            # in the meantime keeps its chunks; one that moves it later finds it gone.
            taken = await self.uploads.delete_one({"_id": file_id, **idle})
            if taken.deleted_count and not await self.records.find_one({"_id": file_id}):
                await self.chunks.delete_many({"files_id": file_id})
                swept += 1
        return swept

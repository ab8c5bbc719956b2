"""The one `AsyncMongoClient` of the process, with timeouts that fail fast."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from app.config import Settings

log = logging.getLogger("docstore.db")

Db: TypeAlias = AsyncDatabase[dict[str, Any]]


def create_client(url: str, settings: Settings) -> AsyncMongoClient[dict[str, Any]]:
    # Short selection/connect timeouts: with the database down a request answers 503
    # within a few seconds instead of hanging for the driver's default 30 s.
    return AsyncMongoClient(
        url,
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        connectTimeoutMS=settings.mongodb_timeout_ms,
        tz_aware=True,
        appname="docstore",
    )


async def insert_new(collection: Any, raws: list[dict[str, Any]]) -> int:
    """Insert records (from a backup, or recorded twice), leaving alone those whose unique
    key is taken. Returns how many were new."""
    if not raws:
        return 0
    try:
        result = await collection.insert_many(raws, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
        return int(exc.details.get("nInserted", 0))
    return len(result.inserted_ids)


async def keep_change_images(db: Db, storage: str) -> None:
    """Have MongoDB keep each change's before and after image (6.0+), so realtime
    streams know a deleted document's owner and each update's exact result, and webhooks
    and history have exact images."""
    option = {"changeStreamPreAndPostImages": {"enabled": True}}
    for _ in range(2):
        try:
            await db.command({"collMod": storage, **option})
            return
        except OperationFailure as exc:
            if exc.code != 26:  # NamespaceNotFound: not created yet
                # Older servers: streams then reset where they would need an image.
                log.warning(
                    "no change images: realtime streams will send reset instead",
                    extra={"collection": storage, "error": str(exc)},
                )
                return
        try:
            await db.create_collection(storage, changeStreamPreAndPostImages={"enabled": True})
            return
        except CollectionInvalid:
            continue  # created meanwhile by another process: collMod it


async def ensure_ttl(collection: Any, name: str, field: str, seconds: int) -> None:
    """A TTL index on `field`; when it exists with another lifetime (the setting changed),
    its lifetime is changed in place (collMod) rather than failing the start."""
    try:
        await collection.create_indexes(
            [IndexModel([(field, ASCENDING)], name=name, expireAfterSeconds=seconds)]
        )
    except OperationFailure as exc:
        if exc.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict
            raise
        await collection.database.command(
            {"collMod": collection.name, "index": {"name": name, "expireAfterSeconds": seconds}}
        )

"""The one `AsyncMongoClient` of the process, with timeouts that fail fast."""

from __future__ import annotations

from typing import Any, TypeAlias

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from app.config import Settings

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


async def insert_new(collection: Any, raws: list[dict[str, Any]]) -> None:
    """Insert records (from a backup), leaving alone those whose unique key is taken."""
    if not raws:
        return
    try:
        await collection.insert_many(raws, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise

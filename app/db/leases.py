"""A lease on one document: what one process holds at a time, across processes (the
change pump's leadership, a turn to change collection declarations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


async def take_lease(
    collection: AsyncCollection[dict[str, Any]],
    key: str,
    owner: object,
    *,
    now: datetime,
    until: datetime,
) -> bool:
    """Hold the document `key` of `collection` for `owner` until `until` when it is free
    (never taken, or its lease has run out) or already `owner`'s; whether `owner` holds it
    now. The upsert of a held one meets its _id: DuplicateKeyError, so nothing is read."""
    try:
        await collection.update_one(
            {"_id": key, "$or": [{"lease_until": {"$lte": now}}, {"owner": owner}]},
            {"$set": {"owner": owner, "lease_until": until}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True

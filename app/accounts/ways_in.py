"""The rule that an account keeps at least one way to sign in (a password, a linked
provider, a passkey), applied when one is removed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.accounts.models import User
from app.db.client import insert_new
from app.db.ids import parse_object_id
from app.errors import AppError, Conflict


class OwnedRecords:
    """A repository of records that each belong to one account (`user_id`): linked
    identities, passkeys."""

    collection: AsyncCollection[dict[str, Any]]

    async def owns(self, user_id: str, record_id: str) -> bool:
        oid = parse_object_id(record_id)
        if oid is None:
            return False
        return (
            await self.collection.find_one({"_id": oid, "user_id": user_id}, {"_id": 1}) is not None
        )

    async def take(self, user_id: str, record_id: str) -> dict[str, Any] | None:
        """Remove one of the account's records: the record, to put back if need be."""
        oid = parse_object_id(record_id)
        if oid is None:
            return None
        return await self.collection.find_one_and_delete({"_id": oid, "user_id": user_id})

    async def put_back(self, raw: dict[str, Any]) -> None:
        await insert_new(self.collection, [raw])


async def remove_way_in(
    records: OwnedRecords,
    user: User,
    record_id: str,
    *,
    methods_left: Callable[[User], Awaitable[int]] | None,
    missing: AppError,
    last: Conflict,
) -> None:
    """Remove the account's record `record_id`, unless it is its last way in. The count
    is checked again once the record is gone: two removals at once may each have seen
    the other's method still there, and the one that would leave none puts its back."""
    user_id = str(user.id)
    if not await records.owns(user_id, record_id):
        raise missing
    if methods_left is not None and await methods_left(user) <= 1:
        raise last
    raw = await records.take(user_id, record_id)
    if raw is None:
        raise missing
    if methods_left is not None and await methods_left(user) == 0:
        await records.put_back(raw)
        raise last

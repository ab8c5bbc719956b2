"""The audit log: security-relevant events, kept append-only.

Who did what, when, from where: sign-ins and their failures, second factors, passkeys
and linked identities, API keys, an admin's changes to accounts, sessions and keys,
collection declarations (schemas and access rules), webhooks, trash purges, exports.
Each record names its actor (account and whether through a session or an API key), the
client's address, the request id (as in the access log and problem bodies), the route,
and the outcome. Records are only ever inserted (no code path updates or deletes one)
and expire after AUDIT_RETENTION_DAYS (TTL).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel

from app.db.client import Db, ensure_ttl

COLLECTION = "audit_log"

Action = Literal[
    "sign_in",
    "sign_in_second_factor",
    "sign_in_passkey",
    "sign_in_magic_link",
    "sign_in_provider",
    "password_reset",
    "password_changed",
    "signed_out_everywhere",
    "mfa_enabled",
    "mfa_disabled",
    "mfa_recovery_codes_renewed",
    "passkey_added",
    "passkey_removed",
    "identity_linked",
    "identity_unlinked",
    "api_key_created",
    "api_key_revoked",
    "account_deleted",
    "account_changed_by_admin",
    "account_deleted_by_admin",
    "sessions_revoked_by_admin",
    "session_revoked_by_admin",
    "api_key_revoked_by_admin",
    "collection_created",
    "collection_changed",
    "collection_deleted",
    "webhook_created",
    "webhook_changed",
    "webhook_deleted",
    "webhook_secret_rotated",
    "webhook_redelivered",
    "mail_retried",
    "trash_purged",
    "audit_exported",
    "data_exported",
    "data_imported",
]
ACTIONS: tuple[str, ...] = get_args(Action)
Outcome = Literal["success", "failure"]


class AuditLog:
    def __init__(self, db: Db, *, retention_days: int, max_time_ms: int) -> None:
        self.collection = db[COLLECTION]
        self.retention_days = retention_days
        self.max_time_ms = max_time_ms

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("action", ASCENDING), ("_id", DESCENDING)], name="by_action"),
                IndexModel([("actor.id", ASCENDING), ("_id", DESCENDING)], name="by_actor"),
            ]
        )
        await ensure_ttl(self.collection, "retention", "at", self.retention_days * 86_400)

    async def record(
        self,
        action: str,
        *,
        at: datetime,
        outcome: Outcome,
        actor_id: str | None,
        via: str | None,
        address: str | None,
        request_id: str | None,
        route: str | None = None,
        status: int | None = None,
        subject: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        await self.collection.insert_one(
            {
                "at": at,
                "action": action,
                "outcome": outcome,
                "status": status,
                "actor": {"id": actor_id, "via": via},
                "subject": subject,
                "address": address,
                "request_id": request_id,
                "route": route,
                "details": details or {},
            }
        )

    async def record_script(
        self, action: str, *, at: datetime, subject: str, details: dict[str, str]
    ) -> None:
        """An operator script's action (an export, an import): no account, no request;
        the machine it ran on stands for the address."""
        await self.record(
            action,
            at=at,
            outcome="success",
            actor_id=None,
            via="script",
            address=socket.gethostname(),
            request_id=None,
            subject=subject,
            details=details,
        )

    @staticmethod
    def _query(
        *,
        action: str | None,
        actor: str | None,
        outcome: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if action is not None:
            query["action"] = action
        if actor is not None:
            query["actor.id"] = actor
        if outcome is not None:
            query["outcome"] = outcome
        if since is not None or until is not None:
            # Ids grow with time (an ObjectId starts with its second): a range on _id,
            # served by the index every listing sorts on.
            bounds: dict[str, Any] = {}
            if since is not None:
                bounds["$gte"] = _id_at(since)
            if until is not None:
                bounds["$lt"] = _id_at(until)
            query["_id"] = bounds
        return query

    async def page(
        self,
        *,
        before: ObjectId | None,
        limit: int,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first (older than `before`)."""
        query = self._query(action=action, actor=actor, outcome=outcome, since=since, until=until)
        if before is not None:
            bounds = query.setdefault("_id", {})
            bounds["$lt"] = min(before, bounds.get("$lt", before))
        cursor = self.collection.find(query, max_time_ms=self.max_time_ms).sort("_id", -1)
        return [raw async for raw in cursor.limit(limit)]

    async def stream(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Oldest first, every matching record (exports)."""
        query = self._query(action=action, actor=actor, outcome=outcome, since=since, until=until)
        async for raw in self.collection.find(query, batch_size=500).sort("_id", 1):
            yield raw


_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)  # an ObjectId's last second


def _id_at(moment: datetime) -> ObjectId:
    """The smallest ObjectId of `moment`'s second, within the range ids can spell."""
    return ObjectId.from_datetime(min(max(moment, _FIRST), _LAST))

"""From committed changes to queued webhook messages (a consumer of the change pump).

The body of each message is fixed when it is queued (every retry sends the same bytes):

    {"type": "document.updated", "timestamp": "...", "data": {"collection": "notes",
     "id": "...", "version": 3, "document": {...the document as the API shows it...}}}

`document.deleted` carries the document as it was; `document.updated` the document
after the change (on MongoDB its post-image; on databases that only look the document
up, such as the embedded one, possibly a later version, and null once deleted).
Account events carry the account's public fields (never secrets); `user.updated` fires
when one of them changed, `user.deleted` names the id only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.accounts.models import User
from app.clock import Clock, rfc3339
from app.collections.models import STORAGE_PREFIX
from app.db.change_pump import Committed
from app.documents.core import json_envelope
from app.documents.models import StoredDocument
from app.webhooks.repository import WEBHOOKS, WebhookRepository

log = logging.getLogger("docstore.webhooks")
USERS = User.Settings.name
# What an account event shows; a change to anything else is no user.updated.
PUBLIC_USER_FIELDS = ("email", "name", "role", "disabled", "email_verified")
# What a stored document holds besides its content.
INTERNAL_FIELDS = frozenset({"_search", "writes"})


def user_view(raw: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {"id": str(raw["_id"])}
    for name in PUBLIC_USER_FIELDS:
        view[name] = raw.get(name)
    for name in ("created_at", "updated_at"):
        value = raw.get(name)
        view[name] = rfc3339(value) if isinstance(value, datetime) else None
    return view


class WebhookFanout:
    config = frozenset({WEBHOOKS})

    def __init__(self, repository: WebhookRepository, *, clock: Clock) -> None:
        self.repository = repository
        self.clock = clock
        # (id, event types, collections or None for every one) of each enabled webhook.
        self.targets: list[tuple[ObjectId, frozenset[str], frozenset[str] | None]] = []
        # Until when each held webhook's messages wait (worker.py): new ones wait too,
        # rather than each taking a send slot until it times out.
        self.held: dict[ObjectId, datetime] = {}
        self.on_queued: Callable[[], None] | None = None

    async def reload(self) -> None:
        enabled = await self.repository.enabled()
        self.targets = [
            (
                raw["_id"],
                frozenset(raw.get("events", ())),
                frozenset(raw["collections"]) if raw.get("collections") else None,
            )
            for raw in enabled
        ]
        self.held = {raw["_id"]: raw["held_until"] for raw in enabled if raw.get("held_until")}

    def match(self) -> dict[str, Any] | None:
        document_events = [t for t in self.targets if any(e.startswith("document.") for e in t[1])]
        wanted: list[dict[str, Any]] = []
        if any(t[2] is None for t in document_events):
            wanted.append({"ns.coll": {"$regex": f"^{re.escape(STORAGE_PREFIX)}"}})
        else:
            names = sorted({STORAGE_PREFIX + c for t in document_events for c in t[2] or ()})
            if names:
                wanted.append({"ns.coll": {"$in": names}})
        if any(e.startswith("user.") for t in self.targets for e in t[1]):
            wanted.append({"ns.coll": USERS})
        if not wanted:
            return None
        return wanted[0] if len(wanted) == 1 else {"$or": wanted}

    async def take(self, changes: list[Committed]) -> None:
        if not self.targets:
            return
        messages = []
        for change in changes:
            try:
                found = self._event(change)
            except (KeyError, TypeError, ValueError):
                # A document written around the API (mongosh) in a shape it cannot show:
                # skipped, so one odd document never stops every webhook.
                log.exception("webhook: a change could not be shown; skipped")
                continue
            if found is None:
                continue
            kind, collection, data = found
            body: bytes | None = None
            for webhook, events, collections in self.targets:
                if kind not in events or (
                    collection is not None
                    and collections is not None
                    and collection not in collections
                ):
                    continue
                if body is None:
                    body = json.dumps(
                        {"type": kind, "timestamp": rfc3339(change.at), "data": data},
                        ensure_ascii=False,
                        separators=(",", ":"),
                        default=str,  # BSON values written around the API
                    ).encode()
                message = {"webhook": webhook, "event": change.event, "type": kind, "body": body}
                if webhook in self.held:
                    message["due_at"] = self.held[webhook]
                messages.append(message)
        if await self.repository.enqueue(messages, now=self.clock()) and self.on_queued:
            self.on_queued()

    @staticmethod
    def _event(change: Committed) -> tuple[str, str | None, dict[str, Any]] | None:
        if change.namespace == USERS:
            if change.kind == "deleted":
                return "user.deleted", None, {"id": str(change.doc_id)}
            if change.after is None:
                return None
            if (
                change.kind == "updated"
                and change.fields is not None
                and not change.fields.intersection(PUBLIC_USER_FIELDS)
            ):
                return None
            return f"user.{change.kind}", None, user_view(change.after)
        if not change.namespace.startswith(STORAGE_PREFIX):
            return None
        if change.fields is not None and change.fields <= INTERNAL_FIELDS:
            return None  # search terms re-indexed (make reindex): no change a user made
        collection = change.namespace[len(STORAGE_PREFIX) :]
        image = change.before if change.kind == "deleted" else change.after
        document = (
            None if image is None else json_envelope(collection, StoredDocument.from_mongo(image))
        )
        if document is not None:
            version = document["version"]
        elif change.before is not None:
            version = int(change.before.get("version", 0)) + (0 if change.kind == "deleted" else 1)
        else:
            version = None
        data = {
            "collection": collection,
            "id": change.doc_id,
            "version": version,
            "document": document,
        }
        return f"document.{change.kind}", collection, data

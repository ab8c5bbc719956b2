"""What admins do with webhooks: register, change, rotate secrets, read the delivery log,
send a message again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId

from app.clock import Clock
from app.db.ids import parse_object_id
from app.errors import Conflict, ErrorCode, FieldError, NotFound, ValidationFailed
from app.webhooks.repository import MAX_WEBHOOKS, WebhookRepository
from app.webhooks.schemas import WebhookIn, WebhookPatch
from app.webhooks.secrets import Secrets
from app.webhooks.sender import url_problem
from app.webhooks.signing import new_secret


def webhook_not_found(webhook_id: str) -> NotFound:
    return NotFound(f"There is no webhook {webhook_id}", code=ErrorCode.WEBHOOK_NOT_FOUND)


def delivery_not_found(delivery_id: str) -> NotFound:
    return NotFound(
        f"That webhook has no delivery {delivery_id}", code=ErrorCode.DELIVERY_NOT_FOUND
    )


class WebhookService:
    def __init__(
        self,
        repository: WebhookRepository,
        secrets: Secrets,
        *,
        clock: Clock,
        allow_private: bool,
        secret_overlap_seconds: int,
    ) -> None:
        self.repository = repository
        self.secrets = secrets
        self.clock = clock
        self.allow_private = allow_private
        self.overlap = timedelta(seconds=secret_overlap_seconds)
        # Told when a message is queued by hand (a redelivery): the worker looks at once.
        self.on_queued: Any = None

    def _check(self, url: str | None, events: list[str] | None) -> None:
        errors = []
        if url is not None and (problem := url_problem(url, allow_private=self.allow_private)):
            errors.append(FieldError(loc=["body", "url"], msg=problem, type="url"))
        if events is not None and len(set(events)) != len(events):
            errors.append(
                FieldError(loc=["body", "events"], msg="an event is listed twice", type="unique")
            )
        if errors:
            raise ValidationFailed(f"The webhook cannot be saved: {errors[0].msg}", errors=errors)

    async def _get(self, webhook_id: str) -> dict[str, Any]:
        oid = parse_object_id(webhook_id)
        raw = None if oid is None else await self.repository.get(oid)
        if raw is None:
            raise webhook_not_found(webhook_id)
        return raw

    async def every(self) -> list[dict[str, Any]]:
        return await self.repository.all()

    async def get(self, webhook_id: str) -> dict[str, Any]:
        return await self._get(webhook_id)

    async def create(self, body: WebhookIn) -> tuple[dict[str, Any], str]:
        self._check(body.url, list(body.events))
        if await self.repository.count() >= MAX_WEBHOOKS:
            raise Conflict(
                f"There are {MAX_WEBHOOKS} webhooks, the most a server keeps; delete one first",
                code=ErrorCode.WEBHOOK_LIMIT_REACHED,
            )
        now = self.clock()
        oid = ObjectId()
        secret = new_secret()
        raw = {
            "_id": oid,
            **body.model_dump(),
            "collections": sorted(set(body.collections)),
            "secret": self.secrets.seal(secret, str(oid)),
            "created_at": now,
            "updated_at": now,
        }
        await self.repository.insert(raw)
        return raw, secret

    async def update(self, webhook_id: str, patch: WebhookPatch) -> dict[str, Any]:
        # null leaves a field as it is, as omitting it does (a description: emptied).
        given = patch.model_dump(exclude_unset=True)
        self._check(patch.url, list(patch.events) if patch.events is not None else None)
        current = await self._get(webhook_id)
        changes = {k: v for k, v in given.items() if v is not None}
        if "collections" in given:
            changes["collections"] = sorted(set(given["collections"] or []))
        if "description" in given and given["description"] is None:
            changes["description"] = ""
        changes["updated_at"] = self.clock()
        updated = await self.repository.update(current["_id"], changes)
        if updated is None:
            raise webhook_not_found(webhook_id)
        if updated["url"] != current["url"]:
            # Another endpoint: what waits for the old one's backoff or hold goes now.
            await self.repository.release(current["_id"], now=changes["updated_at"], every=True)
            updated.pop("held_until", None)
            if self.on_queued is not None:
                self.on_queued()
        return updated

    async def delete(self, webhook_id: str) -> None:
        current = await self._get(webhook_id)
        if not await self.repository.delete(current["_id"]):
            raise webhook_not_found(webhook_id)

    async def rotate(self, webhook_id: str) -> tuple[str, Any]:
        """A new signing secret; the current one keeps signing too for the overlap."""
        current = await self._get(webhook_id)
        now = self.clock()
        secret = new_secret()
        until = now + self.overlap
        updated = await self.repository.update(
            current["_id"],
            {
                "secret": self.secrets.seal(secret, str(current["_id"])),
                "previous_secret": current["secret"],
                "previous_until": until,
                "updated_at": now,
            },
        )
        if updated is None:
            raise webhook_not_found(webhook_id)
        return secret, until

    async def deliveries(
        self, webhook_id: str, *, status: str | None, before: ObjectId | None, limit: int
    ) -> list[dict[str, Any]]:
        current = await self._get(webhook_id)
        return await self.repository.page(current["_id"], status=status, before=before, limit=limit)

    async def delivery(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        current = await self._get(webhook_id)
        oid = parse_object_id(delivery_id)
        raw = None if oid is None else await self.repository.delivery(current["_id"], oid)
        if raw is None:
            raise delivery_not_found(delivery_id)
        return raw

    async def redeliver(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        found = await self.delivery(webhook_id, delivery_id)
        raw = await self.repository.redeliver(found["webhook"], found["_id"], now=self.clock())
        if raw is None:
            raise Conflict(
                "That message is still queued: it is sent again on its own",
                code=ErrorCode.DELIVERY_PENDING,
            )
        if self.on_queued is not None:
            self.on_queued()
        return raw

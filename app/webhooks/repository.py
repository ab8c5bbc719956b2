"""Webhook endpoints and their delivery queue, in MongoDB.

`webhooks`: the endpoints admins registered, each with its signing secret sealed
(AES-GCM, bound to the webhook's id; the key comes from JWT_SECRET as for TOTP
secrets), and during a rotation's grace period the previous one.

`webhook_deliveries`: one message per webhook and event, queued as the mail outbox is
(app/mail/outbox.py): claimed with an atomic lease, so of several processes exactly one
sends it; settled only by the lease holder; retried with exponential backoff; given up
once older than WEBHOOK_GIVE_UP_SECONDS. (webhook, event) is unique, so recording the
same change twice queues it once. Finished messages are kept a week (TTL) as the
delivery log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument

from app.db.client import Db, insert_new

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"
KEEP_FINISHED = timedelta(days=7)
# Attempts kept in a delivery's log (the latest).
LOG_ATTEMPTS = 10
MAX_WEBHOOKS = 100


@dataclass(frozen=True, slots=True)
class Claimed:
    id: ObjectId
    webhook: ObjectId
    body: bytes
    attempts: int
    created_at: datetime
    # Who holds it (the claim's token): only its holder settles it.
    lease: str
    # The webhook as it was when the message was claimed (None: deleted since).
    hook: dict[str, Any] | None = None


class WebhookRepository:
    def __init__(self, db: Db, *, max_time_ms: int) -> None:
        self.webhooks = db[WEBHOOKS]
        self.deliveries = db[DELIVERIES]
        self.max_time_ms = max_time_ms

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_indexes(
            [
                IndexModel(
                    [("webhook", ASCENDING), ("event", ASCENDING)], name="once", unique=True
                ),
                IndexModel([("status", ASCENDING), ("due_at", ASCENDING)], name="due"),
                IndexModel(
                    [("webhook", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)],
                    name="log",
                ),
                IndexModel([("webhook", ASCENDING), ("_id", DESCENDING)], name="log_all"),
                IndexModel(
                    [("finished_at", ASCENDING)],
                    name="finished_ttl",
                    expireAfterSeconds=int(KEEP_FINISHED.total_seconds()),
                ),
            ]
        )

    # -- endpoints -------------------------------------------------------------------------

    async def all(self) -> list[dict[str, Any]]:
        cursor = self.webhooks.find({}, max_time_ms=self.max_time_ms).sort("_id", 1)
        return [raw async for raw in cursor.limit(MAX_WEBHOOKS + 1)]

    async def enabled(self) -> list[dict[str, Any]]:
        cursor = self.webhooks.find({"enabled": True}, max_time_ms=self.max_time_ms)
        return [raw async for raw in cursor.limit(MAX_WEBHOOKS)]

    async def count(self) -> int:
        return await self.webhooks.count_documents({}, maxTimeMS=self.max_time_ms)

    async def queue_counts(self, *, now: datetime) -> tuple[int, int, int]:
        """Messages waiting and failed (each count answered by the `due` index), and the
        webhooks whose messages are held now."""
        pending, failed = [
            await self.deliveries.count_documents({"status": s}, maxTimeMS=self.max_time_ms)
            for s in ("pending", "failed")
        ]
        held = await self.webhooks.count_documents(
            {"held_until": {"$gt": now}}, maxTimeMS=self.max_time_ms
        )
        return pending, failed, held

    async def get(self, webhook_id: ObjectId) -> dict[str, Any] | None:
        return await self.webhooks.find_one({"_id": webhook_id})

    async def get_many(self, ids: set[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        return {raw["_id"]: raw async for raw in self.webhooks.find({"_id": {"$in": list(ids)}})}

    async def insert(self, raw: dict[str, Any]) -> None:
        await self.webhooks.insert_one(raw)

    async def update(self, webhook_id: ObjectId, changes: dict[str, Any]) -> dict[str, Any] | None:
        return await self.webhooks.find_one_and_update(
            {"_id": webhook_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def delete(self, webhook_id: ObjectId) -> bool:
        result = await self.webhooks.delete_one({"_id": webhook_id})
        if result.deleted_count:
            await self.deliveries.delete_many({"webhook": webhook_id, "status": "pending"})
        return bool(result.deleted_count)

    # -- the queue -------------------------------------------------------------------------

    async def enqueue(self, messages: list[dict[str, Any]], *, now: datetime) -> int:
        """Queue messages ({webhook, event, type, body}, and `due_at` when not now: a held
        webhook's); those already queued (the same webhook and event) are left alone.
        Returns how many are new."""
        if not messages:
            return 0
        raws = []
        for m in messages:
            due = max(m.get("due_at") or now, now)
            raws.append(
                {
                    **m,
                    "body": Binary(m["body"]),
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "due_at": due,
                    "lease_until": due,
                    "log": [],
                }
            )
        return await insert_new(self.deliveries, raws)

    async def claim_many(
        self,
        worker: str,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        busy: Mapping[ObjectId, int] | None = None,
        share: int | None = None,
        cap: int | None = None,
        single: Collection[ObjectId] = (),
    ) -> list[Claimed] | None:
        """Up to `limit` due messages, oldest first, each leased to `worker` (several
        processes may race for the same ones: each message's update is atomic and
        conditioned on its lease being free, so each goes to one of them). Three round
        trips for a batch instead of two per message. Counting `busy` (sends in flight, by
        webhook), each webhook first gets up to `share` sends at once, then what is left
        up to `cap`: one that never answers cannot hold every slot, and webhooks over
        their share give way to the others. A held webhook (its endpoint stopped
        answering: `held_until` is set until it answers, whichever process held it) or
        one in `single` gets one send at a time, the probe; a held one's probe is one
        across all processes too (`probe_until` and `probe_by` on the webhook, taken with
        the message for its lease; its sender ends it, `end_probe`). None: nothing was due
        (that this worker may take); [] : other processes took what was (look again at
        once)."""
        due = {"status": "pending", "due_at": {"$lte": now}, "lease_until": {"$lte": now}}
        in_flight = busy or {}

        def probe_out(webhooks: Collection[ObjectId]) -> list[ObjectId]:
            """Those of `webhooks` (one send at a time) whose send is out, not yet left out."""
            return [w for w in webhooks if in_flight.get(w, 0) >= 1 and w not in full]

        def probing(hook: ObjectId) -> bool:
            """Whether the held webhook's probe is out, here or in another process."""
            return in_flight.get(hook, 0) >= 1 or hooks[hook].get("probe_until", now) > now

        full = [w for w, n in in_flight.items() if cap is not None and n >= cap]
        full += probe_out(single)
        # A few more than wanted, for the turns a webhook over its share must pass.
        looked = limit if cap is None else min(limit * 4, 200)
        hooks: dict[ObjectId, dict[str, Any]] = {}
        # Each look past a backlog leaves out at least one more webhook: bounded by them.
        for _ in range(MAX_WEBHOOKS + 1):
            wanted = {**due, "webhook": {"$nin": full}} if full else due
            cursor = self.deliveries.find(wanted, projection={"_id": True, "webhook": True})
            oldest = cursor.sort([("due_at", ASCENDING), ("_id", ASCENDING)])
            candidates = await oldest.limit(looked).to_list()
            if not candidates:
                return None
            # The webhooks as they are now (one read): the sends need them, and a hold
            # taken by another process shows here (held_until, until it answers).
            if missing := {raw["webhook"] for raw in candidates} - hooks.keys():
                hooks |= await self.get_many(missing)
            held = {hook for hook, raw in hooks.items() if "held_until" in raw}
            # One held whose probe is out, here or in another process: look again past its
            # backlog, or it would fill the candidates and starve the other webhooks.
            passed = [hook for hook in held if hook not in full and probing(hook)]
            if not passed:
                break
            full += passed
        single = {*single, *held}
        taken: Counter[ObjectId] = Counter(in_flight)
        ids: list[ObjectId] = []
        token = f"{worker}:{ObjectId()}"
        probes: set[ObjectId] = set()  # held webhooks whose probe this claim took
        refused: set[ObjectId] = set()  # and those whose probe another process took
        for most in (share, cap):  # fair shares first, then the rest (oldest first)
            for raw in candidates:
                if len(ids) == limit:
                    break
                hook = raw["webhook"]
                most_here = 1 if hook in single else most
                if (
                    hook in refused
                    or raw["_id"] in ids
                    or (most_here is not None and taken[hook] >= most_here)
                ):
                    continue
                if hook in held and hook not in probes:
                    if not await self._take_probe(hook, token, now=now, until=now + lease):
                        refused.add(hook)
                        continue
                    probes.add(hook)
                taken[hook] += 1
                ids.append(raw["_id"])
        if not ids:
            # Another process's probe, taken since the webhooks were read: look again.
            return [] if refused else None
        await self.deliveries.update_many(
            {"_id": {"$in": ids}, **due},
            {"$set": {"lease_until": now + lease, "leased_by": token}, "$inc": {"attempts": 1}},
        )
        found = self.deliveries.find(
            {"_id": {"$in": ids}, "leased_by": token}, projection={"log": False}
        ).sort([("due_at", ASCENDING), ("_id", ASCENDING)])
        claimed = [
            Claimed(
                raw["_id"],
                raw["webhook"],
                bytes(raw["body"]),
                raw["attempts"],
                raw["created_at"],
                token,
                hooks.get(raw["webhook"]),
            )
            async for raw in found
        ]
        # A probe whose message went elsewhere meanwhile (held again, or claimed by another
        # process): nothing here would end it.
        for hook in probes - {c.webhook for c in claimed}:
            await self._end_probe(hook, token)
        return claimed

    async def _take_probe(
        self, webhook_id: ObjectId, token: str, *, now: datetime, until: datetime
    ) -> bool:
        """Whether the claim `token` sends the held webhook's probe (no other is out)."""
        free = [{"probe_until": {"$exists": False}}, {"probe_until": {"$lte": now}}]
        taken = await self.webhooks.update_one(
            {"_id": webhook_id, "held_until": {"$exists": True}, "$or": free},
            {"$set": {"probe_until": until, "probe_by": token}},
        )
        return taken.modified_count == 1

    async def end_probe(self, claimed: Claimed) -> None:
        """The claim's send is over, whatever came of it (an answer, a new hold, a refused
        connection, a disabled webhook): the next probe may go. Only its own probe."""
        if claimed.hook is not None and "held_until" in claimed.hook:
            await self._end_probe(claimed.webhook, claimed.lease)

    async def _end_probe(self, webhook_id: ObjectId, token: str) -> None:
        await self.webhooks.update_one(
            {"_id": webhook_id, "probe_by": token}, {"$unset": {"probe_until": "", "probe_by": ""}}
        )

    async def settle(
        self,
        claimed: Claimed,
        *,
        attempt: dict[str, Any],
        status: str,
        due: datetime | None,
        now: datetime,
    ) -> None:
        """Record an attempt; `status` pending (with `due`), delivered or failed. Only the
        lease holder settles (a stale worker's late answer is ignored)."""
        update: dict[str, Any] = {
            "$set": {"status": status, "last_error": attempt.get("error")},
            "$push": {"log": {"$each": [attempt], "$slice": -LOG_ATTEMPTS}},
        }
        if due is not None:
            update["$set"] |= {"due_at": due, "lease_until": due}
        else:
            update["$set"]["finished_at"] = now
        await self.deliveries.update_one({"_id": claimed.id, "leased_by": claimed.lease}, update)

    async def hold(
        self, webhook_id: ObjectId, *, url: str, until: datetime, now: datetime
    ) -> int | None:
        """Hold the webhook's queued messages (not those being sent) until `until`, and
        say so on the webhook; how many were held. None: the webhook no longer points at
        `url` (an admin moved it meanwhile), so nothing is held."""
        marked = await self.webhooks.update_one(
            {"_id": webhook_id, "url": url}, {"$set": {"held_until": until}}
        )
        if marked.matched_count == 0:
            return None
        result = await self.deliveries.update_many(
            {
                "webhook": webhook_id,
                "status": "pending",
                "due_at": {"$lt": until},
                # Waiting for a retry, or due and not leased: not one being sent.
                "$or": [{"due_at": {"$gt": now}}, {"lease_until": {"$lte": now}}],
            },
            {"$set": {"due_at": until, "lease_until": until}},
        )
        return result.modified_count

    async def release(self, webhook_id: ObjectId, *, now: datetime, every: bool = False) -> None:
        """Lift the webhook's hold: what it kept waiting is due now (its endpoint answers
        again). `every`: every queued message not being sent, backoffs included (the
        webhook points somewhere else)."""
        held = await self.webhooks.find_one_and_update(
            {"_id": webhook_id} if every else {"_id": webhook_id, "held_until": {"$exists": True}},
            {"$unset": {"held_until": "", "probe_until": "", "probe_by": ""}},
            projection={"held_until": True},
        )
        if held is None or not (every or "held_until" in held):
            return
        due: dict[str, Any] = {"$gt": now}
        if not every:
            due["$lte"] = held["held_until"]
        await self.deliveries.update_many(
            {"webhook": webhook_id, "status": "pending", "due_at": due},
            {"$set": {"due_at": now, "lease_until": now}},
        )

    async def redeliver(
        self, webhook_id: ObjectId, delivery_id: ObjectId, *, now: datetime
    ) -> dict[str, Any] | None:
        """Send a finished (delivered or failed) message again, as soon as possible."""
        return await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "webhook": webhook_id, "status": {"$ne": "pending"}},
            {
                # A fresh round: attempts (and so backoff) and the give-up age start over;
                # the log keeps the earlier attempts.
                "$set": {
                    "status": "pending",
                    "due_at": now,
                    "lease_until": now,
                    "created_at": now,
                    "attempts": 0,
                },
                "$unset": {"leased_by": "", "finished_at": ""},
            },
            projection={"body": False},
            return_document=ReturnDocument.AFTER,
        )

    async def delivery(self, webhook_id: ObjectId, delivery_id: ObjectId) -> dict[str, Any] | None:
        return await self.deliveries.find_one(
            {"_id": delivery_id, "webhook": webhook_id}, projection={"body": False}
        )

    async def page(
        self, webhook_id: ObjectId, *, status: str | None, before: ObjectId | None, limit: int
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"webhook": webhook_id}
        if status is not None:
            query["status"] = status
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = self.deliveries.find(
            query, projection={"body": False}, max_time_ms=self.max_time_ms
        ).sort("_id", -1)
        return [raw async for raw in cursor.limit(limit)]

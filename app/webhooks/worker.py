"""The delivery worker: each server process sends due webhook messages, several at once.

Safe with any number of processes: each message is claimed with an atomic lease
(repository.py), so in the normal case exactly one process sends it, once. A process that
dies mid-send only delays the message until its lease ends; then another sends it again
(at least once: receivers deduplicate on `webhook-id`). Stopped cleanly on shutdown:
sends in flight are cancelled and their messages retried when their leases end.

Endpoints that stop answering: after HOLD_AFTER sends in a row to one webhook reached
their time limit, its queued messages are held back (the hold doubles each time, from
WEBHOOK_RETRY_SECONDS up to an hour; the webhook shows `held_until`). A dead endpoint then
takes one send slot across all processes, its probe's (one message at a time until a
process counts HOLD_AFTER of them and holds it again), where it took one per message for
the whole time limit. The first answer lifts the hold.

Order: messages are claimed oldest first, so one process sends a document's changes in
commit order; a retry, or several processes, can deliver them out of order. Each body
names the document's `version`: keep the highest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo.errors import PyMongoError

from app.clock import Clock
from app.observability.metrics import WEBHOOK_ATTEMPTS
from app.tasks import NextRetry, backoff, cancel_and_wait
from app.webhooks import signing
from app.webhooks.repository import Claimed, WebhookRepository
from app.webhooks.secrets import Secrets
from app.webhooks.sender import Attempt, Sender

log = logging.getLogger("docstore.webhooks")

# Unanswered sends in a row (time limit reached) after which a webhook's queue is held.
HOLD_AFTER = 3


class DeliveryWorker:
    def __init__(
        self,
        repository: WebhookRepository,
        sender: Sender,
        secrets: Secrets,
        *,
        clock: Clock,
        concurrency: int,
        retry_seconds: float,
        give_up_seconds: float,
        poll_seconds: float = 2.0,
    ) -> None:
        self.repository = repository
        self.sender = sender
        self.secrets = secrets
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.give_up = timedelta(seconds=give_up_seconds)
        self.poll_seconds = poll_seconds
        # Long enough for the request's time limit and the settling write after it.
        self.lease = timedelta(seconds=sender.timeout + 30)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.concurrency = concurrency
        # Sends one webhook may have at once: a quarter of the slots while others wait
        # too, at most all but two: an endpoint that never answers delays the others by
        # nothing (only its own sends wait for their time limits), while a lone busy
        # webhook still gets most of the slots. Several hanging endpoints can still fill
        # them (each until its sends time out).
        self.share = max(1, concurrency // 4)
        self.cap = max(1, concurrency - 2)
        self._sending: set[asyncio.Task[None]] = set()
        self._busy: Counter[ObjectId] = Counter()  # sends in flight, by webhook
        # Sends in a row that reached their time limit, by webhook (this process's), and
        # the holds this process put on their queues.
        self._unanswered: Counter[ObjectId] = Counter()
        self._holds: Counter[ObjectId] = Counter()  # holds in a row: each twice as long
        self._held: dict[ObjectId, datetime] = {}
        self._wake = asyncio.Event()
        self._next_retry = NextRetry(clock, poll_seconds)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Attempts made by this process (tests wait on the count, not on time).
        self.attempts = 0

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="webhook-worker")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await cancel_and_wait(self._task)
        self._task = None
        if self._sending:
            # Sends in flight finish (within their time limit) rather than being cut off
            # and sent again after their leases end.
            await asyncio.wait(set(self._sending), timeout=self.sender.timeout + 1)
        for task in list(self._sending):
            await cancel_and_wait(task)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                while not self._stopping:
                    free = self.concurrency - len(self._sending)
                    if free <= 0:
                        await asyncio.wait(set(self._sending), return_when=asyncio.FIRST_COMPLETED)
                        continue
                    batch = await self.repository.claim_many(
                        self.worker_id,
                        now=self.clock(),
                        lease=self.lease,
                        limit=free,
                        busy=self._busy,
                        share=self.share,
                        cap=self.cap,
                        # A held webhook probes with one message, not all that are due
                        # (the webhooks a process held are held in the database too).
                        single=self._held.keys(),
                    )
                    if batch is None:
                        break  # nothing due
                    # (An empty batch: other processes won those; look again at once.)
                    for claimed in batch:
                        self._busy[claimed.webhook] += 1
                        send = self._send(claimed, claimed.hook)
                        task = asyncio.create_task(send, name="webhook-send")
                        self._sending.add(task)
                        task.add_done_callback(self._sending.discard)
                        # (A callback: it runs even for a task cancelled before it began.)
                        task.add_done_callback(partial(self._release, claimed.webhook))
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again at the next poll
                log.exception("webhook queue unavailable")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_retry.pause())

    def _release(self, webhook: ObjectId, _: object) -> None:
        self._busy[webhook] -= 1
        if self._busy[webhook] <= 0:
            del self._busy[webhook]

    async def _send(self, claimed: Claimed, webhook: dict[str, Any] | None) -> None:
        try:
            await self.deliver(claimed, webhook)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "webhook delivery failed unexpectedly", extra={"delivery": str(claimed.id)}
            )
        finally:
            self.attempts += 1
            # A slot is free: look for more now rather than at the next poll.
            self._wake.set()

    async def _watch(
        self, hook: ObjectId, webhook: dict[str, Any], result: Attempt, now: datetime
    ) -> datetime | None:
        """Count the webhook's unanswered sends in a row, and hold its queue from the
        HOLD_AFTER-th on; an answer lifts the hold. When its messages are held: until when."""
        if result.status is not None:  # it answers (whatever it said)
            self._unanswered.pop(hook, None)
            self._holds.pop(hook, None)
            if self._held.pop(hook, None) is not None or "held_until" in webhook:
                await self.repository.release(hook, now=now)
            return None
        held = self._held.get(hook)
        if not result.timed_out or (held is not None and held > now):
            # Refused at once (it took no slot for long), or a send begun before the hold
            # that timed out since: the hold stands as it is (one step per hold, not one
            # per send that was in flight).
            return held
        self._unanswered[hook] = min(self._unanswered[hook] + 1, HOLD_AFTER)
        if self._unanswered[hook] < HOLD_AFTER:
            return held
        self._holds[hook] = level = min(self._holds[hook] + 1, 20)  # (2**19 steps: an hour)
        until = now + backoff(level, self.retry_seconds)
        count = await self.repository.hold(hook, url=webhook["url"], until=until, now=now)
        if count is None:  # pointed elsewhere meanwhile: that endpoint is not this one
            return None
        self._held[hook] = until
        self._next_retry.schedule(until)  # look again when the hold ends, not at a poll
        log.warning(
            "webhook endpoint does not answer: its messages are held",
            extra={"webhook": str(hook), "held": count, "until": until},
        )
        return until

    async def deliver(self, claimed: Claimed, webhook: dict[str, Any] | None) -> None:
        """Send one claimed message and record what came of it; then, whatever came of
        it (an answer, a new hold, a refused connection, a disabled webhook), if it was a
        held webhook's probe, the next one may go."""
        try:
            await self._attempt(claimed, webhook)
        except asyncio.CancelledError:
            raise  # stopping (no database call now): a probe lapses with the claim's lease
        except Exception:
            await self._end_probe(claimed)
            raise
        await self._end_probe(claimed)

    async def _end_probe(self, claimed: Claimed) -> None:
        with contextlib.suppress(PyMongoError):  # else it lapses with the claim's lease
            await self.repository.end_probe(claimed)

    async def _attempt(self, claimed: Claimed, webhook: dict[str, Any] | None) -> None:
        now = self.clock()
        if webhook is None or not webhook.get("enabled", False):
            reason = "the webhook was deleted" if webhook is None else "the webhook is disabled"
            attempt = {
                "at": now,
                "status": None,
                "latency_ms": 0.0,
                "error": reason,
                "response": None,
            }
            await self.repository.settle(
                claimed, attempt=attempt, status="failed", due=None, now=now
            )
            return
        in_force = self.secrets.in_force(webhook, now=now)
        msg_id = f"msg_{claimed.id}"
        if in_force:
            headers = signing.headers(in_force, msg_id, int(now.timestamp()), claimed.body)
            result = await self.sender.post(webhook["url"], claimed.body, headers)
        else:  # no key opens its secret (JWT_SECRET changed): never sent unsigned
            result = Attempt(None, 0.0, None, "no key opens the signing secret: rotate it")
        now = self.clock()
        held = await self._watch(claimed.webhook, webhook, result, now)
        attempt = {
            "at": now,
            "status": result.status,
            "latency_ms": result.latency_ms,
            "error": result.error or (None if result.delivered else f"answered {result.status}"),
            "response": result.excerpt,
        }
        if result.delivered:
            WEBHOOK_ATTEMPTS.labels("delivered").inc()
            await self.repository.settle(
                claimed, attempt=attempt, status="delivered", due=None, now=now
            )
            return
        WEBHOOK_ATTEMPTS.labels("blocked" if result.blocked else "failed").inc()
        due: datetime | None = now + backoff(claimed.attempts, self.retry_seconds)
        if due is not None and held is not None:
            due = max(due, held)
        if due is not None and due - claimed.created_at > self.give_up:
            due = None
        self._next_retry.schedule(due)
        await self.repository.settle(
            claimed,
            attempt=attempt,
            status="pending" if due else "failed",
            due=due,
            now=now,
        )
        log.warning(
            "webhook delivery failed" + ("; will retry" if due else "; giving up"),
            extra={
                "webhook": str(claimed.webhook),
                "attempts": claimed.attempts,
                "error": attempt["error"],
            },
        )

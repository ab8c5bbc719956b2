"""The outbox worker: one task per server process delivering due messages.

Safe with any number of processes (each claim is an atomic lease, see outbox.py) and
stopped cleanly on shutdown (a message cut off mid-send is retried when its lease ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from app.clock import Clock
from app.mail.outbox import Outbox, OutboxMessage
from app.mail.transport import MailTransport
from app.tasks import NextRetry, cancel_and_wait

log = logging.getLogger("docstore.mail")


@dataclass
class Composed:
    """A message ready to send; `undo` runs when delivery fails (e.g. revoke its token)."""

    subject: str
    text: str
    html: str
    undo: Callable[[], Awaitable[None]] | None = None


# None: nothing to send for this message (e.g. a reset for an address with no account).
Composer = Callable[[OutboxMessage], Awaitable[Composed | None]]


class MailWorker:
    def __init__(
        self,
        outbox: Outbox,
        transport: MailTransport,
        compose: Composer,
        *,
        sender: str,
        clock: Clock,
        poll_seconds: float = 2.0,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.compose = compose
        self.sender = sender
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._next_retry = NextRetry(clock, poll_seconds)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Set after each pass over the due messages (tests wait on it, not on time).
        self.idle = asyncio.Event()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mail-worker")

    def wake(self) -> None:
        """A message was queued by this process: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        # As the change feed: the flag ends the loop even if the driver swallows the
        # cancellation (a database that vanished mid-call).
        self._stopping = True
        self._wake.set()
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                while not self._stopping and await self.deliver_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again at the next poll
                log.exception("mail outbox unavailable")
            self.idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_retry.pause())
            self.idle.clear()

    async def deliver_one(self) -> bool:
        """Claim and deliver one due message; False when none is due."""
        message = await self.outbox.claim(self.worker_id, now=self.clock(), lease=self.lease)
        if message is None:
            return False
        composed = await self.compose(message)
        if composed is None:
            await self.outbox.dropped(message, self.worker_id, now=self.clock(), why="no recipient")
            return True
        try:
            await self.transport.send(self._email(message, composed))
        except Exception as exc:
            if composed.undo is not None:
                await composed.undo()
            again = await self.outbox.failed(
                message, self.worker_id, now=self.clock(), error=f"{type(exc).__name__}: {exc}"
            )
            self._next_retry.schedule(again)
            log.warning(
                "mail delivery failed" + ("; will retry" if again else "; giving up"),
                extra={"kind": message.kind, "attempts": message.attempts, "error": str(exc)},
            )
            return True
        await self.outbox.sent(message, self.worker_id, now=self.clock())
        log.info("mail sent", extra={"kind": message.kind, "attempts": message.attempts})
        return True

    def _email(self, message: OutboxMessage, composed: Composed) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = composed.subject
        email["Date"] = format_datetime(self.clock())
        # The outbox id: a resend after a lost acknowledgement is recognisably the same mail.
        email["Message-ID"] = f"<{message.id}@docstore>"
        email.set_content(composed.text)
        email.add_alternative(composed.html, subtype="html")
        return email

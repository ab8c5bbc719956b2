"""The outbox worker retries a failed delivery when the retry is due, not at its next poll."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from app.clock import utc_now
from app.container import Container
from app.mail.outbox import Outbox, OutboxMessage
from app.mail.worker import Composed, MailWorker

# A guard against a hang, not a measurement: the worker's poll is an hour.
GUARD_SECONDS = 30


class FlakyTransport:
    """Refuses the first delivery (an SMTP outage), accepts the rest."""

    def __init__(self) -> None:
        self.refused = 0
        self.delivered: list[EmailMessage] = []
        self.arrived = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        if not self.refused:
            self.refused += 1
            raise ConnectionRefusedError("the SMTP server is down")
        self.delivered.append(message)
        self.arrived.set()


async def compose(message: OutboxMessage) -> Composed:
    return Composed(subject=f"About {message.kind}", text="Hello", html="<p>Hello</p>")


async def test_a_failed_delivery_is_retried_when_due_without_waiting_for_the_poll(
    container: Container,
) -> None:
    await container.mail.stop()  # the app's own worker would race this one for the message
    outbox = Outbox(container.db, retry_seconds=0.05)
    transport = FlakyTransport()
    worker = MailWorker(
        outbox, transport, compose, sender="t@example.com", clock=utc_now, poll_seconds=3600
    )
    await outbox.enqueue("verify_email", "ada@example.com", {}, now=utc_now())
    worker.start()
    try:
        await asyncio.wait_for(transport.arrived.wait(), GUARD_SECONDS)
    finally:
        await worker.stop()
        container.mail.start()
    assert transport.refused == 1
    assert [m["To"] for m in transport.delivered] == ["ada@example.com"]

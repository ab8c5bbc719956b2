"""A real SMTP server for tests (aiosmtpd) and what to read in the mails it receives."""

from __future__ import annotations

import asyncio
import email
import queue
import re
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any


class Inbox:
    """What the SMTP server received, in order; waits on arrivals, never on time."""

    def __init__(self) -> None:
        self._arrived: queue.Queue[EmailMessage] = queue.Queue()
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        self._arrived.put(message)
        return "250 OK"

    async def next(self, within: float = 30) -> EmailMessage:
        return await asyncio.to_thread(self._arrived.get, True, within)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None, "every message has a text and an HTML part"
    return text.get_content(), html.get_content()


def token_in(message: EmailMessage, path: str) -> str:
    text, html = parts(message)
    match = re.search(rf"https://app\.example/{path}\?token=([A-Za-z0-9_%-]+)", text)
    assert match, text
    assert match.group(0) in html
    return match.group(1)

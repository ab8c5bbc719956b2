"""Where mail goes: an SMTP server (MAIL_URL), or .eml files in development."""

from __future__ import annotations

import asyncio
import logging
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger("docstore.mail")


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """`smtp://user:pass@host:587?starttls=true` (STARTTLS), `smtps://host:465` (TLS), or
    `smtp://host:25` (plain, for a local relay). Credentials are URL-encoded."""

    def __init__(self, url: str, *, timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("MAIL_URL must look like smtp://user:pass@host:587?starttls=true")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        self.hostname = parts.hostname
        self.use_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.use_tls else 587 if "starttls" in query else 25)
        self.start_tls = query.get("starttls") in ("true", "1", "yes")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            # False, not None: without ?starttls=true the session stays as configured.
            start_tls=self.start_tls,
            timeout=self.timeout,
        )


class FileTransport:
    """Development without MAIL_URL: each message becomes DATA_DIR/mail/<id>.eml."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        name = message["Message-ID"].strip("<>").split("@")[0] + ".eml"
        target = self.directory / name
        await asyncio.to_thread(self._write, target, bytes(message))
        log.info(
            "mail written to a file (no MAIL_URL)",
            extra={"to": message["To"], "subject": message["Subject"], "file": str(target)},
        )

    def _write(self, target: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
            out.write(data)
        tmp.replace(target)

"""Run SecantusDB (a MongoDB wire-protocol server on WiredTiger) as a child process.

Used when no `MONGODB_URL` is configured: development (`make run`, data under
`.data/`) and the test suite (in-memory storage). Production always points at a
real MongoDB deployment.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger("docstore.embedded")

MEMORY = ":memory:"


class EmbeddedDatabaseError(RuntimeError):
    pass


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedDatabase:
    """A SecantusDB child process on a free loopback port.

    `storage` is a directory (kept across restarts) or `":memory:"`.
    """

    def __init__(self, storage: Path | str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.storage = storage
        self.host = host
        self.port = port or _free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> None:
        args = [sys.executable, "-m", "secantus", "--host", self.host, "--port", str(self.port)]
        if self.storage == MEMORY:
            args += ["--storage-path", MEMORY]
            output = subprocess.DEVNULL
            stderr: int | object = subprocess.DEVNULL
        else:
            storage = Path(self.storage)
            storage.mkdir(parents=True, exist_ok=True)
            args += ["--storage-path", str(storage / "db")]
            self._log_path = storage / "secantusdb.log"
            output = stderr = self._log_path.open("ab")
        log.info("starting embedded database", extra={"port": self.port})
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
            args, stdout=output, stderr=stderr, stdin=subprocess.DEVNULL
        )
        self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, object]] = MongoClient(
            self.url, serverSelectionTimeoutMS=250, connectTimeoutMS=250
        )
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise EmbeddedDatabaseError(self._failure_hint("exited during start-up"))
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise EmbeddedDatabaseError(
                            self._failure_hint(f"did not answer within {timeout:.0f}s")
                        ) from None
        finally:
            client.close()

    def _failure_hint(self, what: str) -> str:
        where = f"; see {self._log_path}" if self._log_path else ""
        locked = (
            " Another Docstore may already be using this data directory."
            if self.storage != MEMORY
            else ""
        )
        return f"The embedded SecantusDB on port {self.port} {what}{where}.{locked}"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server cleanly (SIGTERM lets WiredTiger checkpoint), or kill it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)

"""Run SecantusDB (a MongoDB wire-protocol server on WiredTiger) as a child process.

Used when no `MONGODB_URL` is configured: development (`make run`, data under
`.data/`) and the test suite (in-memory storage). Production always points at a
real MongoDB deployment.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger("docstore.embedded")

MEMORY = ":memory:"


class EmbeddedDatabaseError(RuntimeError):
    pass


def url_file(data_dir: Path) -> Path:
    return data_dir / "secantusdb.url"


def running_url(data_dir: Path, database: str) -> str | None:
    """The URL of an embedded server another process already runs on `data_dir`, if any.

    Refuses (EmbeddedDatabaseError) when that server was started for another database:
    it stops when its owner does, and DATA_DIR would hold two projects' data.
    """
    path = url_file(data_dir)
    if not path.exists():
        return None
    url, _, owner = path.read_text().strip().partition("\n")
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
    except PyMongoError:
        return None  # a stale file from a server that did not stop cleanly
    finally:
        client.close()
    owner = owner.strip()
    if owner and owner != database:
        raise EmbeddedDatabaseError(
            f"DATA_DIR={data_dir} already has an embedded database running for "
            f"MONGODB_DB={owner} (another `make run`?); for MONGODB_DB={database} "
            f"give this server its own directory: DATA_DIR={data_dir}-{database} "
            f"MONGODB_DB={database} PORT=<another port> make run"
        )
    return url


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedDatabase:
    """A SecantusDB child process on a free loopback port.

    `storage` is a directory (kept across restarts) or `":memory:"`.
    """

    def __init__(
        self,
        storage: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        test_commands: bool = False,
        cache_size: str | None = None,
        database: str = "",
    ) -> None:
        self.storage = storage
        # The MONGODB_DB of the API that starts it (recorded for running_url).
        self.database = database
        # WiredTiger's cache ("1G" by default). In memory it holds everything: documents,
        # indexes and the oplog (with pre-images), so big write volumes need more.
        self.cache_size = cache_size
        # Enables mongod's failpoints (configureFailPoint); for fault-injection tests only.
        self.test_commands = test_commands
        self.host = host
        self.port = port or _free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> None:
        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedDatabaseError(
                "The embedded database (secantusdb) is not installed: run `make install`, "
                "or set MONGODB_URL to a MongoDB server"
            )
        # `python -m secantus`, with a fix for its cost per write (see the module).
        server = "app.db.secantus_server"
        args = [sys.executable, "-m", server, "--host", self.host, "--port", str(self.port)]
        if self.test_commands:
            args.append("--enable-test-commands")
        if self.cache_size:
            args += ["--cache-size", self.cache_size]
        output: int | IO[bytes] = subprocess.DEVNULL
        if self.storage == MEMORY:
            args += ["--storage-path", MEMORY]
        else:
            storage = Path(self.storage)
            storage.mkdir(parents=True, exist_ok=True)
            args += ["--storage-path", str(storage / "db")]
            self._log_path = storage / "secantusdb.log"
            output = self._log_path.open("ab")
        log.info("starting embedded database", extra={"port": self.port})
        try:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
                args, stdout=output, stderr=output, stdin=subprocess.DEVNULL
            )
        finally:
            if not isinstance(output, int):
                output.close()  # the child holds its own copy of the descriptor
        self._wait_until_ready(timeout)
        if self.storage != MEMORY:
            # Lets scripts (make admin, seed) share the running server's database; the
            # second line says whose it is (running_url).
            self._url_file.write_text(f"{self.url}\n{self.database}\n")

    @property
    def _url_file(self) -> Path:
        return url_file(Path(self.storage))

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
        """Stop the server cleanly (SIGTERM lets WiredTiger checkpoint), or kill it. An
        in-memory one has nothing to keep: killed at once (a clean stop takes seconds)."""
        process, self.process = self.process, None
        if self.storage != MEMORY:
            self._url_file.unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return
        if self.storage == MEMORY:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)

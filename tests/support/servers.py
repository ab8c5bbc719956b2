"""The API as a real server: `python -m app`'s main (uvicorn) in a child process, forked
from one that imported the app (tests.support.forked)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from tests.support import forked
from tests.support.apps import ROOT, TEST_DATA_DIR

# Servers are forked from a process that has imported the app (tests.support.forked).
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(forked.PRELOAD)


class ServerProcess:
    """A forked `python -m app`, handled as a subprocess.Popen (what the tests use of it);
    `stderr` reads what it has written so far."""

    def __init__(self, process: BaseProcess, stderr: BinaryIO) -> None:
        self._process = process
        self.stderr = stderr

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired("python -m app", timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(process: ServerProcess, url: str) -> None:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=1) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"the server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if probe.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)  # polling for the port to open, not synchronising work
    pytest.fail("the server did not start within 60 s")


@contextmanager
def api_server(mongodb_url: str, db_name: str, **env: str) -> Iterator[tuple[str, ServerProcess]]:
    """`python -m app` (uvicorn) on a loopback port (env PORT, or a free one): (base URL,
    process)."""
    port = int(env.pop("PORT", "0")) or free_port()
    environ = {
        **os.environ,
        "MONGODB_URL": mongodb_url,
        "MONGODB_DB": db_name,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "DATA_DIR": str(TEST_DATA_DIR),
        **env,
    }
    assert "PROMETHEUS_MULTIPROC_DIR" not in environ, "a forked server cannot take it"
    log = Path(tempfile.mkstemp(prefix="server-", suffix=".log", dir=TEST_DATA_DIR)[1])
    child = FORKS.Process(target=forked.serve, args=(environ, str(ROOT), str(log)))
    child.start()
    process = ServerProcess(child, log.open("rb"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                # Not left behind: the test process waits for its children at exit.
                process.kill()
                process.wait(10)
                raise
        process.stderr.close()
        log.unlink()

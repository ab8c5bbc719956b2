"""The API as a real server: `python -m app` (uvicorn) in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.support.apps import ROOT, TEST_DATA_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(process: subprocess.Popen[bytes], url: str) -> None:
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
def api_server(
    mongodb_url: str, db_name: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m app` (uvicorn) on a loopback port (env PORT, or a free one): (base URL,
    process)."""
    port = int(env.pop("PORT", "0")) or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env={
            **os.environ,
            "MONGODB_URL": mongodb_url,
            "MONGODB_DB": db_name,
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(TEST_DATA_DIR),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)

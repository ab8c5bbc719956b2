"""A real HTTP server on loopback that receives webhooks: it records each request and
answers from a script (a status, a redirect, or no answer until the sender gives up)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"  # answer nothing until the server stops (the sender times out)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None  # what it was answered (None: nothing)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plan: list[int | str] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._changed:
                    answer = receiver.plan.pop(0) if receiver.plan else 200
                status = None if answer == HANG else int(answer)
                record = Received(self.path, dict(self.headers.items()), body, status)
                with receiver._changed:
                    receiver.received.append(record)
                    receiver._changed.notify_all()
                if status is None:
                    receiver._stopping.wait(30)
                    return
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                reply = b'{"ok": true}' if status < 300 else b"nope"
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, *answers: int | str) -> None:
        """The next requests' answers, in order (then 200)."""
        with self._changed:
            self.plan.extend(answers)

    async def wait_for(self, count: int, *, within: float = 30) -> list[Received]:
        """The first `count` requests, once they have come."""

        def wait() -> list[Received]:
            with self._changed:
                if not self._changed.wait_for(lambda: len(self.received) >= count, within):
                    came = [r.body[:80] for r in self.received]
                    raise AssertionError(f"{len(came)} requests came, not {count}: {came}")
                return list(self.received)

        return await asyncio.to_thread(wait)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver._stopping.set()
        receiver.server.shutdown()
        receiver.server.server_close()

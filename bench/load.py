"""A small, fast HTTP/1.1 load generator: keep-alive connections, prebuilt requests.

Written against asyncio streams rather than an HTTP client library so the generator
costs little CPU next to the server it measures (both share the machine's cores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def build_request(
    method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(
    host: str,
    port: int,
    next_request: Callable[[int], bytes],
    *,
    concurrency: int,
    seconds: float,
) -> Result:
    """Send requests from `concurrency` connections for `seconds`; `next_request(i)` builds
    the i-th request of a connection."""
    result = Result()
    deadline = time.perf_counter() + seconds

    async def connection(worker: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = worker
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(next_request(i))
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status >= 400:
                    result.errors += 1
                i += concurrency
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(w) for w in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def run_all(host: str, port: int, requests: list[bytes], *, concurrency: int) -> Result:
    """Send every request of `requests` once, over `concurrency` connections."""
    result = Result()
    queue = list(reversed(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue:
                request = queue.pop()
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.errors += status >= 400
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def run_paced(
    host: str,
    port: int,
    next_request: Callable[[int], bytes],
    *,
    rate: float,
    connections: int,
    seconds: float,
) -> Result:
    """Send `rate` requests a second, spread over `connections`, for `seconds` (open loop).

    Latency counts from when a request was due, not from when it went out, so a server
    that falls behind shows it (no coordinated omission). Unlike `run`, the load does not
    adapt to the server: what other work (a login storm) costs shows in latency alone.
    """
    result = Result()
    interval = connections / rate
    start = time.perf_counter()
    deadline = start + seconds

    async def connection(worker: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        due = start + worker * interval / connections
        i = worker
        try:
            while due < deadline:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(next_request(i))
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - due)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.errors += status >= 400
                due += interval
                i += connections
        finally:
            writer.close()

    await asyncio.gather(*(connection(w) for w in range(connections)))
    result.seconds = time.perf_counter() - start
    return result

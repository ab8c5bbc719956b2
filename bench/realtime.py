"""make bench, realtime: write-to-event latency with 1, 100 and 1,000 open streams on one
process, and the server's memory per open stream.

Each write is timed from just before its POST is sent to the moment each stream's
client task sees the `created` event, so the figures include the bench client's own
work of reading 1,000 streams in one Python process (a ceiling, not a floor).
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

WRITES = 20


def raise_open_files_limit() -> None:
    """1,000 streams need more than the usual 1,024 descriptors (inherited by the
    server the bench starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _follow(
    http: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    ready: asyncio.Event,
    arrivals: dict[int, list[float]],
    opened: list[int],
    target: int,
) -> None:
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        buffer = b""
        async for chunk in response.aiter_raw():
            now = time.perf_counter()
            buffer += chunk
            *events, buffer = buffer.split(b"\r\n\r\n")
            for event in events:
                if b"event: ready" in event:
                    opened[0] += 1
                    if opened[0] == target:
                        ready.set()
                elif b"event: created" in event:
                    n = int(event.rsplit(b'"n":', 1)[1].split(b"}", 1)[0])
                    arrivals.setdefault(n, []).append(now)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def realtime_latency(
    base: str, auth: dict[str, str], rss_mb: Callable[[], float], counts: tuple[int, ...]
) -> list[dict[str, Any]]:
    rows = []
    limits = httpx.Limits(max_connections=max(counts) + 20, max_keepalive_connections=0)
    # No read timeout: a stream is quiet between writes; the connect timeout stays.
    timeout = httpx.Timeout(120, read=None)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as http:
        created = await http.post(
            "/v1/collections", headers=auth, json={"name": "live", "access": {"read": "owner"}}
        )
        assert created.is_success, created.text
        for count in counts:
            before = rss_mb()
            ready = asyncio.Event()
            arrivals: dict[int, list[float]] = {}
            opened = [0]
            tasks = [
                asyncio.create_task(
                    _follow(
                        http, "/v1/collections/live/events", auth, ready, arrivals, opened, count
                    )
                )
                for _ in range(count)
            ]
            await asyncio.wait_for(ready.wait(), 120)
            opened_rss = rss_mb()
            sent: dict[int, float] = {}
            for n in range(WRITES):
                sent[n] = time.perf_counter()
                answer = await http.post(
                    "/v1/collections/live/documents", json={"n": n}, headers=auth
                )
                assert answer.status_code == 201, answer.text
                # One write at a time: wait until every stream has it.
                for _ in range(20_000):
                    if len(arrivals.get(n, ())) >= count:
                        break
                    await asyncio.sleep(0.001)
            delays = [
                (t - sent[n]) * 1000 for n, times in arrivals.items() for t in times if n in sent
            ]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            row = {
                "streams": count,
                "deliveries": len(delays),
                "expected": count * WRITES,
                "p50_ms": round(statistics.median(delays), 2),
                "p99_ms": round(_percentile(delays, 0.99), 2),
                "rss_per_stream_kb": round((opened_rss - before) * 1024 / count, 1),
            }
            rows.append(row)
            print(
                f"  realtime, {count:>4} streams: write-to-event p50 {row['p50_ms']} ms, "
                f"p99 {row['p99_ms']} ms ({row['deliveries']}/{row['expected']} delivered), "
                f"RSS {row['rss_per_stream_kb']} KB a stream",
                flush=True,
            )
        # The scenarios after this one start from a database without its documents.
        gone = await http.delete("/v1/collections/live", headers=auth)
        assert gone.status_code == 204, gone.text
    return rows

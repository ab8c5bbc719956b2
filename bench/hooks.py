"""Write cost with webhooks and history on, over the same writes without (issue 26).

Two collections hold the same 1,000 documents; one is declared `history: true` and has a
webhook for its changes, sent to a receiver in this (the bench's) process that answers
200. Each run merge-patches documents flat out for the scenario's seconds, then waits
until everything the writes caused has been done (every change recorded as a version and
a message, every message delivered), so the API process's CPU counts all of it: the
change pump, the versions, the queue and the signed HTTP requests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench.load import Result, build_request, run

HOST = "127.0.0.1"


async def _receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 receiver: read each request, answer 200, keep the connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def hooked_writes(
    bench: Any, http: httpx.AsyncClient, url: str, db: str, auth: dict[str, str]
) -> float:
    server = await asyncio.start_server(_receive, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    docs = [{"n": i, "title": f"doc {i}", "tags": ["a", "b"]} for i in range(1000)]
    ids: dict[str, list[str]] = {}
    for name, history in (("unhooked", False), ("hooked", True)):
        body = {"name": name, "history": history, "access": {"read": "authenticated"}}
        assert (await http.post("/v1/collections", headers=auth, json=body)).is_success
        made = await http.post(
            f"/v1/collections/{name}/documents/bulk", headers=auth, json={"documents": docs}
        )
        assert made.is_success, made.text
        ids[name] = [item["id"] for item in made.json()["results"]]
    hook = {
        "url": f"http://{HOST}:{port}/hook",
        "events": ["document.created", "document.updated", "document.deleted"],
        "collections": ["hooked"],
    }
    registered = await http.post("/v1/webhooks", headers=auth, json=hook)
    assert registered.is_success, registered.text
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    queue = client[db]["webhook_deliveries"]
    headers = {**auth, "Content-Type": "application/merge-patch+json"}
    rows = {}
    try:
        for name, label in (("unhooked", "without"), ("hooked", "with")):
            before = await queue.count_documents({})

            def patch(i: int, name: str = name) -> bytes:
                return build_request(
                    "PATCH",
                    f"/v1/collections/{name}/documents/{ids[name][i % 1000]}",
                    headers=headers,
                    body=b'{"n": %d}' % i,
                )

            cpu0 = bench_cpu(bench)
            result = await run(
                HOST,
                bench.port,
                patch,
                concurrency=bench.args.concurrency,
                seconds=bench.args.seconds,
            )
            if name == "hooked":
                await _drained(queue, before + result.requests - result.errors)
            cpu = bench_cpu(bench) - cpu0
            rows[label] = bench.row(
                f"merge-patch, {label} webhook + history (API, all work done)",
                Result(requests=result.requests, seconds=result.seconds),
                cpu_ms=cpu / result.requests * 1000 if result.requests else None,
                rate=result.rate,
                p50=result.percentile(50),
                p99=result.percentile(99),
            )
    finally:
        await client.close()
        server.close()
    ratio: float = rows["with"]["cpu_ms_per_request"] / rows["without"]["cpu_ms_per_request"]
    return ratio


def bench_cpu(bench: Any) -> float:
    from bench.run import cpu_seconds

    return cpu_seconds(bench.api_pid)


async def _drained(queue: Any, expected: int, within: float = 300) -> None:
    """Until `expected` messages exist and none is waiting to be sent."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        total = await queue.count_documents({})
        if total >= expected and await queue.count_documents({"status": "pending"}) == 0:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"webhook messages not all delivered within {within} s")

"""Write cost with webhooks and history on, over the same writes without (issue 26).

Two collections hold the same 1,000 documents; one is declared `history: true` and has a
webhook for its changes, sent to a receiver in this (the bench's) process that answers
200. Merge-patches run flat out for the scenario's seconds against an API process
started with BACKGROUND_JOBS=false, beside one `python -m app.worker` process (the
deployment that keeps webhook sending off the request path). After each run the bench
waits until everything the writes caused is done (every change recorded as a version and
a message, every message delivered), and reports per write:

- the API process's CPU (the write path): with over without is the aim's ratio;
- the CPU of the background work (the worker process, and the main bench API, which may
  lead the change pump): the change pump, versions, the queue and the signed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
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
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def hooked_writes(
    bench: Any,
    http: httpx.AsyncClient,
    url: str,
    db: str,
    auth: dict[str, str],
    *,
    env: dict[str, str],
    scratch: Path,
    port: int,
) -> dict[str, float]:
    from bench.run import cpu_seconds, serve

    server = await asyncio.start_server(_receive, HOST, 0)
    receiver = server.sockets[0].getsockname()[1]
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
        "url": f"http://{HOST}:{receiver}/hook",
        "events": ["document.created", "document.updated", "document.deleted"],
        "collections": ["hooked"],
    }
    registered = await http.post("/v1/webhooks", headers=auth, json=hook)
    assert registered.is_success, registered.text
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    queue = client[db]["webhook_deliveries"]
    api_env = {**env, "PORT": str(port), "BACKGROUND_JOBS": "false"}
    headers = {**auth, "Content-Type": "application/merge-patch+json"}
    rows: dict[str, dict[str, Any]] = {}
    background: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            serve(
                [sys.executable, "-m", "app"],
                f"http://{HOST}:{port}",
                api_env,
                scratch / "api2.log",
            )
        )
        with (scratch / "worker.log").open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "app.worker"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        stack.callback(worker.wait, 30)
        stack.callback(worker.terminate)
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

                api0, bg0 = (
                    cpu_seconds(api.pid),
                    cpu_seconds(worker.pid) + cpu_seconds(bench.api_pid),
                )
                result = await run(
                    HOST,
                    port,
                    patch,
                    concurrency=bench.args.concurrency,
                    seconds=bench.args.seconds,
                )
                api_cpu = cpu_seconds(api.pid) - api0
                if name == "hooked":
                    await _drained(queue, before + result.requests - result.errors)
                writes = max(1, result.requests)
                background[label] = (
                    (cpu_seconds(worker.pid) + cpu_seconds(bench.api_pid) - bg0) / writes * 1000
                )
                rows[label] = bench.row(
                    f"merge-patch, {label} webhook + history (API only)",
                    Result(requests=result.requests, seconds=result.seconds),
                    cpu_ms=api_cpu / writes * 1000,
                    rate=result.rate,
                    p50=result.percentile(50),
                    p99=result.percentile(99),
                )
                print(
                    f"    background work per write ({label}): {background[label]:.3f} ms CPU",
                    flush=True,
                )
        finally:
            await client.close()
            server.close()
    without = rows["without"]["cpu_ms_per_request"]
    return {
        "hooked_write_cpu_ratio": rows["with"]["cpu_ms_per_request"] / without,
        # Everything a write causes, all processes, over the plain write (not an aim).
        "hooked_write_all_work_ratio": (rows["with"]["cpu_ms_per_request"] + background["with"])
        / (without + background["without"]),
        "hooked_background_ms_per_write": background["with"],
    }


async def _drained(queue: Any, expected: int, within: float = 600) -> None:
    """Until `expected` messages exist and none is waiting to be sent."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        total = await queue.count_documents({})
        if total >= expected and await queue.count_documents({"status": "pending"}) == 0:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"webhook messages not all delivered within {within} s")

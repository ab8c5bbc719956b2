"""The raw driver doing the database work of one API scenario, in its own process.

    python -m bench.raw --op get --url mongodb://... --db bench_x --seconds 6 --concurrency 16

Prints one JSON line: operations done, this process's CPU seconds (`time.process_time()`,
so the load generator's bookkeeping is the only other thing counted) and latencies. `make
bench` divides the API process's CPU per request by this CPU per operation: what the API
adds on top of the driver call it cannot avoid.

Operations (each mirrors what the API does for one request):
    get      find_one by _id
    create   insert_one of a full stored document
    patch    find_one by _id, then the version-conditioned update_one
    list50   find 50 in creation order (the default list sort), to a list
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

Op = Callable[[int], Awaitable[object]]


def _operation(name: str, collection: AsyncCollection[dict[str, Any]], ids: list[str]) -> Op:
    async def get(i: int) -> object:
        return await collection.find_one({"_id": ids[i % len(ids)]})

    async def create(i: int) -> object:
        now = datetime.now(UTC)
        return await collection.insert_one(
            {
                "_id": secrets.token_urlsafe(16),
                "owner": None,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "data": {"n": 5, "title": "created"},
            }
        )

    async def patch(i: int) -> object:
        doc_id = ids[i % len(ids)]
        doc = await collection.find_one({"_id": doc_id})
        assert doc is not None
        return await collection.update_one(
            {"_id": doc_id, "version": doc["version"]},
            {
                "$set": {
                    "data": {**doc["data"], "n": i % 1000},
                    "updated_at": datetime.now(UTC),
                },
                "$inc": {"version": 1},
            },
        )

    async def list50(i: int) -> object:
        return await collection.find({}).sort([("created_at", 1), ("_id", 1)]).to_list(50)

    return {"get": get, "create": create, "patch": patch, "list50": list50}[name]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        args.url, maxPoolSize=args.concurrency, tz_aware=True
    )
    collection = client[args.db][args.collection]
    ids = [d["_id"] async for d in collection.find({}, {"_id": 1}).limit(5000)]
    operation = _operation(args.op, collection, ids)
    await operation(0)  # connections and server-side warm-up outside the measurement
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seconds

    async def worker(w: int) -> None:
        i = w
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await operation(i)
            latencies.append(time.perf_counter() - started)
            i += args.concurrency

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await client.close()
    latencies.sort()
    return {
        "op": args.op,
        "operations": len(latencies),
        "cpu_seconds": cpu,
        "seconds": wall,
        "p50": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] if latencies else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--op", choices=["get", "create", "patch", "list50"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=16)
    result = asyncio.run(measure(parser.parse_args()))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

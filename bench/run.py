"""Docstore benchmarks: the API against the raw driver on the same database, same run.

    make bench                      # embedded SecantusDB, or MONGODB_URL when set
    python -m bench.run --seconds 8 --concurrency 16

Prints a table and writes bench/results/latest.json. Ratios are what to compare across
machines; absolute numbers depend on the machine (the database, the API and the load
generator share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

import app as app_package
from app.config import Settings
from app.db.embedded import MEMORY, EmbeddedDatabase
from bench.load import Result, build_request, run, run_all
from tests.conftest import api_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_PASSWORD = "bench admin passphrase"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict[str, Any]] = []

    def report(
        self,
        name: str,
        result: Result,
        *,
        cpu: float | None = None,
        unit: str = "req/s",
        rate: float | None = None,
    ) -> dict[str, Any]:
        row = {
            "scenario": name,
            "rate": round(rate if rate is not None else result.rate, 1),
            "unit": unit,
            "p50_ms": round(result.percentile(50) * 1000, 2),
            "p99_ms": round(result.percentile(99) * 1000, 2),
            "errors": result.errors,
            "api_cpu_ms_per_request": round(cpu / result.requests * 1000, 3)
            if cpu is not None and result.requests
            else None,
        }
        self.rows.append(row)
        print(
            f"  {name:<44} {row['rate']:>10} {unit:<7} p50 {row['p50_ms']:>7} ms"
            f"  p99 {row['p99_ms']:>7} ms  errors {row['errors']}",
            flush=True,
        )
        return row


async def raw_find_one(
    url: str, db: str, ids: list[str], *, concurrency: int, seconds: float
) -> Result:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, maxPoolSize=concurrency)
    collection = client[db]["docs_bench"]
    result = Result()
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        i = w
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            doc = await collection.find_one({"_id": ids[i % len(ids)]})
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.errors += doc is None
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = time.perf_counter() - started
    await client.close()
    return result


async def raw_insert_many(
    url: str, db: str, batches: list[list[dict[str, Any]]], concurrency: int
) -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    collection = client[db]["raw_import"]
    # The same indexes as the API's collection: index upkeep is most of an insert's cost.
    for name, spec in (await client[db]["docs_bench"].index_information()).items():
        if name != "_id_":
            await collection.create_index(spec["key"], name=name)
    queue = list(batches)
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            await collection.insert_many(queue.pop(), ordered=False)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def main(args: argparse.Namespace) -> int:
    settings = Settings()
    embedded = None
    url = settings.mongodb_url
    if url is None:
        embedded = EmbeddedDatabase(MEMORY)
        embedded.start()
        url = embedded.url
    db_name = f"bench_{uuid.uuid4().hex[:8]}"
    # The login storm measures hashing, not the rate limiter.
    limits = {"RATE_LIMIT_LOGIN_PER_IP": "1000000", "RATE_LIMIT_LOGIN_PER_ACCOUNT": "1000000"}
    env = {**os.environ, "MONGODB_URL": url, "MONGODB_DB": db_name}
    bench = Bench(args)
    c, s = args.concurrency, args.seconds
    stack = contextlib.ExitStack()
    try:
        base, server = stack.enter_context(api_server(url, db_name, **limits))
        port = int(base.rsplit(":", 1)[1])
        subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.create_admin",
                "--email",
                "bench@example.com",
                "--password",
                ADMIN_PASSWORD,
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        import httpx

        with httpx.Client(base_url=base, timeout=60) as http:
            token = http.post(
                "/v1/auth/login", json={"email": "bench@example.com", "password": ADMIN_PASSWORD}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            http.post(
                "/v1/collections",
                headers=auth,
                json={"name": "bench", "indexes": [{"name": "by_n", "fields": ["-data.n"]}]},
            )
        auth_json = {**auth, "Content-Type": "application/json"}

        print(
            f"Docstore bench: concurrency {c}, {s:.0f} s a scenario, database "
            f"{'embedded SecantusDB' if embedded else 'MONGODB_URL'}",
            flush=True,
        )

        # 1. Bulk import through the API vs raw insert_many, same batches.
        rng = random.Random(1)
        total, batch = args.docs, 500
        payloads = [
            [
                {"n": rng.randint(0, 1000), "title": f"doc {i}", "tags": ["a", "b"]}
                for i in range(start, min(start + batch, total))
            ]
            for start in range(0, total, batch)
        ]
        bodies = [json.dumps({"documents": p}).encode() for p in payloads]
        bulk = await run_all(
            "127.0.0.1",
            port,
            [
                build_request(
                    "POST", "/v1/collections/bench/documents/bulk", headers=auth_json, body=body
                )
                for body in bodies
            ],
            concurrency=2,
        )
        api_rate = total / bulk.seconds
        now = time.time()
        raw_batches = [
            [
                {
                    "_id": str(ObjectId()),
                    "owner": None,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                    "data": d,
                }
                for d in p
            ]
            for p in payloads
        ]
        raw_seconds = await raw_insert_many(url, db_name, raw_batches, concurrency=2)
        raw_rate = total / raw_seconds
        bench.report("bulk import via API (500 a request)", bulk, unit="docs/s", rate=api_rate)
        bench.report(
            "bulk import raw insert_many (500 a batch)",
            Result(requests=len(raw_batches), seconds=raw_seconds),
            unit="docs/s",
            rate=raw_rate,
        )
        bulk_ratio = api_rate / raw_rate

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        ids = [d["_id"] async for d in client[db_name]["docs_bench"].find({}, {"_id": 1})]
        await client.close()
        paths = [f"/v1/collections/bench/documents/{i}" for i in ids]

        # 2. GET by id with auth vs raw find_one, same concurrency.
        cpu0 = cpu_seconds(server.pid)
        get_result = await run(
            "127.0.0.1",
            port,
            lambda i: build_request("GET", paths[i % len(paths)], headers=auth),
            concurrency=c,
            seconds=s,
        )
        get_row = bench.report(
            "GET document by id (API, auth)", get_result, cpu=cpu_seconds(server.pid) - cpu0
        )
        raw = await raw_find_one(url, db_name, ids, concurrency=c, seconds=s)
        bench.report("find_one by _id (raw driver)", raw)
        get_ratio = get_result.rate / raw.rate if raw.rate else 0.0

        # 3. A page of 50 with a filter and a sort.
        query = "filter=%7B%22data.n%22%3A%7B%22%24gte%22%3A100%7D%7D&sort=-data.n&limit=50"
        cpu0 = cpu_seconds(server.pid)
        bench.report(
            "list 50 with filter + sort",
            await run(
                "127.0.0.1",
                port,
                lambda i: build_request(
                    "GET", f"/v1/collections/bench/documents?{query}", headers=auth
                ),
                concurrency=c,
                seconds=s,
            ),
            cpu=cpu_seconds(server.pid) - cpu0,
        )

        # 4. Create one document.
        cpu0 = cpu_seconds(server.pid)
        body = json.dumps({"n": 5, "title": "created"}).encode()
        bench.report(
            "create document",
            await run(
                "127.0.0.1",
                port,
                lambda i: build_request(
                    "POST", "/v1/collections/bench/documents", headers=auth_json, body=body
                ),
                concurrency=c,
                seconds=s,
            ),
            cpu=cpu_seconds(server.pid) - cpu0,
        )

        # 5. Merge-patch (no If-Match: each write re-reads and bumps the version).
        patch_headers = {**auth, "Content-Type": "application/merge-patch+json"}
        cpu0 = cpu_seconds(server.pid)
        bench.report(
            "merge-patch document",
            await run(
                "127.0.0.1",
                port,
                lambda i: build_request(
                    "PATCH",
                    paths[i % len(paths)],
                    headers=patch_headers,
                    body=json.dumps({"n": i % 1000}).encode(),
                ),
                concurrency=c,
                seconds=s,
            ),
            cpu=cpu_seconds(server.pid) - cpu0,
        )

        # 6. GET p99 while logins (argon2) run concurrently.
        login = build_request(
            "POST",
            "/v1/auth/login",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"email": "bench@example.com", "password": ADMIN_PASSWORD}).encode(),
        )
        storm, gets = await asyncio.gather(
            run("127.0.0.1", port, lambda i: login, concurrency=4, seconds=s),
            run(
                "127.0.0.1",
                port,
                lambda i: build_request("GET", paths[i % len(paths)], headers=auth),
                concurrency=c,
                seconds=s,
            ),
        )
        storm_row = bench.report("GET by id during a login storm", gets)
        bench.report("logins during the storm", storm)
        p99_ratio = storm_row["p99_ms"] / get_row["p99_ms"] if get_row["p99_ms"] else 0.0
    finally:
        stack.close()
        if embedded:
            embedded.stop()

    summary = {
        "get_by_id_api_vs_raw_throughput": round(get_ratio, 3),
        "bulk_import_api_vs_raw_insert_many": round(bulk_ratio, 3),
        "get_p99_login_storm_vs_quiet": round(p99_ratio, 2),
    }
    aims = {
        "get_by_id_api_vs_raw_throughput": " (aim >= 0.8)",
        "bulk_import_api_vs_raw_insert_many": " (aim >= 0.9)",
    }
    print()
    for name, value in summary.items():
        print(f"  {name:<40} {value:>6.2f}{aims.get(name, '')}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {
            "concurrency": c,
            "seconds": s,
            "docs": args.docs,
            "database": "embedded SecantusDB" if embedded else "MONGODB_URL",
            "docstore": getattr(app_package, "__version__", "dev"),
        },
        "scenarios": bench.rows,
        "ratios": summary,
    }
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2))
    print(f"\n  wrote {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--docs", type=int, default=20_000)
    sys.exit(asyncio.run(main(parser.parse_args())))

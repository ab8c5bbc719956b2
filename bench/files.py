"""make bench, files: a 200 MB upload and download through the API vs raw GridFS (the
driver's AsyncGridFSBucket, in this process) on the same database, MB/s each, and the
API process's RSS before and after (memory must stay flat: files stream in chunks)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient

SIZE = 200 * 1024 * 1024
PIECE = 1024 * 1024


async def _body(block: bytes) -> AsyncIterator[bytes]:
    for _ in range(SIZE // PIECE):
        yield block


async def file_throughput(
    base: str,
    url: str,
    db_name: str,
    auth: dict[str, str],
    rss_mb: Callable[[], float],
    cpu_seconds: Callable[[], float],
) -> dict[str, Any]:
    block = os.urandom(PIECE)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    bucket = AsyncGridFSBucket(client[db_name], bucket_name="rawbench")
    started = time.perf_counter()
    upload = bucket.open_upload_stream("raw")
    async for piece in _body(block):
        await upload.write(piece)
    await upload.close()
    raw_write = SIZE / (time.perf_counter() - started) / 1e6
    started = time.perf_counter()
    download = await bucket.open_download_stream(upload._id)
    got = 0
    while piece := await download.readchunk():
        got += len(piece)
    raw_read = SIZE / (time.perf_counter() - started) / 1e6
    await bucket.delete(upload._id)  # the API's upload starts from the same free space
    await client.close()

    async with httpx.AsyncClient(base_url=base, timeout=600) as http:
        made = await http.post("/v1/collections", headers=auth, json={"name": "attachments"})
        assert made.is_success, made.text
        doc = (
            await http.post("/v1/collections/attachments/documents", json={}, headers=auth)
        ).json()
        path = f"/v1/collections/attachments/documents/{doc['id']}/files/big.bin"
        rss_before = rss_mb()
        started, cpu = time.perf_counter(), cpu_seconds()
        put = await http.put(path, content=_body(block), headers=auth)
        assert put.status_code == 201, put.text
        api_write = SIZE / (time.perf_counter() - started) / 1e6
        write_cpu = cpu_seconds() - cpu
        rss_after_upload = rss_mb()
        started, cpu = time.perf_counter(), cpu_seconds()
        received = 0
        async with http.stream("GET", path, headers=auth) as response:
            async for piece in response.aiter_raw():
                received += len(piece)
        assert received == SIZE
        api_read = SIZE / (time.perf_counter() - started) / 1e6
        read_cpu = cpu_seconds() - cpu
        rss_after_download = rss_mb()
        # The next scenarios start without these 200 MB.
        gone = await http.delete("/v1/collections/attachments", headers=auth)
        assert gone.status_code == 204, gone.text
    row = {
        "size_mb": SIZE // (1024 * 1024),
        "raw_write_mb_s": round(raw_write, 1),
        "api_write_mb_s": round(api_write, 1),
        "write_vs_raw": round(api_write / raw_write, 2),
        "raw_read_mb_s": round(raw_read, 1),
        "api_read_mb_s": round(api_read, 1),
        "read_vs_raw": round(api_read / raw_read, 2),
        # The API process's own CPU (all threads) per MB: what the HTTP layer costs.
        "api_write_cpu_ms_per_mb": round(write_cpu * 1000 / (SIZE / 1e6), 2),
        "api_read_cpu_ms_per_mb": round(read_cpu * 1000 / (SIZE / 1e6), 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_upload_mb": round(rss_after_upload, 1),
        "rss_after_download_mb": round(rss_after_download, 1),
    }
    print(
        f"  files, 200 MB: upload {row['api_write_mb_s']} MB/s ({row['write_vs_raw']}x raw "
        f"GridFS {row['raw_write_mb_s']}), download {row['api_read_mb_s']} MB/s "
        f"({row['read_vs_raw']}x raw {row['raw_read_mb_s']}); API CPU "
        f"{row['api_write_cpu_ms_per_mb']} / {row['api_read_cpu_ms_per_mb']} ms a MB; "
        f"API RSS {row['rss_before_mb']} "
        f"-> {row['rss_after_upload_mb']} -> {row['rss_after_download_mb']} MB",
        flush=True,
    )
    return row

"""The floor for a FastAPI GET: one route that does the API's `find_one` and returns the dict.

    python -m bench.bare --url mongodb://... --db bench_x --collection docs_bench --port 8099

No auth, no access rules, no envelope, no ETag, no metrics, no access log: what FastAPI,
uvicorn and the driver cost on their own, served the same way as the API (uvicorn, uvloop,
httptools). `make bench` reports its CPU per request beside Docstore's.
"""

from __future__ import annotations

import argparse
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pymongo import AsyncMongoClient


def create_app(url: str, db: str, collection: str) -> FastAPI:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    docs = client[db][collection]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/docs/{doc_id}")
    async def get_doc(doc_id: str) -> dict[str, Any]:
        doc = await docs.find_one({"_id": doc_id})
        if doc is None:
            raise HTTPException(404)
        return doc

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.url, args.db, args.collection),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()

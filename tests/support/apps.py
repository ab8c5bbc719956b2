"""Settings for tests, the app with its lifespan run, and the apps a test process shares."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.container import Container
from app.db.change_pump import STATE as CHANGE_PUMP_STATE
from app.main import create_app

ROOT = Path(__file__).resolve().parents[2]
SHARED_PREFIX = "shared_"

# Where test servers keep files (development mail as .eml): never the checkout's .data.
TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="docstore-tests-"))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mongodb_url": database_url,
        "data_dir": TEST_DATA_DIR,
        "mongodb_db": f"test_{uuid.uuid4().hex[:12]}",
        "jwt_secret": "test-secret-" + "x" * 60,
        # Cheap argon2 keeps the suite fast; production parameters are the defaults.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "argon2_parallelism": 1,
        "rate_limit_login_per_ip": 1000,
        "rate_limit_login_per_account": 1000,
        "rate_limit_login_per_account_address": 1000,
        "rate_limit_register_per_ip": 1000,
        "rate_limit_refresh_per_ip": 1000,
        "mongodb_timeout_ms": 2000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def shared_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings whose app the test process shares (see the module's docstring): the same
    overrides name the same database, so they find the same running app."""
    digest = hashlib.sha256(repr(sorted(overrides.items())).encode()).hexdigest()[:10]
    name = f"{SHARED_PREFIX}{os.getpid()}_{digest}"
    return make_settings(database_url, mongodb_db=name, **overrides)


@asynccontextmanager
async def running_app(settings: Settings, *, drop_database: bool = True) -> AsyncIterator[FastAPI]:
    """The real app with its lifespan run; its database is dropped afterwards."""
    app = create_app(settings)
    try:
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
            yield app
    finally:
        if drop_database:
            await _drop(settings)


async def _drop(settings: Settings) -> None:
    cleanup: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    await cleanup.drop_database(settings.mongodb_db)
    await cleanup.close()


class SharedApps:
    """The running apps of one test process, by database name; the oldest is closed when
    more than `keep` are open."""

    def __init__(self, keep: int = 1) -> None:
        self.keep = keep
        self._open: dict[str, tuple[FastAPI, AsyncExitStack, set[str]]] = {}
        # The databases emptied since anything but their app last wrote to them.
        self._clean: set[str] = set()

    def written_outside(self) -> None:
        """A test ran without the `app` fixture: it may have written to a shared database
        through a server it started, a script or an app of its own, and nothing emptied it
        afterwards. Each database is emptied before its app next serves a test."""
        self._clean.clear()

    async def get(self, settings: Settings) -> FastAPI:
        """The running app of these settings, its database empty."""
        name = settings.mongodb_db
        if name not in self._open:
            if len(self._open) >= self.keep:
                await self._close(next(iter(self._open)))
            stack = AsyncExitStack()
            app = await stack.enter_async_context(running_app(settings))
            made = set(await app.state.container.db.list_collection_names())
            self._open[name] = (app, stack, made)
        app = self._open[name][0]
        if name not in self._clean:
            await self.wipe(app)
        return app

    async def wipe(self, app: FastAPI) -> None:
        """Empty the app's database and forget what its caches read from it."""
        container: Container = app.state.container
        made = self._open[container.settings.mongodb_db][2]
        db = container.db
        # The change pump's checkpoint stays: without it the pump would start again from
        # "now", after changes a test already made.
        names = [
            n
            for n in await db.list_collection_names()
            if not n.startswith("system.") and n != CHANGE_PUMP_STATE
        ]
        kept = [n for n in names if n in made]
        emptied = [db[n].delete_many({}) for n in await _holding_documents(db, kept)]
        await asyncio.gather(*emptied, *(db[n].drop() for n in names if n not in made))
        if container.feed is not None:
            for cache in container.feed.caches.values():
                cache.clear()
        self._clean.add(container.settings.mongodb_db)

    async def _close(self, name: str) -> None:
        _, stack, _ = self._open.pop(name)
        await stack.aclose()

    async def close(self) -> None:
        for name in list(self._open):
            await self._close(name)


async def _holding_documents(db: Any, names: list[str]) -> list[str]:
    """Which of `names` hold a document: one aggregation rather than a delete for each of
    the two dozen collections an app makes (most tests write to a few of them)."""
    if not names:
        return []

    def first_of(name: str) -> list[dict[str, Any]]:
        return [{"$limit": 1}, {"$project": {"_id": 0, "c": {"$literal": name}}}]

    pipeline = first_of(names[0]) + [
        {"$unionWith": {"coll": name, "pipeline": first_of(name)}} for name in names[1:]
    ]
    return [row["c"] async for row in await db[names[0]].aggregate(pipeline)]


def http_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://docstore.test")

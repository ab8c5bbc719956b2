"""One real database server per test process; one running app per settings, wiped between
tests.

Without MONGODB_URL each test process (xdist worker) starts the embedded SecantusDB
(in-memory storage) once; with it, tests run against that MongoDB. The `app` fixture
keeps one running app (and its database) per distinct `shared_settings(...)` for the
whole process: between tests its database is emptied (the collections the app made at
start-up keep their indexes; the rest are dropped) and its caches of database records
are cleared, so tests never see each other's data, and none pays for starting an app
and compiling its routes (about 80 ms each). Settings from `make_settings` (a fresh
database name) or a test marked `own_app` get an app of their own, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.accounts.models import Role
from app.config import Settings
from app.container import Container
from app.db.embedded import MEMORY, EmbeddedDatabase
from app.main import create_app

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    external = os.environ.get("MONGODB_URL")
    if external:
        yield external
        return
    server = EmbeddedDatabase(MEMORY)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


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


SHARED_PREFIX = "shared_"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return shared_settings(database_url)


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

    async def get(self, settings: Settings) -> FastAPI:
        name = settings.mongodb_db
        if name in self._open:
            return self._open[name][0]
        if len(self._open) >= self.keep:
            await self._close(next(iter(self._open)))
        stack = AsyncExitStack()
        app = await stack.enter_async_context(running_app(settings))
        made = set(await app.state.container.db.list_collection_names())
        self._open[name] = (app, stack, made)
        return app

    async def wipe(self, app: FastAPI) -> None:
        """Empty the app's database and forget what its caches read from it."""
        container: Container = app.state.container
        made = self._open[container.settings.mongodb_db][2]
        db = container.db
        names = [n for n in await db.list_collection_names() if not n.startswith("system.")]
        await asyncio.gather(*(db[n].delete_many({}) if n in made else db[n].drop() for n in names))
        if container.feed is not None:
            for cache in container.feed.caches.values():
                cache.clear()

    async def _close(self, name: str) -> None:
        _, stack, _ = self._open.pop(name)
        await stack.aclose()

    async def close(self) -> None:
        for name in list(self._open):
            await self._close(name)


@pytest.fixture(scope="session")
async def shared_apps(database_url: str) -> AsyncIterator[SharedApps]:
    """Closed before the database server stops (it depends on `database_url`)."""
    apps = SharedApps()
    yield apps
    await apps.close()


@pytest.fixture
async def app(
    settings: Settings, shared_apps: SharedApps, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    shared = settings.mongodb_db.startswith(SHARED_PREFIX)
    if not shared or request.node.get_closest_marker("own_app"):
        # Its own database too: dropping it must not take the shared app's indexes.
        own = settings.model_copy(update={"mongodb_db": f"test_{uuid.uuid4().hex[:12]}"})
        async with running_app(own if shared else settings) as app:
            yield app
        return
    app = await shared_apps.get(settings)
    try:
        yield app
    finally:
        await shared_apps.wipe(app)


def http_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://docstore.test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


@pytest.fixture
def container(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


@dataclass
class Account:
    """A signed-in user as tests see it."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


# The `make_account` fixture: an account with this email/role, signed in.
MakeAccount = Callable[..., Awaitable[Account]]


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200, me.text
    return Account(
        id=me.json()["id"],
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


async def signed_in(
    app: FastAPI, client: httpx.AsyncClient, *, role: Role = Role.USER, email: str | None = None
) -> Account:
    """An account created through the service of `app` and signed in through `client`."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    await app.state.container.auth.create_user(
        email=email, password=PASSWORD, name="Test User", role=role
    )
    return await sign_in(client, email)


@pytest.fixture
def make_account(client: httpx.AsyncClient, container: Container):  # type: ignore[no-untyped-def]
    """Create an account (through the service) and sign it in through the API."""

    async def make(
        email: str | None = None, *, role: Role = Role.USER, name: str = "Test User"
    ) -> Account:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        await container.auth.create_user(email=email, password=PASSWORD, name=name, role=role)
        return await sign_in(client, email)

    return make


@pytest.fixture
async def user(make_account) -> Account:  # type: ignore[no-untyped-def]
    account: Account = await make_account()
    return account


@pytest.fixture
async def other_user(make_account) -> Account:  # type: ignore[no-untyped-def]
    account: Account = await make_account()
    return account


@pytest.fixture
async def admin(make_account) -> Account:  # type: ignore[no-untyped-def]
    account: Account = await make_account(role=Role.ADMIN, name="Admin")
    return account


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# -- real servers (uvicorn in a child process) -----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=1) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"the server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if probe.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)  # polling for the port to open, not synchronising work
    pytest.fail("the server did not start within 60 s")


@contextmanager
def api_server(
    mongodb_url: str, db_name: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m app` (uvicorn) on a free loopback port: (base URL, process)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env={
            **os.environ,
            "MONGODB_URL": mongodb_url,
            "MONGODB_DB": db_name,
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(TEST_DATA_DIR),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, url)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)

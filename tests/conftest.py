"""One real database server per test process; one running app per settings, wiped between
tests.

Without MONGODB_URL each test process (xdist worker) starts the embedded SecantusDB
(in-memory storage) once; with it, tests run against that MongoDB. The `app` fixture
keeps one running app (and its database) per distinct `shared_settings(...)` for the
whole process: between tests its database is emptied (the collections the app made at
start-up keep their indexes; the rest are dropped) and its caches of database records
are cleared, so tests never see each other's data, and none pays for starting an app
(its lifespan: indexes, workers). After a test that ran without the `app` fixture (it may
have written to a shared database through a server or an app of its own), each shared
database is emptied again before its app serves the next test. Settings from
`make_settings` (a fresh database name) or a test marked `own_app` get an app of their
own, as before.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from app.accounts.models import Role
from app.config import Settings
from app.container import Container
from app.db.embedded import MEMORY, EmbeddedDatabase
from tests.support.accounts import Account, signed_in
from tests.support.apps import SHARED_PREFIX, SharedApps, http_client, running_app, shared_settings
from tests.support.mail import Inbox
from tests.support.servers import free_port

SHARED_APPS = pytest.StashKey[SharedApps]()


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


@pytest.fixture
def settings(database_url: str) -> Settings:
    return shared_settings(database_url)


@pytest.fixture(scope="session")
async def shared_apps(
    database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[SharedApps]:
    """Closed before the database server stops (it depends on `database_url`)."""
    apps = SharedApps()
    request.session.stash[SHARED_APPS] = apps  # (told of tests that write without an app)
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


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


@pytest.fixture
def container(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


@pytest.fixture
def make_account(client: httpx.AsyncClient, app: FastAPI):  # type: ignore[no-untyped-def]
    """Create an account with a session (tests.support.accounts.signed_in)."""

    async def make(
        email: str | None = None, *, role: Role = Role.USER, name: str = "Test User"
    ) -> Account:
        return await signed_in(app, client, role=role, email=email, name=name)

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


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


# The longest test files (seconds of one worker, measured on 2 cores), longest first. The
# suite runs a file per worker at a time (--dist loadfile); run in the order xdist picks
# by default (most tests first), these came last and one worker finished them alone while
# the other core idled. Started first, the short files fill in around them. A file missing
# here runs after these, in collection order; the order only affects time, never results.
LONGEST_FIRST = (
    "test_clients.py",  # 131
    "test_authorization.py",  # 120
    "test_fuzz.py",  # 89
    "test_webhooks.py",  # 61
    "test_fuzz_users.py",  # 55
    "test_account_lifecycle.py",  # 54
    "test_realtime.py",  # 53
    "test_fuzz_platform.py",  # 50
    "test_console.py",  # 50
    "test_fuzz_accounts.py",  # 45
    "test_faults.py",  # 41
    "test_read_cache.py",  # 41
    "test_oauth.py",  # 35
    "test_pure_documents.py",  # 34
    "test_authorization_rules.py",  # 34
    "test_docs_browser.py",  # 33
    "test_scripts.py",  # 31
    "test_live_contract.py",  # 30
    "test_config.py",  # 29
    "test_rate_limits.py",  # 27
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A test that writes to a shared database without its app (a server on the shared
    # settings, a second app on them) left what it wrote: the next test's app empties it.
    # (A test without a database, `database_url` or `settings`, writes nothing.)
    used = set(getattr(item, "fixturenames", ()))
    apps = item.session.stash.get(SHARED_APPS, None)
    if apps is not None and "app" not in used and used & {"database_url", "settings"}:
        apps.written_outside()


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection loaded (the app, schemathesis, hypothesis: most of a worker's heap)
    # lives to the end: the cyclic collector need not walk it again at every collection.
    gc.collect()
    gc.freeze()

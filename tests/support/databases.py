"""Test databases of their own (EmbeddedDatabase), stopped without holding up the suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo import MongoClient

from app.db.embedded import MEMORY, EmbeddedDatabase


@contextmanager
def own_database(*, test_commands: bool = False) -> Iterator[EmbeddedDatabase]:
    """An in-memory database of the test's own: one it may stop, or arm fail points on
    (`test_commands`). Killed at the end (in memory there is nothing to keep)."""
    server = EmbeddedDatabase(MEMORY, test_commands=test_commands)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def stop_later(server: EmbeddedDatabase) -> None:
    """Stop a test's own database, waiting for it in the background.

    SecantusDB takes about 2 s to exit after SIGTERM (it joins its accept thread with a
    2 s timeout), and nothing after the test needs it gone. SIGTERM is sent here and now,
    so the server goes even if this test process exits first.
    """
    if server.process is None:
        return
    server.process.terminate()
    threading.Thread(target=server.stop, name="stop-test-database", daemon=True).start()


def fail_next(client: MongoClient[Any], command: str, **behaviour: Any) -> None:
    """The server's next `command` fails or stalls as `behaviour` says (mongod's
    failCommand fail point, which a database started with test_commands enables)."""
    client.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": [command], **behaviour},
    )

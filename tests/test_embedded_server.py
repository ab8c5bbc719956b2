"""The embedded SecantusDB as EmbeddedDatabase starts it: `python -m secantus` with its
record of retryable writes pruned from the oldest end (app.db.secantus_server)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from secantus import transactions
from secantus.transactions import TransactionRegistry

from app.db import secantus_server
from app.db.embedded import EmbeddedDatabase
from tests.support.databases import fail_next, own_database

PUBLISHED = TransactionRegistry._prune_retryable_locked


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def surviving(prune: Any, steps: list[tuple[str, int]]) -> list[tuple[bytes, int]]:
    """The records a registry pruned by `prune` keeps after `steps` (a write of a new
    session's command, a lookup, or time passing)."""
    clock = Clock()
    registry = TransactionRegistry(time_func=clock)
    registry._prune_retryable_locked = prune.__get__(registry)
    reply = {"ok": 1.0, "n": 1}
    for number, (step, amount) in enumerate(steps):
        if step == "write":
            registry.record_retryable(b"session-%d" % number, 1, b"insert", reply)
        elif step == "lookup":
            registry.retryable_reply(b"session-0", 1, b"insert")
        else:
            clock.now += amount
    return list(registry._retryable)


def test_the_record_keeps_what_the_published_server_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same writes, lookups and passing time leave the same records, expired ones
    and those beyond the cap gone, oldest first."""
    monkeypatch.setattr(transactions, "_RETRYABLE_RECORD_MAX", 25)
    lifetime = transactions._RETRYABLE_RECORD_LIFETIME_SECONDS
    rng = random.Random(7)
    for _ in range(20):
        steps = [
            rng.choice(
                [("write", 0)] * 6
                + [("lookup", 0), ("time", int(lifetime // 10)), ("time", int(lifetime))]
            )
            for _ in range(120)
        ]
        ours = surviving(secantus_server.prune_retryable, steps)
        assert ours == surviving(PUBLISHED, steps)
        assert len(ours) <= 25


@pytest.fixture
def embedded() -> Iterator[EmbeddedDatabase]:
    with own_database(test_commands=True) as server:
        yield server


class Inserts(monitoring.CommandListener):
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.sent.append(event.command["txnNumber"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_retried_write_is_applied_once(embedded: EmbeddedDatabase) -> None:
    """The server still answers a driver's retry from its record: the write applied,
    then its answer was lost (a write concern error), the driver sent it again."""
    inserts = Inserts()
    client: MongoClient[dict[str, Any]] = MongoClient(embedded.url, event_listeners=[inserts])
    try:
        for n in range(50):  # a record that has pruned before
            client.t.notes.insert_one({"n": n})
        answer_lost = {
            "code": 9001,
            "errmsg": "socket exception",
            "errorLabels": ["RetryableWriteError"],
        }
        fail_next(client, "insert", writeConcernError=answer_lost)
        client.t.notes.insert_one({"n": "once"})
        assert inserts.sent[-1] == inserts.sent[-2]  # sent twice, as one retryable write
        assert client.t.notes.count_documents({"n": "once"}) == 1
    finally:
        client.close()


def test_the_fix_applies_only_to_the_release_it_was_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(TransactionRegistry, "_prune_retryable_locked", PUBLISHED)
    monkeypatch.setattr(secantus_server, "version", lambda _: "0.7.1")
    assert not secantus_server.patch()
    assert TransactionRegistry._prune_retryable_locked is PUBLISHED
    monkeypatch.setattr(secantus_server, "version", lambda _: secantus_server.PATCHED_RELEASE)
    assert secantus_server.patch()
    assert TransactionRegistry._prune_retryable_locked is secantus_server.prune_retryable


def test_the_installed_secantusdb_is_the_release_the_fix_was_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new SecantusDB release runs as published: whoever moves the pin sees this fail
    and checks whether the release still scans its record at every write (then moves
    PATCHED_RELEASE) or no longer does (then drops app.db.secantus_server)."""
    monkeypatch.setattr(TransactionRegistry, "_prune_retryable_locked", PUBLISHED)
    assert secantus_server.patch(), (
        f"secantusdb is not {secantus_server.PATCHED_RELEASE}: see app/db/secantus_server.py"
    )

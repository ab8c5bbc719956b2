"""The embedded SecantusDB server, as `python -m secantus` runs it, with one fix.

SecantusDB (0.7.0b3, the newest release) remembers each successful retryable write for
30 minutes, up to 10,000 of them, so that a driver's retry is answered rather than
applied twice. It prunes that record at every retryable write and every lookup by
scanning all of it, and once it holds 10,000 it sorts all of them as well: from then on
each write costs about 4 ms of the server's CPU (0.06 ms at 1,000 records). A
development server or a test process reaches 10,000 writes within minutes: the suite
spent a third of its database CPU there.

`prune_retryable` keeps the same record (what expired goes, then the oldest beyond the
cap) by walking it from its oldest end, in insertion order, which is time order: a
write pays for what it removes. It replaces SecantusDB's method only on the release it
was written for; any other version runs as published (EmbeddedDatabase starts this
module either way).
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

from secantus import transactions
from secantus.cli import main

PATCHED_RELEASE = "0.7.0b3"


def prune_retryable(registry: Any) -> None:
    """TransactionRegistry._prune_retryable_locked (called with its lock held), from the
    oldest record on: expired ones, then any beyond the cap."""
    cutoff = registry._time() - transactions._RETRYABLE_RECORD_LIFETIME_SECONDS
    records: dict[Any, tuple[Any, float, bytes]] = registry._retryable
    while records:
        oldest = next(iter(records))
        if records[oldest][1] >= cutoff and len(records) <= transactions._RETRYABLE_RECORD_MAX:
            return
        del records[oldest]


def patch() -> bool:
    """Use prune_retryable on the release it was written for; whether it is used."""
    registry = transactions.TransactionRegistry
    if version("secantusdb") != PATCHED_RELEASE or not hasattr(registry, "_prune_retryable_locked"):
        return False
    registry._prune_retryable_locked = prune_retryable
    return True


if __name__ == "__main__":
    patch()
    sys.exit(main())

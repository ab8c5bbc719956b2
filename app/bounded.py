"""Bounded in-memory maps for per-process caches."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def put_bounded(entries: dict[K, V], key: K, value: V, max_entries: int) -> None:
    """Store `value`, evicting the oldest entry first when `entries` is full.

    Oldest first (dicts keep insertion order) is cheap and good enough for records that
    an active caller re-reads on every request.
    """
    if key not in entries and len(entries) >= max_entries:
        del entries[next(iter(entries))]
    entries[key] = value

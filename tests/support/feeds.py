"""Waiting on a process's change feed (app/db/change_feed.py) instead of on time."""

from __future__ import annotations

from fastapi import FastAPI

from app.container import Container
from app.db.change_feed import ChangeFeed


def container_of(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


def feed_of(app: FastAPI) -> ChangeFeed:
    feed = container_of(app).feed
    assert feed is not None and feed.trusted(), "the read cache should be on"
    return feed

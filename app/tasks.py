"""Stopping the process's background tasks (change feeds, mail worker, loop-lag probe)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended. The CancelledError it ends with is
    ours and stays here; one aimed at the caller (it is being cancelled itself while it
    waits) is raised again, so a cancelled shutdown still stops."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class NextRetry:
    """The earliest retry a queue worker (mail, webhooks) scheduled in this process: it
    looks again then rather than at its next poll (other processes' retries are found by
    polling)."""

    def __init__(self, clock: Callable[[], datetime], poll_seconds: float) -> None:
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._at: datetime | None = None

    def schedule(self, at: datetime | None) -> None:
        if at is not None and (self._at is None or at < self._at):
            self._at = at

    def pause(self) -> float:
        """Seconds until the next look: the poll interval, or sooner if a retry is due."""
        if self._at is None:
            return self.poll_seconds
        until = (self._at - self.clock()).total_seconds()
        if until <= self.poll_seconds:
            self._at = None
        return min(self.poll_seconds, max(0.0, until))


def backoff(attempts: int, first: float = 5.0) -> timedelta:
    """After the n-th failed attempt (a mail, a webhook message): `first` seconds (5 s,
    10 s, 20 s ... by default), doubling, at most an hour."""
    return timedelta(seconds=min(3600.0, first * 2 ** max(0, attempts - 1)))

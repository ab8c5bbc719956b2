"""Stopping the process's background tasks (change feeds, mail worker, loop-lag probe)."""

from __future__ import annotations

import asyncio
import heapq
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
    """The retries a queue worker (mail, webhooks) scheduled in this process: it looks
    again when the next is due rather than at its next poll (other processes' retries are
    found by polling). All are kept (up to MAX_KEPT, the soonest): with only the earliest
    kept, a later one scheduled while it was pending was lost and waited for a poll."""

    MAX_KEPT = 1024

    def __init__(self, clock: Callable[[], datetime], poll_seconds: float) -> None:
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._due: list[datetime] = []  # a heap

    def schedule(self, at: datetime | None) -> None:
        if at is None:
            return
        heapq.heappush(self._due, at)
        if len(self._due) > self.MAX_KEPT:  # the latest fall back to polling
            self._due = heapq.nsmallest(self.MAX_KEPT // 2, self._due)

    def pause(self) -> float:
        """Seconds until the next look: 0 when a retry is due (it is then forgotten: the
        look claims whatever is due), else the poll interval or sooner."""
        now = self.clock()
        due = False
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
            due = True
        if due:
            return 0.0
        if not self._due:
            return self.poll_seconds
        return min(self.poll_seconds, (self._due[0] - now).total_seconds())


def backoff(attempts: int, first: float = 5.0) -> timedelta:
    """After the n-th failed attempt (a mail, a webhook message): `first` seconds (5 s,
    10 s, 20 s ... by default), doubling, at most an hour."""
    # (The exponent is capped: 2**1100 seconds does not fit a float, let alone a date.)
    return timedelta(seconds=min(3600.0, first * 2 ** min(max(0, attempts - 1), 30)))

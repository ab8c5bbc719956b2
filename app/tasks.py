"""Stopping the process's background tasks (change feeds, mail worker, loop-lag probe)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
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


def backoff(attempts: int, first: float = 5.0) -> timedelta:
    """After the n-th failed attempt (a mail, a webhook message): `first` seconds (5 s,
    10 s, 20 s ... by default), doubling, at most an hour."""
    return timedelta(seconds=min(3600.0, first * 2 ** max(0, attempts - 1)))

"""Waiting for a state another process reaches, by looking at it, never by time alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], Awaitable[bool]], *, within: float = 60) -> None:
    """Poll the database for a state another process reaches (not a stand-in for timing)."""
    for _ in range(int(within / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {within} s")

"""argon2id password hashing, always off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, TypeVar

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Settings

T = TypeVar("T")

MAX_PASSWORD_LENGTH = 1024
# The shortest password the API contract allows; PASSWORD_MIN_LENGTH can only raise it.
MIN_PASSWORD_FLOOR = 8


# How much lower than the event loop the hashing threads run (Linux nice, per thread):
# at +10 the scheduler gives a busy request thread about ten times their share of a core.
HASH_THREAD_NICENESS = 10


def _lower_priority() -> None:
    """Thread initializer: this thread yields the CPU to request handling when both want it."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


class PasswordHasher:
    """argon2id hashing in its own threads, at most `max_concurrent` at a time, niced.

    A login storm must not slow every other request (make bench: GET p99 during logins).
    The bound (default: all cores but one) keeps a core free of hashing; the lower thread
    priority lets requests preempt a hash on the cores it does use. Logins wait longer
    under load instead; other requests barely notice.
    """

    def __init__(self, settings: Settings) -> None:
        workers = settings.argon2_max_concurrent or max(1, (os.cpu_count() or 2) - 1)
        self._slots = asyncio.Semaphore(workers)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority
        )
        # argon2-cffi's default type is argon2id.
        self._argon = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )

    @cached_property
    def _dummy_hash(self) -> str:
        return self._argon.hash("an unknown account's password is checked against this")

    def hash_sync(self, password: str) -> str:
        return self._argon.hash(password)

    def verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self.hash_sync, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password. With no hash (unknown account) burn the same time, then fail."""
        if password_hash is None:
            await self._run(self.verify_sync, self._dummy_hash, password)
            return False
        return await self._run(self.verify_sync, password_hash, password)

    def close(self) -> None:
        """Stop the threads once their hash is done (shutdown; nothing waits on them)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon.check_needs_rehash(password_hash)

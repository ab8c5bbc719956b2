"""argon2id password hashing, always off the event loop."""

from __future__ import annotations

import asyncio
import os
from functools import cached_property

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Settings

MAX_PASSWORD_LENGTH = 1024
# The shortest password the API contract allows; PASSWORD_MIN_LENGTH can only raise it.
MIN_PASSWORD_FLOOR = 8


class PasswordHasher:
    """argon2id hashing in worker threads, at most `max_concurrent` at a time.

    The bound keeps a login storm from taking every core: requests that do not hash
    keep a core to run on, and excess logins queue instead of thrashing.
    """

    def __init__(self, settings: Settings) -> None:
        self._slots = asyncio.Semaphore(
            settings.argon2_max_concurrent or max(1, (os.cpu_count() or 2) - 1)
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

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password. With no hash (unknown account) burn the same time, then fail."""
        async with self._slots:
            if password_hash is None:
                await asyncio.to_thread(self.verify_sync, self._dummy_hash, password)
                return False
            return await asyncio.to_thread(self.verify_sync, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon.check_needs_rehash(password_hash)

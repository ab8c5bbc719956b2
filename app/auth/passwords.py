"""argon2id password hashing, always off the event loop."""

from __future__ import annotations

import asyncio
from functools import cached_property

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Settings

MAX_PASSWORD_LENGTH = 1024
# The shortest password the API contract allows; PASSWORD_MIN_LENGTH can only raise it.
MIN_PASSWORD_FLOOR = 8


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
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
        return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password. With no hash (unknown account) burn the same time, then fail."""
        if password_hash is None:
            await asyncio.to_thread(self.verify_sync, self._dummy_hash, password)
            return False
        return await asyncio.to_thread(self.verify_sync, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon.check_needs_rehash(password_hash)

"""Fixed-window rate limits whose counters live in MongoDB.

Keeping the counters in the database (with a TTL index to clean up) means the limit
holds however many API processes run behind the load balancer.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

from app.accounts.session_repository import RateLimitRepository
from app.errors import RateLimited


class RateLimiter:
    def __init__(self, repository: RateLimitRepository, *, window_seconds: int) -> None:
        self.repository = repository
        self.window = window_seconds

    async def hit(self, action: str, key: str, *, limit: int, now: datetime) -> None:
        """Count an attempt; raise `RateLimited` (429 with Retry-After) past `limit`."""
        epoch = now.timestamp()
        window_start = int(epoch // self.window) * self.window
        window_end = window_start + self.window
        counter_id = f"{action}:{_digest(key)}:{window_start}"
        count = await self.repository.increment(
            counter_id, expires_at=datetime.fromtimestamp(window_end, UTC)
        )
        if count > limit:
            retry_after = max(1, math.ceil(window_end - epoch))
            raise RateLimited(
                f"Too many {action} attempts; try again in {retry_after} s",
                retry_after=retry_after,
            )

    async def remember(self, action: str, key: str, *, until: datetime) -> None:
        """Note that `key` did `action` (e.g. signed in), until `until`."""
        await self.repository.mark(f"{action}:{_digest(key)}", expires_at=until)

    async def remembered(self, action: str, key: str, *, now: datetime) -> bool:
        return await self.repository.is_marked(f"{action}:{_digest(key)}", now=now)


def _digest(key: str) -> str:
    # Hash the key: it may be an email address, which need not sit in a counter id.
    return hashlib.sha256(key.encode()).hexdigest()[:32]

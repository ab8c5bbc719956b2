"""Fixed-window rate limits whose counters live in MongoDB.

Keeping the counters in the database (with a TTL index to clean up) means the limit
holds however many API processes run behind the load balancer.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

from app.auth.repository import RateLimitRepository
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
        # Hash the key: it may be an email address, which need not sit in a counter id.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        counter_id = f"{action}:{digest}:{window_start}"
        count = await self.repository.increment(
            counter_id, expires_at=datetime.fromtimestamp(window_end, UTC)
        )
        if count > limit:
            retry_after = max(1, math.ceil(window_end - epoch))
            raise RateLimited(
                f"Too many {action} attempts; try again in {retry_after} s",
                retry_after=retry_after,
            )

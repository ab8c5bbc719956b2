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
        await self.hit_many([(action, key, limit)], now=now)

    async def hit_many(
        self,
        hits: list[tuple[str, str, int]],
        *,
        now: datetime,
        remembered: tuple[str, str] | None = None,
    ) -> bool:
        """`hit` for each (action, key, limit), all counted in two round trips (the first
        past its limit, in order, is the 429); and whether `remembered` (action, key) is
        marked, read in the same trip. Returns False when none is asked."""
        start = int(now.timestamp() // self.window) * self.window
        end = start + self.window
        ids = [f"{action}:{_digest(key)}:{start}" for action, key, _ in hits]
        marker = None if remembered is None else f"{remembered[0]}:{_digest(remembered[1])}"
        expiry = datetime.fromtimestamp(end, UTC)
        rows = await self.repository.increment_many(
            [(i, expiry) for i in ids], also=[] if marker is None else [marker]
        )
        for counter_id, (action, _, limit) in zip(ids, hits, strict=True):
            if int(rows.get(counter_id, {}).get("hits", 1)) > limit:
                retry_after = max(1, math.ceil(end - now.timestamp()))
                raise RateLimited(
                    f"Too many {action} attempts; try again in {retry_after} s",
                    retry_after=retry_after,
                )
        mark = rows.get(marker) if marker is not None else None
        # The TTL monitor runs once a minute: check the expiry, not just the presence.
        return mark is not None and mark["expires_at"] > now

    async def remember(self, action: str, key: str, *, until: datetime) -> None:
        """Note that `key` did `action` (e.g. signed in), until `until`."""
        await self.repository.mark(f"{action}:{_digest(key)}", expires_at=until)


def _digest(key: str) -> str:
    # Hash the key: it may be an email address, which need not sit in a counter id.
    return hashlib.sha256(key.encode()).hexdigest()[:32]

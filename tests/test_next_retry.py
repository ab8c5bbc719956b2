"""When a queue worker (mail, webhooks) looks again: at each retry it scheduled, not only
the earliest, and at its poll otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.tasks import NextRetry


def test_every_scheduled_retry_is_looked_at_when_due() -> None:
    start = datetime(2026, 12, 7, tzinfo=UTC)
    now = [start]
    retries = NextRetry(lambda: now[0], poll_seconds=2.0)
    assert retries.pause() == 2.0  # nothing scheduled: the poll
    for seconds in (0.5, 1.0, 1.5, 30):
        retries.schedule(start + timedelta(seconds=seconds))
    assert retries.pause() == 0.5
    now[0] = start + timedelta(seconds=0.6)  # the first is due: look now...
    assert retries.pause() == 0.0
    # ...and the next one is still known (it was scheduled while the first was pending).
    assert retries.pause() == 0.4
    now[0] = start + timedelta(seconds=2)  # both the others passed while busy
    assert retries.pause() == 0.0
    assert retries.pause() == 2.0  # the 30 s one: poll first
    retries.schedule(None)  # no retry (given up): nothing changes
    assert retries.pause() == 2.0

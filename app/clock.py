"""The current time, in one place, so services can be given a fixed clock in tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from bson.tz_util import utc as bson_utc
from pydantic import PlainSerializer

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    # MongoDB stores milliseconds: truncate so what we return equals what we read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-11-24T10:00:00.123Z."""
    if value.tzinfo is UTC or value.tzinfo is bson_utc:  # what the driver reads back
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # its "+00:00" dropped
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A datetime that leaves the API as RFC 3339 UTC with milliseconds: 2026-11-24T10:00:00.123Z
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]

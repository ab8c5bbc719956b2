"""The current time, in one place, so services can be given a fixed clock in tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from bson.tz_util import utc as bson_utc
from pydantic import AwareDatetime, BeforeValidator, PlainSerializer

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    # MongoDB stores milliseconds: truncate so what we return equals what we read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-11-24T10:00:00.123Z. A naive value is UTC
    (as the driver decodes stored dates when asked for no time zone)."""
    if value.tzinfo is not None and value.tzinfo is not UTC and value.tzinfo is not bson_utc:
        value = value.astimezone(UTC)
    # Half the time of isoformat(), which asks the driver's tzinfo (Python) for its offset:
    # a page of 50 documents formats 100 of these.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
    )


# A datetime that leaves the API as RFC 3339 UTC with milliseconds: 2026-11-24T10:00:00.123Z
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_only(value: object) -> object:
    """A date-time as text, not a number of seconds (which pydantic would also take:
    `"expires_at": 0` would be 1970)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z")
    return value


# A date-time a client sends: RFC 3339 text with a time zone, never a bare number
Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]

"""HTTP conditional requests on documents: ETags, If-Match and If-None-Match (RFC 9110).

A document's ETag is its version (`"3"`); the service speaks versions (`Preconditions`),
this module turns headers into them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import Depends, Header

from app.documents.core import ANY, Preconditions

_ETAG = re.compile(r'^(W/)?"([0-9]{1,18})"$')


def etag_versions(value: str | None, *, weak: bool) -> tuple[int, ...] | Literal["*"] | None:
    """Parse an If-Match / If-None-Match list into versions. Tags that are not ours never
    match; weak tags (W/"3") only count where weak comparison applies (If-None-Match)."""
    if value is None:
        return None
    if value.strip() == "*":
        return "*"
    versions = []
    for tag in value.split(","):
        match = _ETAG.match(tag.strip())
        if match and (weak or not match.group(1)):
            versions.append(int(match.group(2)))
    return tuple(versions)


async def get_preconditions(
    if_match: Annotated[str | None, Header(max_length=1024)] = None,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Preconditions:
    return Preconditions(
        if_match=etag_versions(if_match, weak=False),
        if_none_match_any=etag_versions(if_none_match, weak=True) == ANY,
    )


PreconditionsDep = Annotated[Preconditions, Depends(get_preconditions)]


def not_modified(if_none_match: str | None, version: int) -> bool:
    """GET's If-None-Match rule (weak comparison, RFC 9110 §13.1.2)."""
    seen = etag_versions(if_none_match, weak=True)
    return seen == ANY or (isinstance(seen, tuple) and version in seen)

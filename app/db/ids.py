"""ObjectId spellings: parsing a client's id without an exception, one canonical form."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId


def parse_object_id(value: str) -> ObjectId | None:
    """The ObjectId `value` spells, or None when it spells none."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def canonical_id(object_id: str) -> str:
    """The one spelling of an ObjectId string: ObjectId accepts upper-case hex, but ids are
    stored, compared and cached (and owners recorded) in lower case."""
    oid = parse_object_id(object_id)
    return object_id if oid is None else str(oid)

"""Response bodies of documents, encoded straight from the stored shape.

The route's models (DocumentOut, DocumentPage) describe these bodies in OpenAPI; building
and validating a model per document only to encode it again cost more than the database
call (make bench), so the routes return these bytes. tests/test_fast_get.py and the
contract tests check the shape against the models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from app.documents.core import envelope, json_envelope
from app.documents.models import StoredDocument
from app.documents.schemas import DocumentOut

# Dates are the envelope's text already; one left in `data` (written around the API) is
# refused here and goes to the model's encoder, as any BSON type JSON lacks does.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def _encode(body: Any) -> bytes:
    """`body` as compact UTF-8 JSON (TypeError for anything JSON lacks)."""
    return orjson.dumps(body, option=_OPTIONS)


def encode_document(
    collection: str, doc: StoredDocument, expanded: dict[str, Any] | None = None
) -> bytes:
    """The response body: the DocumentOut shape, encoded without building the model."""
    body = json_envelope(collection, doc)
    if expanded is not None:
        body["expanded"] = expanded
    try:
        return _encode(body)
    except TypeError:
        # Data written around the API (a BSON type JSON lacks): the model's encoder.
        fallback = envelope(collection, doc)
        if expanded is not None:
            fallback["expanded"] = expanded
        return DocumentOut.model_validate(_utc(fallback)).model_dump_json().encode()


def _utc(value: Any) -> Any:
    """`value` with its naive dates (a page's rows hold them: repository.find_page) made
    UTC, so the model writes them with their `Z` as it does any stored date."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, dict):
        return {key: _utc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_utc(item) for item in value]
    return value


def encode_page(
    collection: str,
    docs: list[StoredDocument],
    next_cursor: str | None,
    expanded: dict[str, dict[str, Any]] | None = None,
) -> bytes:
    """A DocumentPage body (with each document's `expanded`, by id, when given)."""
    bodies = [json_envelope(collection, doc) for doc in docs]
    if expanded is not None:
        for body in bodies:
            body["expanded"] = expanded[body["id"]]
    try:  # the whole page in one call
        return _encode({"items": bodies, "next_cursor": next_cursor})
    except TypeError:  # some document needs the model's encoder: each on its own
        items = b",".join(
            encode_document(collection, doc, None if expanded is None else expanded[doc.id])
            for doc in docs
        )
        return b'{"items":[' + items + b'],"next_cursor":' + _encode(next_cursor) + b"}"

"""Response bodies of documents, encoded straight from the stored shape.

The route's models (DocumentOut, DocumentPage) describe these bodies in OpenAPI; building
and validating a model per document only to encode it again cost more than the database
call (make bench), so the routes return these bytes. tests/test_fast_get.py and the
contract tests check the shape against the models.
"""

from __future__ import annotations

import json
from typing import Any

from app.documents.core import envelope, json_envelope
from app.documents.models import StoredDocument
from app.documents.schemas import DocumentOut

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_document(
    collection: str, doc: StoredDocument, expanded: dict[str, Any] | None = None
) -> bytes:
    """The response body: the DocumentOut shape, encoded without building the model."""
    body = json_envelope(collection, doc)
    if expanded is not None:
        body["expanded"] = expanded
    try:
        return _JSON.encode(body).encode()
    except (TypeError, ValueError):
        # Data written around the API (a BSON type JSON lacks, a NaN): the model's encoder.
        fallback = envelope(collection, doc)
        if expanded is not None:
            fallback["expanded"] = expanded
        return DocumentOut.model_validate(fallback).model_dump_json().encode()


def encode_page(
    collection: str,
    docs: list[StoredDocument],
    next_cursor: str | None,
    expanded: dict[str, dict[str, Any]] | None = None,
) -> bytes:
    """A DocumentPage body (with each document's `expanded`, by id, when given)."""
    items = b",".join(
        encode_document(collection, doc, None if expanded is None else expanded[doc.id])
        for doc in docs
    )
    cursor = _JSON.encode(next_cursor).encode()
    return b'{"items":[' + items + b'],"next_cursor":' + cursor + b"}"

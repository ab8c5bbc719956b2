"""GET one document by id: the one answer both the FastAPI route and the fast path send."""

from __future__ import annotations

from dataclasses import dataclass

from app.accounts.principal import Principal
from app.documents.service import DocumentService
from app.http.conditional import not_modified
from app.http.encoding import encode_document


@dataclass(frozen=True, slots=True)
class DocumentAnswer:
    status: int  # 200, or 304 with an empty body
    etag: str
    body: bytes


async def read_document(
    documents: DocumentService,
    name: str,
    doc_id: str,
    caller: Principal | None,
    if_none_match: str | None,
) -> DocumentAnswer:
    """The document as `caller` may see it (errors raised as AppError: 401/404...)."""
    doc = await documents.get(name, doc_id, caller)
    if not_modified(if_none_match, doc.version):
        return DocumentAnswer(304, doc.etag, b"")
    return DocumentAnswer(200, doc.etag, encode_document(name, doc))

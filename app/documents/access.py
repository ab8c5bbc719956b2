"""Who may read and write which documents of a collection: pure rules, no I/O."""

from __future__ import annotations

from typing import Any

from app.accounts.principal import Principal
from app.collections.models import CollectionSpec, ReadAccess, WriteAccess
from app.documents.models import StoredDocument
from app.errors import ErrorCode, Forbidden, NotFound, Unauthorized


def _sign_in_first() -> Unauthorized:
    return Unauthorized(
        "Sign in first: send 'Authorization: Bearer <access token>'",
        code=ErrorCode.NOT_AUTHENTICATED,
    )


def document_not_found(collection: str, doc_id: str) -> NotFound:
    return NotFound(
        f"Document {collection}/{doc_id} does not exist", code=ErrorCode.DOCUMENT_NOT_FOUND
    )


def read_scope(spec: CollectionSpec, caller: Principal | None) -> dict[str, Any]:
    """The query that limits reads to what `caller` may see (raises 401 for anonymous)."""
    rule = spec.access.read
    if rule is ReadAccess.PUBLIC:
        return {}
    if caller is None:
        raise _sign_in_first()
    if rule is ReadAccess.OWNER and not caller.is_admin:
        return {"owner": caller.id}
    return {}


def can_read(spec: CollectionSpec, caller: Principal | None, doc: StoredDocument) -> bool:
    rule = spec.access.read
    if rule is ReadAccess.PUBLIC:
        return True
    if caller is None:
        return False
    return rule is ReadAccess.AUTHENTICATED or caller.is_admin or doc.owner == caller.id


def check_create(spec: CollectionSpec, caller: Principal | None) -> Principal:
    """The caller, if they may create documents here."""
    if caller is None:
        raise _sign_in_first()
    if spec.access.write is WriteAccess.ADMIN and not caller.is_admin:
        raise Forbidden(f"Only admins write to {spec.id}")
    return caller


def write_scope(spec: CollectionSpec, caller: Principal | None) -> dict[str, Any]:
    """The query that limits changes to documents `caller` may change."""
    caller = check_create(spec, caller)
    if spec.access.write is WriteAccess.OWNER and not caller.is_admin:
        return {"owner": caller.id}
    return {}


def can_write(spec: CollectionSpec, caller: Principal | None, doc: StoredDocument) -> bool:
    if caller is None:
        return False
    if caller.is_admin:
        return True
    rule = spec.access.write
    if rule is WriteAccess.ADMIN:
        return False
    return rule is WriteAccess.AUTHENTICATED or doc.owner == caller.id

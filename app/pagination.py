"""Opaque, tamper-proof page cursors.

A cursor is base64url(JSON payload) + "." + HMAC. It is bound to a `scope` string
(e.g. the filter and sort it was made for), so a cursor cannot be replayed against a
different query or forged to jump elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from bson import ObjectId

from app.db.ids import parse_object_id
from app.errors import AppError, ErrorCode


class InvalidCursor(AppError):
    code, status = ErrorCode.INVALID_CURSOR, 400


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"docstore-cursor:" + secret.encode()).digest()

    def _mac(self, body: str, scope: str) -> str:
        digest = hmac.new(self._key, f"{scope}\n{body}".encode(), hashlib.sha256).digest()
        return _b64(digest[:16])

    def encode(self, payload: Any, *, scope: str = "") -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), default=str).encode())
        return f"{body}.{self._mac(body, scope)}"

    def decode(self, cursor: str, *, scope: str = "") -> Any:
        body, _, mac = cursor.partition(".")
        # Bytes, not str: compare_digest refuses non-ASCII text (a TypeError, a 500).
        if (
            not body
            or not mac
            or not hmac.compare_digest(mac.encode(), self._mac(body, scope).encode())
        ):
            raise InvalidCursor("The cursor is not valid for this query; start from the first page")
        try:
            return json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidCursor("The cursor is malformed; start from the first page") from exc


def id_cursor(cursor: str | None) -> ObjectId | None:
    """A newest-first listing's cursor (the last id it gave); 400 when it is not one."""
    if cursor is None:
        return None
    found = parse_object_id(cursor)
    if found is None:
        raise InvalidCursor("The cursor is not one this list gave")
    return found

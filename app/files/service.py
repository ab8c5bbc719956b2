"""Files attached to documents: the document's access rules, preconditions, signed links."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from app.accounts.principal import Principal
from app.accounts.user_repository import UserRepository
from app.clock import Clock
from app.collections.models import CollectionSpec
from app.collections.service import CollectionService
from app.documents import access
from app.documents.core import PreconditionFailed
from app.documents.service import DocumentService
from app.errors import AppError, ErrorCode, Forbidden, NotFound
from app.files.names import check_filename, check_sniff
from app.files.store import Abandoned, FileStore, StoredFile, TooLarge


class FileTooLarge(AppError):
    code, status = ErrorCode.PAYLOAD_TOO_LARGE, 413


class UploadTimedOut(AppError):
    code, status = ErrorCode.UPLOAD_TIMED_OUT, 408


class TooManyFiles(AppError):
    code, status = ErrorCode.TOO_MANY_FILES, 409


class InvalidLink(AppError):
    code, status = ErrorCode.INVALID_LINK, 403


def file_not_found(doc_id: str, filename: str) -> NotFound:
    return NotFound(f"Document {doc_id} has no file {filename!r}", code=ErrorCode.FILE_NOT_FOUND)


@dataclass(frozen=True, slots=True)
class FilePreconditions:
    if_match: str | None = None
    if_none_match: str | None = None


class FileService:
    def __init__(
        self,
        *,
        store: FileStore,
        documents: DocumentService,
        collections: CollectionService,
        users: UserRepository,
        secret: str,
        max_bytes: int,
        max_per_document: int,
        link_max_seconds: int,
        clock: Clock,
    ) -> None:
        self.store = store
        self.documents = documents
        self.collections = collections
        self.users = users
        self._key = hashlib.sha256(b"docstore-file-link:" + secret.encode()).digest()
        self.max_bytes = max_bytes
        self.max_per_document = max_per_document
        self.link_max_seconds = link_max_seconds
        self.clock = clock

    async def _readable(self, name: str, doc_id: str, caller: Principal | None) -> None:
        await self.documents.get(name, doc_id, caller)  # 401/404 as for the document

    async def _writable(self, name: str, doc_id: str, caller: Principal | None) -> CollectionSpec:
        """The collection's declaration, once the caller may change the document."""
        doc = await self.documents.get(name, doc_id, caller)
        spec = await self.collections.get(name)
        gate = await self.documents.gate(spec, caller)
        if not gate.can_change("update", doc):
            raise Forbidden(f"You may read {name}/{doc_id} but not change it or its files")
        return spec

    async def put(
        self,
        name: str,
        doc_id: str,
        filename: str,
        caller: Principal | None,
        *,
        content_type: str,
        declared_length: int | None,
        body: AsyncIterator[bytes],
        pre: FilePreconditions,
    ) -> tuple[StoredFile, bool]:
        """Store (or replace) a file; (the stored file, whether it is new)."""
        filename = check_filename(filename)
        spec = await self._writable(name, doc_id, caller)
        if declared_length is not None and declared_length > self.max_bytes:
            raise self._too_large()
        current = await self.store.current(name, doc_id, filename)
        self._check(pre, current, doc_id, filename)
        if current is None and (
            await self.store.count_names(name, doc_id) >= self.max_per_document
        ):
            raise TooManyFiles(
                f"Document {doc_id} has {self.max_per_document} files, the most allowed; "
                "delete one first"
            )
        try:
            stored = await self.store.upload(
                name,
                doc_id,
                filename,
                content_type,
                body,
                max_bytes=self.max_bytes,
                first_bytes=lambda head: check_sniff(content_type, head),
                clock=self.clock,
            )
        except TooLarge:
            raise self._too_large() from None
        except Abandoned:
            raise UploadTimedOut(
                "The upload sent nothing for over an hour and was discarded; send it again"
            ) from None
        if await self.documents.find_any(spec, doc_id) is None:
            # Deleted while the body streamed in (its files went with it): this one too,
            # or a document created later under the same id would inherit it.
            await self.store.delete(name, doc_id, filename)
            raise access.document_not_found(name, doc_id)
        await self.store.drop_older(name, doc_id, filename, keep=stored.id)
        return stored, current is None

    def _too_large(self) -> FileTooLarge:
        return FileTooLarge(f"The file is over FILE_MAX_BYTES ({self.max_bytes} bytes)")

    @staticmethod
    def _check(pre: FilePreconditions, current: StoredFile | None, doc_id: str, name: str) -> None:
        if pre.if_none_match is not None and pre.if_none_match.strip() == "*" and current:
            raise PreconditionFailed(f"Document {doc_id} already has {name!r} (If-None-Match: *)")
        if pre.if_match is not None:
            wanted = {t.strip() for t in pre.if_match.split(",")}
            if current is None or not ("*" in wanted or current.etag in wanted):
                raise PreconditionFailed(
                    f"{name!r} of {doc_id} is not at {pre.if_match} (If-Match)"
                )

    async def list(self, name: str, doc_id: str, caller: Principal | None) -> list[StoredFile]:
        await self._readable(name, doc_id, caller)
        return await self.store.list_current(name, doc_id)

    async def get(
        self, name: str, doc_id: str, filename: str, caller: Principal | None
    ) -> StoredFile:
        await self._readable(name, doc_id, caller)
        return await self._current(name, doc_id, filename)

    async def _current(self, name: str, doc_id: str, filename: str) -> StoredFile:
        stored = await self.store.current(name, doc_id, check_filename(filename))
        if stored is None:
            raise file_not_found(doc_id, filename)
        return stored

    async def delete(self, name: str, doc_id: str, filename: str, caller: Principal | None) -> None:
        await self._writable(name, doc_id, caller)
        if not await self.store.delete(name, doc_id, check_filename(filename)):
            raise file_not_found(doc_id, filename)

    # -- signed links ----------------------------------------------------------------------

    def _signature(
        self, name: str, doc_id: str, stored: StoredFile, expires: int, creator: Principal | None
    ) -> str:
        who = "" if creator is None else f"{creator.id}\n{creator.token_version}"
        message = f"{name}\n{doc_id}\n{stored.name}\n{expires}\n{stored.id}\n{who}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    async def link(
        self, name: str, doc_id: str, filename: str, caller: Principal | None, expires_in: int
    ) -> tuple[str, datetime]:
        """A path (with query) that serves the file without a token until it expires, or
        until the file is replaced or deleted (the signature covers its version), or until
        its creator could no longer read the document (checked at every use) or ended
        their credentials (the signature covers their token version)."""
        if expires_in > self.link_max_seconds:
            raise AppError(
                f"expires_in is at most FILE_LINK_MAX_SECONDS ({self.link_max_seconds})",
                code=ErrorCode.VALIDATION_FAILED,
                status=422,
            )
        # Handing out a token-less way in is a change to who can see the file: as for
        # uploads, it takes write access to the document.
        await self._writable(name, doc_id, caller)
        stored = await self._current(name, doc_id, filename)
        expires_at = self.clock() + timedelta(seconds=expires_in)
        expires = int(expires_at.timestamp())
        sig = self._signature(name, doc_id, stored, expires, caller)
        by = "" if caller is None else f"&by={caller.id}"
        path = (
            f"/v1/collections/{quote(name, safe='')}/documents/{quote(doc_id, safe='')}"
            f"/files/{quote(stored.name, safe='')}?expires={expires}{by}&sig={sig}"
        )
        return path, expires_at

    async def by_link(
        self, name: str, doc_id: str, filename: str, expires: int, sig: str, by: str | None
    ) -> StoredFile:
        refused = InvalidLink(
            "The link is not valid: expired, the file was replaced or deleted, or whoever "
            "made it may no longer read it; ask for a new one"
        )
        if expires <= self.clock().timestamp():
            raise refused
        creator = None if by is None else await self.users.get_principal(by)
        if by is not None and (creator is None or creator.disabled):
            raise refused
        try:
            # The creator's access today, under the collection's rules today.
            await self._readable(name, doc_id, creator)
        except AppError:
            raise refused from None
        stored = await self.store.current(name, doc_id, check_filename(filename))
        if stored is None or not hmac.compare_digest(
            sig.encode(), self._signature(name, doc_id, stored, expires, creator).encode()
        ):
            raise refused
        return stored

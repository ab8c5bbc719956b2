"""HTTP endpoints of /v1/collections/{name}/documents/{doc_id}/files."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.clock import Timestamp
from app.files.names import byte_range, content_disposition, is_inline, media_type
from app.files.service import FilePreconditions
from app.files.store import StoredFile
from app.http.deps import FileServiceDep, OptionalUser
from app.http.params import DocumentPathId
from app.http.problems import problem_responses

router = APIRouter(prefix="/v1/collections/{name}/documents/{doc_id:doc_id}/files", tags=["files"])

FileName = Annotated[str, Field(min_length=1, max_length=1024)]


class FileOut(BaseModel):
    name: str
    size: int
    content_type: str
    sha256: str = Field(description="Hex SHA-256 of the content; also the ETag")
    created_at: Timestamp


class FileList(BaseModel):
    items: list[FileOut]


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in: int = Field(default=3600, ge=1, description="Seconds the link works")


class LinkOut(BaseModel):
    url: str = Field(description="Path and query; works without a token until expires_at")
    expires_at: datetime


def _out(stored: StoredFile) -> FileOut:
    return FileOut(
        name=stored.name,
        size=stored.size,
        content_type=stored.content_type,
        sha256=stored.sha256,
        created_at=stored.created_at,
    )


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "",
    operation_id="documents_files_list",
    summary="The document's files",
    responses=problem_responses(401, 404),
)
async def list_files(
    name: str, doc_id: DocumentPathId, caller: OptionalUser, files: FileServiceDep
) -> FileList:
    return FileList(items=[_out(f) for f in await files.list(name, doc_id, caller)])


@router.put(
    "/{filename}",
    status_code=status.HTTP_201_CREATED,
    operation_id="documents_files_put",
    summary="Upload (or replace) a file: the raw body, any Content-Type",
    description="The body is the file's bytes as they are (not JSON); its Content-Type is "
    "stored and served back (application/octet-stream when none is sent).",
    openapi_extra={
        # octet-stream first: generated clients send bytes (Blob, Uint8Array) as they are.
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": _BINARY, "*/*": _BINARY},
        },
    },
    responses={
        200: {"model": FileOut, "description": "Replaced"},
        **problem_responses(401, 403, 404, 408, 409, 412, 413, 415, 422),
    },
)
async def put_file(
    request: Request,
    response: Response,
    name: str,
    doc_id: DocumentPathId,
    filename: FileName,
    caller: OptionalUser,
    files: FileServiceDep,
    content_type: Annotated[str | None, Header(max_length=300)] = None,
    content_length: Annotated[int | None, Header(ge=0)] = None,
    if_match: Annotated[str | None, Header(max_length=4096)] = None,
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
) -> FileOut:
    stored, created = await files.put(
        name,
        doc_id,
        filename,
        caller,
        content_type=media_type(content_type),
        declared_length=content_length,
        body=request.stream(),
        pre=FilePreconditions(if_match=if_match, if_none_match=if_none_match),
    )
    response.status_code = 201 if created else 200
    response.headers["ETag"] = stored.etag
    return _out(stored)


_DOWNLOAD_HEADERS = {
    name: {"schema": {"type": "string"}}
    for name in ("Content-Disposition", "Accept-Ranges", "Content-Range")
}


@router.get(
    "/{filename}",
    operation_id="documents_files_get",
    summary="Download a file (Range, If-None-Match); or through a signed link",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"*/*": _BINARY}, "description": "The file", "headers": _DOWNLOAD_HEADERS},
        206: {
            "content": {"*/*": _BINARY},
            "description": "Part of it",
            "headers": _DOWNLOAD_HEADERS,
        },
        304: {"description": "Not modified (If-None-Match)"},
        **problem_responses(401, 403, 404, 422),
        416: {
            **problem_responses(416)[416],
            "headers": {"Content-Range": {"schema": {"type": "string"}, "example": "bytes */1024"}},
        },
    },
)
async def get_file(
    name: str,
    doc_id: DocumentPathId,
    filename: FileName,
    caller: OptionalUser,
    files: FileServiceDep,
    range_: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
    expires: Annotated[int | None, Query(ge=0, le=2**40, description="Signed link")] = None,
    sig: Annotated[str | None, Query(max_length=100, description="Signed link")] = None,
    by: Annotated[str | None, Query(max_length=64, description="Signed link: its creator")] = None,
) -> Response:
    if expires is not None and sig is not None:
        stored = await files.by_link(name, doc_id, filename, expires, sig, by)
    else:
        stored = await files.get(name, doc_id, filename, caller)
    headers = {
        "ETag": stored.etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(
            stored.name, inline=is_inline(stored.content_type)
        ),
        # Never run as a page of the API's origin, whatever it contains.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-cache",
    }
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x".
    if if_none_match is not None and (
        if_none_match.strip() == "*"
        or stored.etag in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    ):
        return Response(status_code=304, headers=headers)
    span = byte_range(range_, stored.size)
    first, last = span if span is not None else (0, stored.size - 1)
    headers["Content-Length"] = str(last - first + 1 if stored.size else 0)
    if span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{stored.size}"
    body: Any = files.store.open(stored, first, last) if stored.size else iter(())
    return StreamingResponse(
        body,
        status_code=206 if span is not None else 200,
        media_type=stored.content_type,
        headers=headers,
    )


@router.delete(
    "/{filename}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="documents_files_delete",
    summary="Delete a file",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_file(
    name: str,
    doc_id: DocumentPathId,
    filename: FileName,
    caller: OptionalUser,
    files: FileServiceDep,
) -> Response:
    await files.delete(name, doc_id, filename, caller)
    return Response(status_code=204)


@router.post(
    "/{filename}/link",
    operation_id="documents_files_link",
    summary="A signed link to the file that works without a token until it expires",
    responses=problem_responses(401, 403, 404, 422),
)
async def link_file(
    name: str,
    doc_id: DocumentPathId,
    filename: FileName,
    caller: OptionalUser,
    files: FileServiceDep,
    body: LinkIn,
) -> LinkOut:
    url, expires_at = await files.link(name, doc_id, filename, caller, body.expires_in)
    return LinkOut(url=url, expires_at=expires_at)

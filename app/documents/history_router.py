"""HTTP endpoints of document history (`history: true`): versions and the trash."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, Field

from app.clock import Timestamp
from app.documents.core import json_envelope

# Registers the {doc_id:doc_id} path convertor; a document's response, as documents answer.
from app.documents.router import _document
from app.documents.schemas import DocumentOut
from app.http.conditional import PreconditionsDep
from app.http.deps import DocumentServiceDep, OptionalUser
from app.http.params import DocumentPathId
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute
from app.pagination import InvalidCursor, id_cursor

router = APIRouter(prefix="/v1/collections/{name}", tags=["history"], route_class=StrictJSONRoute)
Version = Annotated[int, Path(ge=1, le=2**53, description="A version number (the ETag's value)")]


class VersionOut(BaseModel):
    version: int
    updated_at: Timestamp = Field(description="When this version was written")
    replaced_at: Timestamp | None = Field(
        description="When a later version replaced it; null: current"
    )


class VersionPage(BaseModel):
    items: list[VersionOut] = Field(description="Newest first; the first is the current version")
    next_cursor: str | None = Field(description="Pass as `cursor` for older versions")


class TrashedOut(BaseModel):
    document: DocumentOut = Field(description="The document as it was when deleted")
    deleted_at: Timestamp
    purge_at: Timestamp = Field(description="When it and its files are deleted for good")


class TrashPage(BaseModel):
    items: list[TrashedOut] = Field(
        description="Newest deletion first; a page may hold fewer than `limit` items when "
        "rules hide some"
    )
    next_cursor: str | None


@router.get(
    "/documents/{doc_id:doc_id}/versions",
    operation_id="documents_versions",
    summary="A document's versions, newest first",
    description="For collections declared with `history: true`: the current version and "
    "those it replaced, kept HISTORY_RETENTION_DAYS. Listed to whoever may read the document.",
    responses=problem_responses(400, 401, 404, 422),
)
async def list_versions(
    name: str,
    doc_id: DocumentPathId,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100")] = 20,
) -> VersionPage:
    below = int(cursor) if cursor is not None else None
    if below is not None and below > 2**53:
        raise InvalidCursor("The cursor is not one this list gave")
    found = await documents.versions(name, doc_id, caller, below=below, limit=limit + 1)
    items = [
        VersionOut(version=v.version, updated_at=v.updated_at, replaced_at=v.replaced_at)
        for v in found[:limit]
    ]
    return VersionPage(
        items=items, next_cursor=str(items[-1].version) if len(found) > limit else None
    )


@router.get(
    "/documents/{doc_id:doc_id}/versions/{version}",
    response_model=DocumentOut,
    operation_id="documents_version",
    summary="A document as it was at a version",
    responses=problem_responses(401, 404, 422),
)
async def get_version(
    name: str,
    doc_id: DocumentPathId,
    version: Version,
    caller: OptionalUser,
    documents: DocumentServiceDep,
) -> Response:
    return _document(
        name, await documents.version(name, doc_id, version, caller), with_location=False
    )


@router.post(
    "/documents/{doc_id:doc_id}/versions/{version}/restore",
    response_model=DocumentOut,
    operation_id="documents_restore_version",
    summary="Make an old version current again (as a new version)",
    description="A write like any other: the update rule, field rules, the schema and "
    "`If-Match` (the current version) apply.",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
async def restore_version(
    name: str,
    doc_id: DocumentPathId,
    version: Version,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    pre: PreconditionsDep,
) -> Response:
    doc = await documents.restore_version(name, doc_id, version, caller, pre)
    return _document(name, doc, with_location=False)


@router.get(
    "/trash",
    operation_id="trash_list",
    summary="Deleted documents waiting in the trash",
    description="For collections declared with `history: true`: each deleted document, "
    "kept with its files TRASH_RETENTION_DAYS; listed to whoever could read it.",
    responses=problem_responses(400, 401, 404, 422),
)
async def list_trash(
    name: str,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100")] = 20,
) -> TrashPage:
    before = id_cursor(cursor)
    found, next_cursor = await documents.trash(name, caller, before=before, limit=limit)
    items = [
        TrashedOut(
            document=DocumentOut.model_validate(json_envelope(name, t.doc)),
            deleted_at=t.deleted_at,
            purge_at=t.purge_at,
        )
        for t in found
    ]
    return TrashPage(items=items, next_cursor=next_cursor)


@router.post(
    "/trash/{doc_id:doc_id}/restore",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentOut,
    operation_id="trash_restore",
    summary="Bring a deleted document back, with its files",
    description="Under its id, one version past the deleted one; the create rule, field "
    "rules and the current schema apply (409 when a document with that id exists again).",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def restore_trashed(
    name: str, doc_id: DocumentPathId, caller: OptionalUser, documents: DocumentServiceDep
) -> Response:
    doc = await documents.restore_trashed(name, doc_id, caller)
    return _document(name, doc, status.HTTP_201_CREATED)


@router.delete(
    "/trash/{doc_id:doc_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="trash_purge",
    summary="Delete a trashed document and its files for good (admin)",
    responses=problem_responses(401, 403, 404),
)
async def purge_trashed(
    name: str, doc_id: DocumentPathId, caller: OptionalUser, documents: DocumentServiceDep
) -> None:
    await documents.purge_trashed(name, doc_id, caller)

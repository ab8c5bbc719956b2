"""HTTP endpoints of /v1/collections/{name}/documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.convertors import Convertor, register_url_convertor

from app.documents.bulk import BulkChange
from app.documents.core import RESERVED_IDS
from app.documents.models import StoredDocument
from app.documents.schemas import (
    AggregateGroup,
    AggregateIn,
    AggregateOut,
    BulkChangeIn,
    BulkChangeOut,
    BulkCreate,
    BulkFailureOut,
    BulkItemResult,
    BulkResult,
    BulkUpdateIn,
    DocId,
    DocumentCount,
    DocumentOut,
    DocumentPage,
    DocumentUpdate,
    ShareIn,
    ShareList,
    ShareOut,
    UserShareIn,
)
from app.documents.sharing import Share
from app.errors import FieldError, ValidationFailed
from app.http.conditional import PreconditionsDep
from app.http.deps import DocumentServiceDep, OptionalUser
from app.http.document_get import read_document
from app.http.encoding import encode_document, encode_page
from app.http.params import DocumentPathId
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

router = APIRouter(
    prefix="/v1/collections/{name}/documents", tags=["documents"], route_class=StrictJSONRoute
)


class DocumentIdConvertor(Convertor[str]):
    """A `{doc_id}` segment that is not one of the collection-level routes (count, bulk),
    so `/documents/count` is never also "the document called count"."""

    regex = "(?!(?:" + "|".join(sorted(RESERVED_IDS)) + ")/?$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("doc_id", DocumentIdConvertor())

_EXAMPLE = {"title": "Hello", "score": 7}
_READ_ERRORS = problem_responses(400, 401, 404, 422)
_WRITE_ERRORS = problem_responses(401, 403, 404, 409, 412, 413, 415, 422, 428)
# A document id that names a collection-level route (count, bulk) reaches that route,
# which serves other methods: 405.
_ONE_DOCUMENT = problem_responses(405)


Filter = Annotated[
    str | None,
    Query(
        max_length=8192,
        description='JSON filter over response paths, e.g. {"data.score": {"$gte": 5}}',
    ),
]


Expand = Annotated[
    str | None,
    Query(
        max_length=1000,
        description="References (x-ref) to embed in `expanded`, comma-separated; dots go "
        "through them: `author,comments.author`. At most 10 paths, 3 references deep.",
    ),
]


TeamParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^team_[A-Za-z0-9_-]+$",
        description="The team the new document belongs to (one of yours); ignored when "
        "the document exists already",
    ),
]


def location(collection: str, doc_id: str) -> str:
    return f"/v1/collections/{collection}/documents/{doc_id}"


def _document(
    name: str, doc: StoredDocument, status_code: int = 200, *, with_location: bool = True
) -> Response:
    """A document's response, encoded from the stored shape (app/documents/encoding.py);
    the route's response_model documents it."""
    headers = {"ETag": doc.etag}
    if with_location:
        headers["Location"] = location(name, doc.id)
    return Response(
        encode_document(name, doc),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentOut,
    operation_id="documents_create",
    summary="Create a document",
    description="The body is the document's `data`. With `Idempotency-Key`, repeating the "
    "request with the same body replays the first response for 24 h.",
    responses=_WRITE_ERRORS,
)
async def create_document(
    name: str,
    data: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
    caller: OptionalUser,
    documents: DocumentServiceDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    team: TeamParam = None,
) -> Response:
    doc, replay = await documents.create(
        name, data, caller, idempotency_key=idempotency_key, team=team
    )
    if replay is not None:
        # The first request's answer: the same document, status and headers.
        first = DocumentOut.model_validate(replay.body)
        return JSONResponse(
            first.model_dump(mode="json", exclude={"expanded"}),
            status_code=status.HTTP_201_CREATED,
            headers={"ETag": f'"{first.version}"', "Location": location(name, first.id)},
        )
    assert doc is not None
    return _document(name, doc, status.HTTP_201_CREATED)


@router.post(
    "/bulk",
    operation_id="documents_bulk_create",
    summary="Create many documents; each item succeeds or fails on its own",
    responses=problem_responses(401, 403, 404, 413, 422),
)
async def bulk_create_documents(
    name: str, body: BulkCreate, caller: OptionalUser, documents: DocumentServiceDep
) -> BulkResult:
    items = await documents.bulk_create(name, body.documents, caller)
    results = [BulkItemResult.model_validate(item, from_attributes=True) for item in items]
    created = sum(1 for r in results if r.status == status.HTTP_201_CREATED)
    return BulkResult(created=created, failed=len(results) - created, results=results)


def _bulk_out(result: BulkChange, dry_run: bool) -> BulkChangeOut:
    return BulkChangeOut(
        matched=result.matched,
        modified=result.modified,
        more=result.more,
        dry_run=dry_run,
        failed=[BulkFailureOut(**vars(f)) for f in result.failed],
    )


@router.post(
    "/bulk-update",
    operation_id="documents_bulk_update",
    summary="Apply update operators to every matching document you may change",
    description="Each document changes atomically (validated against the schema, version "
    "bumped); the call as a whole is not all-or-nothing (use POST /v1/batch for that). At "
    "most `limit` documents, oldest first; when `more` is true, call again (e.g. after "
    "`mark as read`, the changed ones no longer match). `dry_run` counts only.",
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def bulk_update_documents(
    name: str, body: BulkUpdateIn, caller: OptionalUser, documents: DocumentServiceDep
) -> BulkChangeOut:
    operations = body.update.operations()
    result = await documents.bulk_update(
        name, body.filter, operations, caller, dry_run=body.dry_run, limit=body.limit
    )
    return _bulk_out(result, body.dry_run)


@router.post(
    "/bulk-delete",
    operation_id="documents_bulk_delete",
    summary="Delete every matching document you may change",
    description="At most `limit` documents, oldest first (`more`: others match); "
    "`dry_run` counts only.",
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def bulk_delete_documents(
    name: str, body: BulkChangeIn, caller: OptionalUser, documents: DocumentServiceDep
) -> BulkChangeOut:
    result = await documents.bulk_delete(
        name, body.filter, caller, dry_run=body.dry_run, limit=body.limit
    )
    return _bulk_out(result, body.dry_run)


@router.get(
    "",
    response_model=DocumentPage,
    operation_id="documents_list",
    summary="Query documents: filter, sort, project, page",
    responses=_READ_ERRORS,
)
async def list_documents(
    name: str,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    filter: Filter = None,
    sort: Annotated[
        str | None,
        Query(max_length=1000, description="Comma-separated paths, `-` for descending"),
    ] = None,
    fields: Annotated[
        str | None, Query(max_length=4000, description="Comma-separated `data.*` paths")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    expand: Expand = None,
    search: Annotated[
        str | None,
        Query(
            max_length=500,
            description="Full-text search of the collection's `search` fields: documents "
            "with any of its words, best first (unless `sort` orders them); combines with "
            "`filter`. 400 `search_not_enabled` when the collection declares none.",
        ),
    ] = None,
) -> Response:
    page = await documents.list_page(
        name,
        caller,
        filter_raw=filter,
        sort_raw=sort,
        fields_raw=fields,
        limit=limit,
        cursor=cursor,
        search=search,
        expand=expand,
    )
    return Response(
        encode_page(name, page.items, page.next_cursor, page.expanded),
        media_type="application/json",
    )


@router.get(
    "/count",
    operation_id="documents_count",
    summary="Count documents matching a filter",
    responses=_READ_ERRORS,
)
async def count_documents(
    name: str,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    filter: Filter = None,
) -> DocumentCount:
    return DocumentCount(count=await documents.count(name, caller, filter))


@router.post(
    "/aggregate",
    operation_id="documents_aggregate",
    summary="Count, sum, average, least and greatest per group of readable documents",
    description="Groups by fields or date buckets (`group_by`, up to 3) the documents the "
    "caller may read that match `filter`, with `metrics` per group. More than "
    "AGGREGATE_MAX_GROUPS groups is 422 `too_many_groups`; fields a field rule hides in "
    "some documents are 403 `field_forbidden`.",
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def aggregate_documents(
    name: str, body: AggregateIn, caller: OptionalUser, documents: DocumentServiceDep
) -> AggregateOut:
    found = await documents.aggregate(name, caller, body)
    return AggregateOut(
        groups=[AggregateGroup(key=g.key, values=g.values) for g in found.groups],
        more=found.more,
    )


@router.get(
    "/{doc_id:doc_id}",
    response_model=DocumentOut,
    operation_id="documents_get",
    summary="Read a document",
    description="Answers 304 when `If-None-Match` names its current ETag (not with "
    "`expand`: that body depends on other documents too).",
    responses={304: {"description": "Not Modified"}, **problem_responses(401, 404, 405)},
)
async def get_document(
    name: str,
    doc_id: DocumentPathId,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
    expand: Expand = None,
) -> Response:
    if expand is not None:
        # The body then depends on other documents too: no ETag, never 304.
        doc = await documents.get(name, doc_id, caller)
        expanded = await documents.expanded_for(name, caller, [doc], expand)
        return Response(encode_document(name, doc, expanded[doc.id]), media_type="application/json")
    answer = await read_document(documents, name, doc_id, caller, if_none_match)
    if answer.status == 304:
        return Response(status_code=304, headers={"ETag": answer.etag})
    return Response(answer.body, headers={"ETag": answer.etag}, media_type="application/json")


@router.put(
    "/{doc_id:doc_id}",
    response_model=DocumentOut,
    operation_id="documents_put",
    summary="Replace a document, or create it with this id",
    description="Answers 201 when it created the document. `If-None-Match: *` only creates; "
    "`If-Match` only replaces that version.",
    responses={
        201: {"model": DocumentOut, "description": "Created"},
        **_WRITE_ERRORS,
        **_ONE_DOCUMENT,
    },
)
async def put_document(
    name: str,
    doc_id: DocId,
    data: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
    caller: OptionalUser,
    documents: DocumentServiceDep,
    pre: PreconditionsDep,
    team: TeamParam = None,
) -> Response:
    doc, created = await documents.put(name, doc_id, data, caller, pre, team=team)
    return _document(name, doc, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


_JSON_PATCH = "application/json-patch+json"
_PATCH_BODY = {
    "required": True,
    "content": {
        "application/merge-patch+json": {
            "schema": {"type": "object", "additionalProperties": True},
            "example": {"score": 8, "draft": None},
        },
        _JSON_PATCH: {
            "schema": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["op", "path"],
                    "properties": {
                        "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                        "path": {"type": "string", "description": "JSON Pointer into data"},
                        "from": {"type": "string", "description": "move and copy"},
                        "value": {"description": "add, replace and test"},
                    },
                },
            },
            "example": [
                {"op": "test", "path": "/score", "value": 7},
                {"op": "replace", "path": "/score", "value": 8},
            ],
        },
    },
}


@router.patch(
    "/{doc_id:doc_id}",
    response_model=DocumentOut,
    operation_id="documents_patch",
    summary="Patch a document's data: merge patch (RFC 7396) or JSON Patch (RFC 6902)",
    description="`application/merge-patch+json` (or `application/json`): keys set to null "
    "are removed, objects merge, anything else replaces. `application/json-patch+json`: "
    "an array of add/remove/replace/move/copy/test operations, pointers relative to `data`, "
    "applied all or nothing; a failed `test` answers 409 `patch_test_failed`, a path that "
    "does not exist 409 `patch_conflict` (RFC 5789: the patch conflicts with the "
    "document's state), a malformed patch 422.",
    responses={**_WRITE_ERRORS, **_ONE_DOCUMENT},
    openapi_extra={"requestBody": _PATCH_BODY},
)
async def patch_document(
    name: str,
    doc_id: DocumentPathId,
    request: Request,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    pre: PreconditionsDep,
) -> Response:
    try:
        body = await request.json()
    except (ValueError, RecursionError) as exc:
        # As FastAPI answers an undecodable body on every other route.
        raise ValidationFailed(
            "The body is not valid JSON",
            errors=[FieldError(loc=["body"], msg=f"JSON decode error: {exc}", type="json_invalid")],
        ) from None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == _JSON_PATCH:
        doc = await documents.json_patch(name, doc_id, body, caller, pre)
    elif isinstance(body, dict):
        doc = await documents.patch(name, doc_id, body, caller, pre)
    else:
        raise ValidationFailed(
            "A merge patch is a JSON object; send a list of operations as "
            "application/json-patch+json",
            errors=[FieldError(loc=["body"], msg="expected an object", type="dict_type")],
        )
    return _document(name, doc, with_location=False)


@router.post(
    "/{doc_id:doc_id}/update",
    response_model=DocumentOut,
    operation_id="documents_update",
    summary="Change a document with update operators (inc, set, push, ...)",
    description="Atomic per document: the operators apply to the current version and the "
    "result is validated against the collection's schema (422 `schema_violation`, nothing "
    "changed) before it is stored with the version bumped; a concurrent write makes the "
    "update re-apply itself to the newer version, so no increment is lost. `If-Match` "
    "applies it only to that version (412 otherwise).",
    responses={**_WRITE_ERRORS, **_ONE_DOCUMENT},
)
async def update_document(
    name: str,
    doc_id: DocumentPathId,
    body: DocumentUpdate,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    pre: PreconditionsDep,
) -> Response:
    operations = body.operations()
    doc = await documents.update(name, doc_id, operations, caller, pre)
    return _document(name, doc, with_location=False)


@router.delete(
    "/{doc_id:doc_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="documents_delete",
    summary="Delete a document",
    responses=problem_responses(401, 403, 404, 405, 412, 428),
)
async def delete_document(
    name: str,
    doc_id: DocumentPathId,
    caller: OptionalUser,
    documents: DocumentServiceDep,
    pre: PreconditionsDep,
) -> None:
    await documents.delete(name, doc_id, caller, pre)


# -- shares ---------------------------------------------------------------------------------


def _share_out(share: Share) -> ShareOut:
    return ShareOut(kind=share.kind, id=share.id, access=share.access)


@router.get(
    "/{doc_id:doc_id}/shares",
    operation_id="documents_shares_list",
    summary="Who else the document is shared with",
    description="Anyone who may read the document may list its shares.",
    responses={**_READ_ERRORS, **_ONE_DOCUMENT},
)
async def list_shares(
    name: str, doc_id: DocumentPathId, caller: OptionalUser, documents: DocumentServiceDep
) -> ShareList:
    return ShareList(items=[_share_out(s) for s in await documents.shares(name, doc_id, caller)])


@router.post(
    "/{doc_id:doc_id}/shares",
    response_model=ShareOut,
    operation_id="documents_shares_add",
    summary="Share the document with a user or a team, or change their access",
    description="By the document's owner, the owner and admins of its team, or a site "
    "admin; a team must be one of yours. Answers 201 for a new share, 200 for a changed or "
    "repeated one. Rules decide what a share grants: `@user in shared.read` reads, "
    "`@user in shared.write` writes (README: access rules).",
    responses={
        201: {"model": ShareOut, "description": "Shared"},
        **problem_responses(401, 403, 404, 409, 422),
        **_ONE_DOCUMENT,
    },
)
async def add_share(
    name: str,
    doc_id: DocumentPathId,
    body: ShareIn,
    caller: OptionalUser,
    documents: DocumentServiceDep,
) -> Response:
    kind: Literal["user", "team"] = "user" if isinstance(body, UserShareIn) else "team"
    grantee = body.user if isinstance(body, UserShareIn) else body.team
    share, new = await documents.share(name, doc_id, caller, kind, grantee, body.access)
    return JSONResponse(
        _share_out(share).model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED if new else status.HTTP_200_OK,
    )


@router.delete(
    "/{doc_id:doc_id}/shares/{kind}/{grantee}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="documents_shares_remove",
    summary="Stop sharing the document with a user or a team",
    description="By whoever may share it; anyone may remove their own share (leave).",
    responses={**problem_responses(401, 403, 404), **_ONE_DOCUMENT},
)
async def remove_share(
    name: str,
    doc_id: DocumentPathId,
    kind: Literal["users", "teams"],
    grantee: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    caller: OptionalUser,
    documents: DocumentServiceDep,
) -> None:
    await documents.unshare(name, doc_id, caller, "user" if kind == "users" else "team", grantee)

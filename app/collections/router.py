"""HTTP endpoints of /v1/collections (admin-managed; declarations readable by users)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.collections.schemas import (
    CollectionIn,
    CollectionList,
    CollectionOut,
    CollectionPatch,
    RejectedDocument,
    SchemaCheckIn,
    SchemaCheckOut,
)
from app.http.deps import AdminUser, CollectionServiceDep, CurrentUser, DocumentServiceDep
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

# Their checks across collections (relations, expiry) read what no other change writes.
_TAKES_TURNS = (
    "Changes to declarations (create, change, delete) take turns across server processes: "
    "one that waits 10 s for its turn answers 409 `write_conflict`; try again."
)

router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=StrictJSONRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="collections_create",
    summary="Declare a collection (admin)",
    description="409 `collection_exists` when the name is taken. " + _TAKES_TURNS,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_collection(
    body: CollectionIn, _: AdminUser, collections: CollectionServiceDep, response: Response
) -> CollectionOut:
    spec = await collections.create(body)
    response.headers["Location"] = f"/v1/collections/{spec.id}"
    return CollectionOut.of(spec)


@router.get(
    "",
    operation_id="collections_list",
    summary="List collections (admin)",
    responses=problem_responses(401, 403),
)
async def list_collections(_: AdminUser, collections: CollectionServiceDep) -> CollectionList:
    return CollectionList(items=[CollectionOut.of(s) for s in await collections.list_all()])


@router.get(
    "/{name}",
    operation_id="collections_get",
    summary="One collection's declaration (any signed-in user; indexes for admins)",
    description="Apps read the schema and access rules to build forms and validate input. "
    "Index declarations are operational detail: `indexes` is null unless you are an admin.",
    responses=problem_responses(401, 404),
)
async def get_collection(
    name: str, caller: CurrentUser, collections: CollectionServiceDep
) -> CollectionOut:
    out = CollectionOut.of(await collections.get(name))
    if not caller.is_admin:
        out.indexes = None
    return out


@router.patch(
    "/{name}",
    operation_id="collections_update",
    summary="Change a collection's description, schema, indexes or access (admin)",
    description="A new schema is first tried on the stored documents (as "
    "`POST /v1/collections/{name}/schema-check` does): if any would not pass it, the "
    "answer is 409 `schema_rejects_documents` naming some, unless `force` is true. It then "
    "applies to later writes; stored documents are not changed. " + _TAKES_TURNS,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_collection(
    name: str,
    body: CollectionPatch,
    _: AdminUser,
    collections: CollectionServiceDep,
    documents: DocumentServiceDep,
) -> CollectionOut:
    if "json_schema" in body.model_fields_set and body.json_schema is not None and not body.force:
        spec = await collections.get(name)
        if body.json_schema != spec.json_schema:
            await documents.refuse_rejecting_schema(spec, body.json_schema)
    return CollectionOut.of(await collections.update(name, body))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="collections_delete",
    summary="Delete a collection and all its documents (admin)",
    description="409 `reference_restricted` while another collection's schema holds a "
    "reference to it with `x-on-delete`. " + _TAKES_TURNS,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_collection(name: str, _: AdminUser, collections: CollectionServiceDep) -> None:
    await collections.delete(name)


@router.post(
    "/{name}/schema-check",
    operation_id="collections_schema_check",
    summary="Dry run: which stored documents a new schema would reject (admin)",
    description="Checks up to SCHEMA_CHECK_MAX_DOCUMENTS stored documents, in id order, "
    "against `schema` and changes nothing. An invalid schema is a 422, as in PATCH.",
    responses=problem_responses(401, 403, 404, 422),
)
async def schema_check(
    name: str,
    body: SchemaCheckIn,
    _: AdminUser,
    collections: CollectionServiceDep,
    documents: DocumentServiceDep,
) -> SchemaCheckOut:
    report = await documents.check_schema(await collections.get(name), body.json_schema)
    return SchemaCheckOut(
        scanned=report.scanned,
        rejected=report.rejected,
        complete=report.complete,
        examples=[RejectedDocument(id=i, errors=errors) for i, errors in report.examples],
    )

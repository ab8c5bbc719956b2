"""POST /v1/batch: document operations across collections in one transaction."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.documents.batch import MAX_OPERATIONS, Operation
from app.documents.core import Preconditions, envelope
from app.documents.schemas import DocId, DocumentOut, DocumentUpdate
from app.http.conditional import etag_versions
from app.http.deps import BatchServiceDep, OptionalUser
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

router = APIRouter(prefix="/v1/batch", tags=["batch"], route_class=StrictJSONRoute)


Collection = Annotated[str, Field(min_length=1, max_length=64)]
IfMatch = Annotated[
    str | None,
    Field(max_length=1024, description='The ETag the document must have, as in If-Match ("3")'),
]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: Collection


class CreateOp(_Op):
    op: Literal["create"]
    data: dict[str, Any]


class ReplaceOp(_Op):
    """Replace the document's data, or create it with this id."""

    op: Literal["replace"]
    id: DocId
    data: dict[str, Any]
    if_match: IfMatch = None


class PatchOp(_Op):
    """A merge patch (RFC 7396) of the document's data."""

    op: Literal["patch"]
    id: DocId
    patch: dict[str, Any]
    if_match: IfMatch = None


class UpdateOp(_Op):
    op: Literal["update"]
    id: DocId
    update: DocumentUpdate
    if_match: IfMatch = None


class DeleteOp(_Op):
    op: Literal["delete"]
    id: DocId
    if_match: IfMatch = None


BatchOperation = Annotated[
    CreateOp | ReplaceOp | PatchOp | UpdateOp | DeleteOp, Field(discriminator="op")
]


class BatchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "operations": [
                        {
                            "op": "update",
                            "collection": "lists",
                            "id": "todo",
                            "update": {"pull": {"items": "milk"}},
                        },
                        {
                            "op": "update",
                            "collection": "lists",
                            "id": "done",
                            "update": {"push": {"items": "milk"}},
                        },
                    ]
                }
            ]
        },
    )
    operations: Annotated[list[BatchOperation], Field(min_length=1, max_length=MAX_OPERATIONS)]


class BatchItemOut(BaseModel):
    index: int
    status: int = Field(description="What the single-document route would have answered")
    collection: str
    id: str
    document: DocumentOut | None = Field(description="The document after it (null: deleted)")


class BatchOut(BaseModel):
    results: list[BatchItemOut]


def _operation(item: CreateOp | ReplaceOp | PatchOp | UpdateOp | DeleteOp) -> Operation:
    body: Any = None
    if isinstance(item, CreateOp | ReplaceOp):
        body = item.data
    elif isinstance(item, PatchOp):
        body = item.patch
    elif isinstance(item, UpdateOp):
        body = item.update.operations()
    if_match = None if isinstance(item, CreateOp) else item.if_match
    return Operation(
        op=item.op,
        collection=item.collection,
        id=None if isinstance(item, CreateOp) else item.id,
        body=body,
        pre=Preconditions(if_match=etag_versions(if_match, weak=False)),
    )


@router.post(
    "",
    operation_id="batch_run",
    summary="Run up to 100 document operations in one transaction: all or nothing",
    description="create / replace / patch (merge) / update (operators) / delete, across "
    "collections, each checked as its own route would (access, schema, `if_match`). If "
    "one fails, none is applied and the answer is its problem, naming its index in "
    "`errors`. Needs a replica set (503 `transactions_unavailable` on a standalone mongod).",
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422),
)
async def run_batch(
    body: BatchIn,
    caller: OptionalUser,
    batch: BatchServiceDep,
) -> BatchOut:
    done = await batch.run([_operation(item) for item in body.operations], caller)
    return BatchOut(
        results=[
            BatchItemOut(
                index=d.index,
                status=d.status,
                collection=d.collection,
                id=d.id,
                document=DocumentOut.model_validate(envelope(d.collection, d.doc))
                if d.doc is not None
                else None,
            )
            for d in done
        ]
    )

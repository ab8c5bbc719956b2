"""What clients send and see of documents."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from app.clock import Timestamp
from app.errors import ErrorCode, FieldError

DOC_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DocId = Annotated[str, Field(pattern=DOC_ID_PATTERN, description="^[A-Za-z0-9_-]{1,64}$")]


class DocumentOut(BaseModel):
    id: str
    collection: str
    owner: str | None
    version: int = Field(description="Bumped by exactly 1 on every write; the ETag is its value")
    created_at: Timestamp
    updated_at: Timestamp
    data: dict[str, Any]


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filter and sort) for the next page"
    )


class DocumentCount(BaseModel):
    count: int


class BulkCreate(BaseModel):
    documents: list[Any] = Field(
        description="Each item is one document's `data` object",
        json_schema_extra={"examples": [[{"title": "first"}, {"title": "second"}]]},
    )


class BulkItemResult(BaseModel):
    index: int
    status: int = Field(description="201 when stored; otherwise the item's error status")
    id: str | None = None
    version: int | None = None
    code: ErrorCode | None = None
    detail: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class BulkResult(BaseModel):
    created: int
    failed: int
    results: list[BulkItemResult]

"""What clients send and see of documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from app.clock import Timestamp
from app.errors import ErrorCode, FieldError

# `count` and `bulk` name collection-level routes, so they are never document ids: the
# route's path convertor refuses them. The published patterns say so exactly; pydantic's
# regex engine has no look-ahead, so validation uses the plain pattern.
DOC_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NOT_RESERVED = r"(?!(?:aggregate|bulk|bulk-update|bulk-delete|count)$)"
DocId = Annotated[
    str,
    Field(
        pattern=DOC_ID_PATTERN,
        json_schema_extra={"pattern": f"^{NOT_RESERVED}[A-Za-z0-9_-]{{1,64}}$"},
        description="1 to 64 of A-Z a-z 0-9 _ -, but not count, bulk, bulk-update, bulk-delete or "
        "aggregate",
    ),
]


class DocumentOut(BaseModel):
    id: str
    collection: str
    owner: str | None
    team: str | None = Field(
        default=None, description="The team the document belongs to (set when created)"
    )
    version: int = Field(description="Bumped by exactly 1 on every write; the ETag is its value")
    created_at: Timestamp
    updated_at: Timestamp
    data: dict[str, Any]
    expanded: dict[str, ExpandedRef | list[ExpandedRef] | None] | None = Field(
        default=None,
        description="With `?expand=`: each named reference's document (a list for a list "
        "of references; null when the field is empty)",
    )


class ExpandedRef(BaseModel):
    id: str | None = Field(description="The id the reference holds (null: not an id)")
    collection: str = Field(description="The referenced collection, or users")
    document: DocumentOut | None = Field(
        description="The document, as the caller may see it (an account: its name only)"
    )
    reason: Literal["not_found", "invalid"] | None = Field(
        description="Why `document` is null: no such document the caller may read, or a "
        "value that is not an id"
    )


DocumentOut.model_rebuild()


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


class DocumentUpdate(BaseModel):
    """Update operators on `data` paths (dotted, relative to `data`; a number segment is an
    array index). One path may appear in one operator only."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [
                {"inc": {"likes": 1}, "add_to_set": {"tags": "new"}, "set": {"seen": True}},
                {"push": {"log": {"each": ["a", "b"], "slice": -100}}, "unset": ["draft"]},
            ],
        },
    )
    inc: dict[str, StrictInt | StrictFloat] | None = Field(
        default=None, min_length=1, description="Add to numbers (a missing field starts at 0)"
    )
    min: dict[str, Any] | None = Field(
        default=None, min_length=1, description="Keep the smaller value"
    )
    max: dict[str, Any] | None = Field(
        default=None, min_length=1, description="Keep the larger value"
    )
    set: dict[str, Any] | None = Field(
        default=None, min_length=1, description="Set values (objects on the way are made)"
    )
    unset: list[str] | None = Field(default=None, min_length=1, description="Remove fields")
    push: dict[str, Any] | None = Field(
        default=None,
        min_length=1,
        description="Append to arrays; `{each: [...], slice: n}` appends several and keeps "
        "the first n (or last -n)",
    )
    add_to_set: dict[str, Any] | None = Field(
        default=None,
        min_length=1,
        description="Append values not already present; `{each: [...]}` for several",
    )
    pull: dict[str, Any] | None = Field(
        default=None, min_length=1, description="Remove every element equal to the value"
    )

    def operations(self) -> dict[str, Any]:
        """The operators given, as the service takes them (app/documents/operators.py)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class BulkChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: dict[str, Any] = Field(
        default_factory=dict,
        description="The filter language of listing, as a JSON object ({} matches all)",
    )
    dry_run: bool = Field(default=False, description="Count what would change; change nothing")
    limit: int | None = Field(
        default=None,
        ge=1,
        description="At most this many documents (default and maximum: BULK_MAX_DOCUMENTS), "
        "oldest first; `more` says whether others match",
    )


class BulkUpdateIn(BulkChangeIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"filter": {"data.read": False}, "update": {"set": {"read": True}}}]
        },
    )
    update: DocumentUpdate


class BulkFailureOut(BaseModel):
    id: str
    status: int
    code: ErrorCode
    detail: str


class BulkChangeOut(BaseModel):
    matched: int = Field(description="Documents matched that you may change (up to the limit)")
    modified: int = Field(description="Documents changed (deleted, for bulk-delete)")
    more: bool = Field(description="More documents match beyond the limit")
    dry_run: bool
    failed: list[BulkFailureOut] = Field(
        default_factory=list, description="Documents the update could not apply to, and why"
    )


# -- shares ---------------------------------------------------------------------------------

ShareLevel = Literal["read", "write"]
GranteeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class UserShareIn(BaseModel):
    """Share with one user (by id)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"user": "6650c0ffee", "access": "read"}]}
    )
    user: GranteeId
    access: ShareLevel = Field(description="`write` includes `read`")


class TeamShareIn(BaseModel):
    """Share with every member of a team you belong to."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"team": "team_Q2x9c0", "access": "write"}]},
    )
    team: GranteeId
    access: ShareLevel = Field(description="`write` includes `read`")


ShareIn = UserShareIn | TeamShareIn


class ShareOut(BaseModel):
    kind: Literal["user", "team"]
    id: str
    access: ShareLevel


class ShareList(BaseModel):
    items: list[ShareOut]


# -- aggregation (POST .../documents/aggregate) ---------------------------------------------

AGGREGATE_MAX_KEYS = 3
AGGREGATE_MAX_METRICS = 10
AGGREGATE_MAX_LIMIT = 1000
FIELD_PATH_PATTERN = r"^(?:data(?:\.[^.$\x00]{1,100}){1,8}|owner|team|created_at|updated_at)$"
FieldPath = Annotated[
    str,
    Field(
        pattern=FIELD_PATH_PATTERN,
        max_length=400,
        description="`data.<path>` (dots between names), or owner, team, created_at, updated_at",
    ),
]
ResultName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="What the key or value is called in each group",
    ),
]
Bucket = Literal["hour", "day", "week", "month", "year"]


class FieldKey(BaseModel):
    """Group by a field's value (documents without it form the group `null`)."""

    model_config = ConfigDict(extra="forbid")
    name: ResultName
    field: FieldPath


class BucketKey(BaseModel):
    """Group by the date in a field, cut to an hour (2026-12-07T10), day (2026-12-07),
    ISO week (2026-W49), month (2026-12) or year (2026), in UTC. created_at and updated_at
    are dates; a `data` field must hold RFC 3339 text (others form the group `null`)."""

    model_config = ConfigDict(extra="forbid")
    name: ResultName
    field: FieldPath
    bucket: Bucket


class CountMetric(BaseModel):
    """How many documents are in the group."""

    model_config = ConfigDict(extra="forbid")
    name: ResultName
    op: Literal["count"]


class FieldMetric(BaseModel):
    """The sum, average, least or greatest value of a field in the group (sum and avg
    count numbers only; a group with none has avg null and sum 0)."""

    model_config = ConfigDict(extra="forbid")
    name: ResultName
    op: Literal["sum", "avg", "min", "max"]
    field: FieldPath


Metric = Annotated[CountMetric | FieldMetric, Field(discriminator="op")]


class AggregateSort(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: ResultName = Field(description="A key's or a metric's name")
    order: Literal["asc", "desc"] = "asc"


class AggregateIn(BaseModel):
    """Groups of the documents the caller may read that match `filter`, with values
    computed per group. No `group_by`: one group of every match."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "filter": {"data.status": "paid"},
                    "group_by": [{"name": "month", "field": "created_at", "bucket": "month"}],
                    "metrics": [
                        {"name": "orders", "op": "count"},
                        {"name": "revenue", "op": "sum", "field": "data.total"},
                    ],
                    "sort": [{"by": "month", "order": "desc"}],
                    "limit": 12,
                }
            ]
        },
    )
    filter: dict[str, Any] | None = Field(
        default=None, description="The filter language, as in lists (an object, not text)"
    )
    group_by: Annotated[list[FieldKey | BucketKey], Field(max_length=AGGREGATE_MAX_KEYS)] = []
    metrics: Annotated[list[Metric], Field(min_length=1, max_length=AGGREGATE_MAX_METRICS)]
    sort: Annotated[list[AggregateSort], Field(max_length=AGGREGATE_MAX_KEYS + 1)] = []
    limit: Annotated[int, Field(ge=1, le=AGGREGATE_MAX_LIMIT)] = 100


class AggregateGroup(BaseModel):
    key: dict[str, Any] = Field(description="Each `group_by` name and its value in this group")
    values: dict[str, Any] = Field(description="Each metric's name and its value")


class AggregateOut(BaseModel):
    groups: list[AggregateGroup]
    more: bool = Field(description="True when there are more groups than `limit`")

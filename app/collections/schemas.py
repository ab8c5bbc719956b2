"""What clients send and see of collection declarations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool

from app.clock import Timestamp
from app.collections.models import (
    Access,
    CollectionSpec,
    IndexSpec,
    ReadAccess,
    SearchSpec,
    WriteAccess,
)
from app.documents.rules import MAX_RULE_LENGTH
from app.errors import FieldError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
CollectionName = Annotated[str, Field(pattern=NAME_PATTERN, description="^[a-z][a-z0-9_]{0,62}$")]
MAX_INDEXES = 16
MAX_INDEX_FIELDS = 8
MAX_SEARCH_FIELDS = 10
SearchLanguage = Literal[
    "none", "english", "french", "german", "spanish", "italian", "portuguese", "dutch"
]

_EXAMPLE: dict[str, Any] = {
    "name": "notes",
    "description": "Shared notes",
    "schema": {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {"type": "string", "maxLength": 200},
            "score": {"type": "integer"},
        },
    },
    "indexes": [
        {"name": "by_score", "fields": ["-data.score", "created_at"], "unique": False},
        {"name": "expire", "fields": ["created_at"], "expire_after_seconds": 86400},
    ],
    "access": {"read": "owner", "write": "owner"},
}


INDEX_PATH_PATTERN = r"^-?(id|owner|version|created_at|updated_at|data(\.[^.$\x00][^.\x00]*)+)$"


_TTL_FIELDS: list[JsonValue] = ["created_at", "updated_at", "-created_at", "-updated_at"]


class IndexIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # An expiring index has exactly one field, a timestamp (checked by the service).
        json_schema_extra={
            "if": {
                "properties": {"expire_after_seconds": {"type": "integer"}},
                "required": ["expire_after_seconds"],
            },
            "then": {"properties": {"fields": {"maxItems": 1, "items": {"enum": _TTL_FIELDS}}}},
        },
    )
    name: CollectionName
    fields: Annotated[
        list[
            Annotated[
                str,
                Field(
                    min_length=1,
                    max_length=300,
                    # Published for clients and generators; the service checks it and
                    # says which path is wrong (app/collections/service.py).
                    json_schema_extra={"pattern": INDEX_PATH_PATTERN},
                ),
            ]
        ],
        Field(min_length=1, max_length=MAX_INDEX_FIELDS, json_schema_extra={"uniqueItems": True}),
    ] = Field(description="Paths as in responses (`data.x`, `created_at`...), `-` for descending")
    unique: bool = False
    expire_after_seconds: Annotated[int, Field(ge=0, le=10 * 365 * 86400, strict=True)] | None = (
        Field(default=None, description="TTL; only on a single `created_at` or `updated_at` field")
    )


RuleText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_RULE_LENGTH,
        description="A rule expression (README: access rules), e.g. "
        "`owner == @user || @user in shared.read || team in @user.teams`",
    ),
]
MAX_FIELD_RULES = 32
FIELD_RULE_PATH = r"^data(\.[A-Za-z0-9_-]{1,64}){1,8}$"


class ActionRulesIn(BaseModel):
    """Rule expressions per action; an action without one follows the presets (`list`
    follows `read`). Site admins pass every rule."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "read": "owner == @user || @user in shared.read || team in @user.teams",
                    "update": "owner == @user || @user in shared.write",
                }
            ]
        },
    )
    list: RuleText | None = None
    read: RuleText | None = None
    create: RuleText | None = None
    update: RuleText | None = None
    delete: RuleText | None = None


class FieldRuleIn(BaseModel):
    """A part of `data` only some callers read (others never see it: responses, events)
    or write (others get 403 field_forbidden)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"path": "data.internal_notes", "read": '@team.role in ["owner", "admin"]'}
            ]
        },
    )
    path: Annotated[str, Field(pattern=FIELD_RULE_PATH, description="data.<field>[.<field>...]")]
    read: RuleText | None = None
    write: RuleText | None = None


class AccessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read: ReadAccess = ReadAccess.OWNER
    write: WriteAccess = WriteAccess.OWNER
    rules: ActionRulesIn = Field(default_factory=ActionRulesIn)
    fields: Annotated[list[FieldRuleIn], Field(max_length=MAX_FIELD_RULES)] = Field(
        default_factory=list
    )


class SearchIn(BaseModel):
    """Full-text search: `GET .../documents?search=` matches these fields' words."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"fields": ["data.title", "data.body"]}]},
    )
    fields: Annotated[
        list[Annotated[str, Field(pattern=FIELD_RULE_PATH, description="data.<field>[...]")]],
        Field(
            min_length=1,
            max_length=MAX_SEARCH_FIELDS,
            json_schema_extra={"uniqueItems": True},
            description="Text fields (strings, or lists and objects of them); the first "
            "ranks higher",
        ),
    ]
    language: SearchLanguage = Field(
        default="english",
        description="Words are reduced to their stems in this language (none: as written)",
    )


_HISTORY = (
    "Keep every document's old versions (GET .../documents/{id}/versions, restore one) and "
    "keep deleted documents, with their files, in a trash (GET .../trash, restore) for "
    "HISTORY_RETENTION_DAYS and TRASH_RETENTION_DAYS"
)


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})
    name: CollectionName
    description: Annotated[str, Field(max_length=1000)] = ""
    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON Schema (draft 2020-12) for `data`"
    )
    indexes: Annotated[list[IndexIn], Field(max_length=MAX_INDEXES)] = Field(default_factory=list)
    access: AccessIn = Field(default_factory=AccessIn)
    search: SearchIn | None = None
    history: StrictBool = Field(default=False, description=_HISTORY)


class CollectionPatch(BaseModel):
    """Fields to change; omitted fields stay. `schema: null` removes the schema."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"access": {"read": "public", "write": "admin"}}]},
    )
    description: Annotated[str, Field(max_length=1000)] | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    indexes: Annotated[list[IndexIn], Field(max_length=MAX_INDEXES)] | None = None
    access: AccessIn | None = None
    search: SearchIn | None = Field(
        default=None,
        description="null turns search off. Documents stored before a change are indexed "
        "by `make reindex` (scripts.reindex); later writes index themselves",
    )
    history: StrictBool | None = Field(default=None, description=_HISTORY)
    force: bool = Field(
        default=False,
        description="Change the schema even though stored documents would not pass it "
        "(they stay as they are, and cannot be saved again unchanged); without it such a "
        "change is 409 schema_rejects_documents",
    )


class CollectionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str
    description: str
    json_schema: dict[str, Any] | None = Field(alias="schema")
    indexes: list[IndexSpec] | None = Field(description="Null unless the caller is an admin")
    access: Access
    search: SearchSpec | None = None
    history: bool = False
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, spec: CollectionSpec) -> CollectionOut:
        return cls(
            name=spec.id,
            description=spec.description,
            json_schema=spec.json_schema,
            indexes=spec.indexes,
            access=spec.access,
            search=spec.search,
            history=spec.history,
            created_at=spec.created_at,
            updated_at=spec.updated_at,
        )


class CollectionList(BaseModel):
    items: list[CollectionOut]


class SchemaCheckIn(BaseModel):
    """A candidate schema to try on the stored documents; nothing changes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"schema": {"type": "object", "required": ["title"]}}],
        },
    )
    json_schema: dict[str, Any] = Field(alias="schema")


class RejectedDocument(BaseModel):
    id: str
    errors: list[FieldError] = Field(description="Where the document breaks the schema")


class SchemaCheckOut(BaseModel):
    scanned: int = Field(description="Stored documents checked, in id order")
    rejected: int = Field(description="Of those, how many the schema would refuse")
    complete: bool = Field(
        description="False when the check stopped early (SCHEMA_CHECK_MAX_DOCUMENTS or "
        "QUERY_MAX_TIME_MS): the counts are a lower bound"
    )
    examples: list[RejectedDocument] = Field(description="Up to 20 rejected documents")

"""Persistence model of a collection's declaration."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document
from pydantic import BaseModel, Field


class ReadAccess(StrEnum):
    PUBLIC = "public"  # no token needed
    AUTHENTICATED = "authenticated"  # any signed-in user reads every document
    OWNER = "owner"  # each user reads their own documents; admins read all


class WriteAccess(StrEnum):
    OWNER = "owner"  # any signed-in user creates; only the owner or an admin changes
    AUTHENTICATED = "authenticated"  # any signed-in user creates and changes any document
    ADMIN = "admin"  # only admins write


class ActionRules(BaseModel):
    """Rule expressions (app/documents/rules.py) per action; an action without one
    follows the presets (`list` follows `read`)."""

    list: str | None = None
    read: str | None = None
    create: str | None = None
    update: str | None = None
    delete: str | None = None


class FieldRule(BaseModel):
    """A part of `data` only some callers may read or write."""

    path: str  # data.<path>
    read: str | None = None
    write: str | None = None


class Access(BaseModel):
    read: ReadAccess = ReadAccess.OWNER
    write: WriteAccess = WriteAccess.OWNER
    rules: ActionRules = Field(default_factory=ActionRules)
    fields: list[FieldRule] = Field(default_factory=list)


class IndexSpec(BaseModel):
    name: str
    fields: list[str]
    unique: bool = False
    expire_after_seconds: int | None = None


class SearchSpec(BaseModel):
    """Full-text search over these `data` fields (the first ranks higher), in a language."""

    fields: list[str]
    language: str = "english"


class CollectionSpec(Document):
    """One Docstore collection. Its documents live in the MongoDB collection `storage_name`."""

    id: str  # type: ignore[assignment]  # the collection's name
    description: str = ""
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    indexes: list[IndexSpec] = Field(default_factory=list)
    access: Access = Field(default_factory=Access)
    search: SearchSpec | None = None
    # Keep old versions (GET .../versions) and a trash of deleted documents.
    history: bool = False
    created_at: datetime
    updated_at: datetime

    model_config = {"populate_by_name": True}

    @property
    def name(self) -> str:
        return self.id

    @property
    def storage_name(self) -> str:
        return storage_name(self.id)

    class Settings:
        name = "collections"


# A prefix keeps user collections apart from internal ones (users, sessions, ...).
STORAGE_PREFIX = "docs_"


def storage_name(collection: str) -> str:
    return STORAGE_PREFIX + collection

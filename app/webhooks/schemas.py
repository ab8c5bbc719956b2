"""The webhook API's shapes: typed event names and delivery states for generated clients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.clock import Timestamp
from app.collections.schemas import CollectionName

EventType = Literal[
    "document.created",
    "document.updated",
    "document.deleted",
    "user.created",
    "user.updated",
    "user.deleted",
]
DeliveryStatus = Literal["pending", "delivered", "failed"]
Url = Annotated[
    str, Field(min_length=8, max_length=2000, examples=["https://example.com/hooks/docstore"])
]
Description = Annotated[str, Field(max_length=500)]
Events = Annotated[list[EventType], Field(min_length=1, max_length=6)]
Collections = Annotated[
    list[CollectionName],
    Field(
        max_length=50,
        description="Document events of these collections only; empty: every collection",
    ),
]

_EXAMPLE: dict[str, Any] = {
    "url": "https://example.com/hooks/docstore",
    "events": ["document.created", "document.updated"],
    "collections": ["orders"],
}


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})
    url: Url
    description: Description = ""
    events: Events
    collections: Collections = Field(default_factory=list)
    enabled: StrictBool = True


class WebhookPatch(BaseModel):
    """Fields to change; omitted fields stay."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})
    url: Url | None = None
    description: Description | None = None
    events: Events | None = None
    collections: Collections | None = None
    enabled: StrictBool | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    description: str
    events: list[EventType]
    collections: list[str]
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp
    previous_secret_until: Timestamp | None = Field(
        description="Until then the secret before the last rotation signs too"
    )
    held_until: Timestamp | None = Field(
        description="Set while its messages are held back: the last sends to its endpoint "
        "went unanswered (time limit reached). The first due after then tries it again; an "
        "answer lifts the hold"
    )

    @classmethod
    def of(cls, raw: dict[str, Any]) -> WebhookOut:
        return cls(
            id=str(raw["_id"]),
            url=raw["url"],
            description=raw.get("description", ""),
            events=raw.get("events", []),
            collections=raw.get("collections", []),
            enabled=raw.get("enabled", False),
            created_at=raw["created_at"],
            updated_at=raw["updated_at"],
            previous_secret_until=raw.get("previous_until"),
            held_until=raw.get("held_until"),
        )


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (whsec_...), shown only now: verify each request's "
        "webhook-signature with it (Standard Webhooks)"
    )


class WebhookList(BaseModel):
    items: list[WebhookOut]


class SecretOut(BaseModel):
    secret: str = Field(description="The new signing secret, shown only now")
    previous_secret_until: Timestamp = Field(
        description="Until then requests are signed with the previous secret too"
    )


class AttemptOut(BaseModel):
    at: Timestamp
    status: int | None = Field(description="The HTTP status answered; null: no answer")
    latency_ms: float
    error: str | None
    response: str | None = Field(description="The first kilobyte of the answer")


class DeliveryOut(BaseModel):
    id: str = Field(description="Sent as webhook-id with a msg_ prefix; the same on every retry")
    webhook_id: str
    type: EventType
    status: DeliveryStatus
    attempts: int
    created_at: Timestamp
    next_attempt_at: Timestamp | None
    last_error: str | None
    log: list[AttemptOut] = Field(description="The latest attempts, oldest first")

    @classmethod
    def of(cls, raw: dict[str, Any]) -> DeliveryOut:
        pending = raw["status"] == "pending"
        due: datetime | None = raw.get("due_at") if pending else None
        return cls(
            id=str(raw["_id"]),
            webhook_id=str(raw["webhook"]),
            type=raw["type"],
            status=raw["status"],
            attempts=raw.get("attempts", 0),
            created_at=raw["created_at"],
            next_attempt_at=due,
            last_error=raw.get("last_error"),
            log=[AttemptOut(**a) for a in raw.get("log", [])],
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")

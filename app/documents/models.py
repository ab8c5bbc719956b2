"""The stored shape of a document, shared by every Docstore collection.

Documents of user collections are not Beanie documents: each Docstore collection is its
own MongoDB collection, created at run time, so a plain model maps the stored shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(slots=True)
class StoredDocument:
    id: str
    owner: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    data: dict[str, Any]
    # The team the document belongs to (set at creation), and who it is shared with:
    # user and team ids; a writer is a reader too (so `@user in shared.read` covers both).
    team: str | None = None
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    # Ids of the last writes applied (WRITES_KEPT): a write whose answer was lost, and
    # that the driver retried, finds its own id here instead of applying itself twice.
    writes: tuple[int, ...] = ()

    def to_mongo(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "_id": self.id,
            "owner": self.owner,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "data": self.data,
        }
        if self.team is not None:
            raw["team"] = self.team
        if self.readers:
            raw["shared"] = {"read": list(self.readers), "write": list(self.writers)}
        if self.writes:
            raw["writes"] = list(self.writes)
        return raw

    @classmethod
    def from_mongo(cls, raw: dict[str, Any]) -> StoredDocument:
        shared = raw.get("shared") or {}
        created, updated = raw["created_at"], raw["updated_at"]
        if created.tzinfo is None:  # a page's row (repository.find_page): UTC
            created, updated = created.replace(tzinfo=UTC), updated.replace(tzinfo=UTC)
        return cls(
            id=raw["_id"],
            owner=raw.get("owner"),
            version=raw["version"],
            created_at=created,
            updated_at=updated,
            data=raw.get("data", {}),
            team=raw.get("team"),
            readers=tuple(shared.get("read", ())),
            writers=tuple(shared.get("write", ())),
            writes=tuple(raw.get("writes", ())),
        )

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

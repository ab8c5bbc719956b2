"""The export directory's layout and the shape of its lines.

users.ndjson        one account a line (user_line; read back as UserLine)
collections.json    the collection declarations, as seed records (declaration)
NAME.ndjson         one document a line, per collection (to_line; read back as Line)
files.ndjson        one file a line (manifest_line): collection, document, name,
                    content_type, sha256, size, created_at
files/<sha256>      the blobs, each content once, named by its hash (so no file or
                    document name ever becomes a path)
_teams.ndjson       one team a line with its members (team_line; read back as TeamLine);
                    pending invitations are not exported (like sessions)
_history.ndjson     one kept version a line, of collections with history (history_line;
                    read back as HistoryLine)
_trash.ndjson       one trashed document a line (trash_line; read back as TrashLine);
                    their files are in files.ndjson with the rest
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from beanie import PydanticObjectId
from bson import ObjectId
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from app.accounts.auth_schemas import Email, Name
from app.accounts.models import Role, User
from app.backup import BackupError
from app.clock import rfc3339
from app.collections.models import CollectionSpec
from app.documents.models import StoredDocument
from app.documents.schemas import DocId
from app.files.store import StoredFile
from app.teams.repository import Member, Team

COLLECTIONS_FILE = "collections.json"
# "users" is a reserved collection name, so no collection's file can clash with this one.
USERS_FILE = "users.ndjson"
MANIFEST = "files.ndjson"
# Collection names start with a letter, so no collection's file can clash with this one.
TEAMS_FILE = "_teams.ndjson"
HISTORY_FILE = "_history.ndjson"
TRASH_FILE = "_trash.ndjson"
BLOBS = "files"
SHA256 = re.compile(r"[0-9a-f]{64}")  # a blob name, never a path


def _compact(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"


def to_line(doc: StoredDocument) -> str:
    return _compact(line_body(doc))


def line_body(doc: StoredDocument) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": doc.id,
        "owner": doc.owner,
        "version": doc.version,
        "created_at": rfc3339(doc.created_at),
        "updated_at": rfc3339(doc.updated_at),
        "data": doc.data,
    }
    # Teams and shares (issue 21), only where set: older exports read the same.
    if doc.team is not None:
        body["team"] = doc.team
    if doc.readers:
        body["shared"] = {"read": list(doc.readers), "write": list(doc.writers)}
    return body


def history_line(raw: dict[str, Any]) -> str:
    """A kept version (a doc_versions record)."""
    return _compact(
        {
            "collection": raw["c"],
            "replaced_at": rfc3339(raw["replaced_at"]),
            "deleted": bool(raw.get("deleted")),
            "document": line_body(StoredDocument.from_mongo(raw["doc"])),
        }
    )


def trash_line(raw: dict[str, Any]) -> str:
    """A trashed document (a doc_trash record)."""
    return _compact(
        {
            "collection": raw["c"],
            "deleted_at": rfc3339(raw["deleted_at"]),
            "purge_at": rfc3339(raw["purge_at"]),
            "document": line_body(StoredDocument.from_mongo(raw["doc"])),
        }
    )


def identity_entry(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider": raw["provider"],
        "subject": raw["subject"],
        "email": raw.get("email"),
        "email_verified": bool(raw.get("email_verified")),
        "created_at": rfc3339(raw["created_at"]),
    }


def passkey_entry(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "credential_id": raw["credential_id"],
        "public_key": base64.urlsafe_b64encode(raw["public_key"]).decode(),
        "sign_count": raw["sign_count"],
        "transports": raw.get("transports", []),
        "backed_up": bool(raw.get("backed_up")),
        "name": raw["name"],
        "created_at": rfc3339(raw["created_at"]),
    }


def user_line(
    user: User,
    identities: list[dict[str, Any]] | None = None,
    passkeys: list[dict[str, Any]] | None = None,
) -> str:
    body: dict[str, Any] = {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role.value,
        "disabled": user.disabled,
        "email_verified": user.email_verified,
    }
    body |= {
        "created_at": rfc3339(user.created_at),
        "updated_at": rfc3339(user.updated_at),
        "password_hash": user.password_hash,
    }
    # A second factor (issue 22), only where on: a restore must not switch it off. The
    # secret stays sealed: it opens only under the same JWT_SECRET.
    if user.totp_secret is not None:
        body |= {
            "totp_secret": user.totp_secret,
            "totp_last_step": user.totp_last_step,
            "recovery_code_hashes": user.recovery_code_hashes,
        }
    # Other ways in (issue 22): linked providers and passkeys, so an account without a
    # password can still sign in after a restore.
    if identities:
        body["identities"] = [identity_entry(raw) for raw in identities]
    if passkeys:
        body["passkeys"] = [passkey_entry(raw) for raw in passkeys]
    return _compact(body)


def declaration(spec: CollectionSpec) -> dict[str, Any]:
    """A collection as a seed record, so `scripts.seed` or `scripts.restore --all` recreate it."""
    return {
        "kind": "collection",
        "name": spec.id,
        "description": spec.description,
        "schema": spec.json_schema,
        "indexes": [i.model_dump() for i in spec.indexes],
        "access": spec.access.model_dump(mode="json"),
        "search": spec.search.model_dump() if spec.search is not None else None,
        "history": spec.history,
    }


def read_declarations(path: Path) -> list[Any]:
    """collections.json: a list of seed records (each checked when it is applied)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(loaded, list):
        raise BackupError(f"{path}: expected a list of collection declarations")
    return loaded


def manifest_line(
    collection: str, document: str, stored: StoredFile, *, trashed: bool = False
) -> str:
    body: dict[str, Any] = {
        "collection": collection,
        "document": document,
        "name": stored.name,
        "content_type": stored.content_type,
        "sha256": stored.sha256,
        "size": stored.size,
        "created_at": rfc3339(stored.created_at),
    }
    if trashed:  # a file of a document in the trash (set aside until it is restored)
        body["trashed"] = True
    return _compact(body)


def manifest_time(value: str) -> datetime:
    """An RFC 3339 time with its zone (a manifest's created_at)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"created_at {value!r} has no time zone")
    return moment


def millis(value: datetime) -> datetime:
    """`value` cut to the millisecond, as MongoDB stores it."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class Line(BaseModel):
    """One document of NAME.ndjson."""

    model_config = ConfigDict(extra="ignore")
    id: DocId
    owner: str | None
    version: int = Field(ge=1)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    data: dict[str, Any]
    team: str | None = Field(default=None, max_length=64)
    shared: SharedLine | None = None

    def stored(self) -> StoredDocument:
        return StoredDocument(
            id=self.id,
            owner=self.owner,
            version=self.version,
            created_at=millis(self.created_at),
            updated_at=millis(self.updated_at),
            data=self.data,
            team=self.team,
            readers=tuple(self.shared.read) if self.shared else (),
            writers=tuple(self.shared.write) if self.shared else (),
        )


class HistoryLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    replaced_at: AwareDatetime
    deleted: bool = False
    document: Line

    def record(self) -> dict[str, Any]:
        doc = self.document.stored().to_mongo()
        return {
            "c": self.collection,
            "d": doc["_id"],
            "born": doc["created_at"],
            "v": doc["version"],
            "doc": doc,
            "replaced_at": self.replaced_at,
            "deleted": self.deleted,
        }


class TrashLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    deleted_at: AwareDatetime
    purge_at: AwareDatetime
    document: Line

    def record(self) -> dict[str, Any]:
        doc = self.document.stored().to_mongo()
        return {
            "c": self.collection,
            "d": doc["_id"],
            "doc": doc,
            "deleted_at": self.deleted_at,
            "purge_at": self.purge_at,
        }


class SharedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=1000)
    write: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=1000)


class IdentityEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    provider: str = Field(min_length=1, max_length=32)
    subject: str = Field(min_length=1, max_length=500)
    email: str | None = Field(default=None, max_length=320)
    email_verified: bool = False
    created_at: AwareDatetime

    def raw(self, user_id: str) -> dict[str, Any]:
        return {
            "_id": ObjectId(),
            "provider": self.provider,
            "subject": self.subject,
            "user_id": user_id,
            "email": self.email,
            "email_verified": self.email_verified,
            "created_at": millis(self.created_at),
            "last_used_at": millis(self.created_at),
        }


class PasskeyEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    credential_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,1400}$")
    public_key: str = Field(max_length=4000)
    sign_count: int = Field(ge=0)
    transports: list[Annotated[str, Field(max_length=30)]] = Field(
        default_factory=list, max_length=10
    )
    backed_up: bool = False
    name: str = Field(min_length=1, max_length=100)
    created_at: AwareDatetime

    def raw(self, user_id: str) -> dict[str, Any]:
        return {
            "_id": ObjectId(),
            "user_id": user_id,
            "credential_id": self.credential_id,
            "public_key": base64.urlsafe_b64decode(self.public_key.encode()),
            "sign_count": self.sign_count,
            "transports": self.transports,
            "backed_up": self.backed_up,
            "name": self.name,
            "created_at": millis(self.created_at),
            "last_used_at": None,
        }


class UserLine(BaseModel):
    """One account of users.ndjson. The email is normalised as the API does it."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=r"^[0-9a-fA-F]{24}$")
    email: Email
    name: Name
    role: Role = Role.USER
    disabled: bool = False
    email_verified: bool | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    # None: an account that signs in with a provider, a passkey or a mailed link only.
    password_hash: str | None = None
    totp_secret: str | None = Field(default=None, max_length=500)
    totp_last_step: int = Field(default=0, ge=0)
    recovery_code_hashes: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list, max_length=100
    )
    identities: list[IdentityEntry] = Field(default_factory=list, max_length=100)
    passkeys: list[PasskeyEntry] = Field(default_factory=list, max_length=100)

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("$argon2"):
            raise ValueError("must be an argon2 hash as scripts.export writes it, not a password")
        return value

    def user(self) -> User:
        fields: dict[str, Any] = {
            "id": PydanticObjectId(self.id),
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "password_hash": self.password_hash,
            "created_at": millis(self.created_at),
            "updated_at": millis(self.updated_at or self.created_at),
        }
        if self.email_verified is not None:
            fields["email_verified"] = self.email_verified
        if self.totp_secret is not None:
            fields |= {
                "totp_secret": self.totp_secret,
                "totp_last_step": self.totp_last_step,
                "recovery_code_hashes": self.recovery_code_hashes,
            }
        return User(**fields)


def team_line(team: Team, members: list[Member]) -> str:
    return _compact(
        {
            "id": team.id,
            "name": team.name,
            "owner_id": team.owner_id,
            "created_at": rfc3339(team.created_at),
            "updated_at": rfc3339(team.updated_at),
            "members": [
                {"user_id": m.user_id, "role": m.role, "joined_at": rfc3339(m.joined_at)}
                for m in members
            ],
        }
    )


class MemberLine(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str = Field(min_length=1, max_length=64)
    role: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    joined_at: AwareDatetime


class TeamLine(BaseModel):
    """One team of _teams.ndjson, with its members."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=r"^team_[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=100)
    owner_id: str = Field(min_length=1, max_length=64)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    members: list[MemberLine] = Field(max_length=100_000)

    def team(self) -> tuple[Team, list[Member]]:
        team = Team(
            id=self.id,
            name=self.name,
            owner_id=self.owner_id,
            created_at=millis(self.created_at),
            updated_at=millis(self.updated_at),
        )
        members = [Member(self.id, m.user_id, m.role, millis(m.joined_at)) for m in self.members]
        return team, members

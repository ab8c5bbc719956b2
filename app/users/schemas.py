"""What clients see of user accounts, and what they may send."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.auth.schemas import Email, Name, NewPassword, Password
from app.clock import Timestamp
from app.users.models import Role, User


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    disabled: bool
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=str(user.id),
            email=user.email,
            name=user.name,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class MeUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Ada L."},
                {"email": "ada@example.org", "current_password": "correct horse battery"},
            ]
        },
    )
    name: Name | None = None
    email: Email | None = None
    current_password: Password | None = Field(
        default=None, description="Required to change the email"
    )


class AccountDeletion(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"current_password": "correct horse battery"}]},
    )
    current_password: Password


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"current_password": "correct horse battery", "new_password": "a new passphrase"}
            ]
        },
    )
    current_password: Password
    new_password: NewPassword


class UserAdminUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"role": "admin", "disabled": False}]}
    )
    name: Name | None = None
    role: Role | None = None
    disabled: bool | None = None


PageLimit = Annotated[int, Field(ge=1, le=100, description="Page size, 1 to 100")]

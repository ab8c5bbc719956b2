"""What clients see of teams, and what they may send."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.accounts.auth_schemas import Email
from app.clock import Timestamp
from app.teams.repository import Invitation
from app.teams.service import Membership, MemberView

# At least one visible character: the contract says so (pattern), so a blank name is
# invalid by schema too, not only after the whitespace is stripped.
TeamName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"\S")
]
# owner, admin, member, or an app's own role name (rules match it with @team.role).
RoleName = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="admin, member, or a role name of your own (lower case, at most 32)",
        examples=["member"],
    ),
]


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: TeamName


class TeamOut(BaseModel):
    id: str
    name: str
    owner_id: str
    role: str = Field(description="The caller's role in the team")
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, membership: Membership) -> TeamOut:
        team = membership.team
        return cls(
            id=team.id,
            name=team.name,
            owner_id=team.owner_id,
            role=membership.role,
            created_at=team.created_at,
            updated_at=team.updated_at,
        )


class TeamList(BaseModel):
    items: list[TeamOut]


class MemberOut(BaseModel):
    user_id: str
    name: str
    email: str | None = Field(description="Shown to the team's owner and admins only")
    role: str
    joined_at: Timestamp

    @classmethod
    def of(cls, view: MemberView) -> MemberOut:
        return cls(
            user_id=view.member.user_id,
            name=view.name,
            email=view.email,
            role=view.member.role,
            joined_at=view.member.joined_at,
        )


class MemberList(BaseModel):
    items: list[MemberOut]


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64, description="A member of the team")


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    role: RoleName = "member"


class InvitationOut(BaseModel):
    id: str
    email: str
    role: str
    created_at: Timestamp
    expires_at: Timestamp

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationOut:
        return cls(
            id=invitation.id,
            email=invitation.email,
            role=invitation.role,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
        )


class InvitationList(BaseModel):
    items: list[InvitationOut]


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200, description="From the invitation mail")

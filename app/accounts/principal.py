"""Who is calling: what every authorization decision needs to know about a caller."""

from __future__ import annotations

from dataclasses import dataclass

from app.accounts.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """What a request needs to know about its caller, read with a narrow projection."""

    id: str
    role: Role
    disabled: bool
    token_version: int
    # Per request (the cached Principal has neither): the session of the access token,
    # or the API key the request came with.
    session_id: str | None = None
    api_key_id: str | None = None
    # False for an admin whose sign-in lacked the second factor ADMIN_MFA_REQUIRED asks
    # for: such a caller acts as a plain user.
    elevated: bool = True

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN and self.elevated

"""Persistence models of accounts: users, refresh sessions, rate-limit counters and MFA
challenges."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import pymongo
from beanie import Document
from bson import ObjectId
from pydantic import Field
from pymongo import IndexModel


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Document):
    email: str
    name: str
    # None: the account signs in another way only (a provider, a passkey, a mailed link).
    password_hash: str | None = None
    role: Role = Role.USER
    disabled: bool = False
    # Confirmed by following the verification mail; a new email starts unverified.
    email_verified: bool = False
    # Bumped by logout-all, password change, disabling and role changes: access
    # tokens carry the version they were issued at and die when it moves on.
    token_version: int = 0
    # Second factor (app/accounts/mfa.py): the TOTP secret, AES-GCM encrypted; one being
    # enrolled until its first code confirms it; the last time step a code was accepted
    # for (a code works once); SHA-256 of the unused recovery codes.
    totp_secret: str | None = None
    totp_pending: str | None = None
    totp_last_step: int = 0
    recovery_code_hashes: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "users"
        indexes = [
            IndexModel([("email", pymongo.ASCENDING)], name="email_unique", unique=True),
        ]


class Session(Document):
    """One signed-in device: a refresh-token family.

    Only hashes of refresh tokens are stored. `used_hashes` remembers rotated-out tokens
    so that presenting one again is recognised as theft and revokes the session.
    """

    user_id: ObjectId
    token_hash: str
    used_hashes: list[str] = Field(default_factory=list)
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    # The device, as last seen signing in or refreshing (for the sessions list).
    user_agent: str | None = None
    address: str | None = None
    # How it signed in (the sessions list): "password" or "magic_link", with "+totp" or
    # "+recovery_code" after a second factor.
    method: str = "password"

    model_config = {"arbitrary_types_allowed": True}

    class Settings:
        name = "sessions"
        indexes = [
            IndexModel([("user_id", pymongo.ASCENDING)], name="by_user"),
            # MongoDB's TTL monitor deletes sessions once they expire.
            IndexModel([("expires_at", pymongo.ASCENDING)], name="expire", expireAfterSeconds=0),
        ]


class RateLimitCounter(Document):
    """Attempts for one (action, client) pair in one fixed window; shared by all processes."""

    id: str  # type: ignore[assignment]  # "<action>:<key>:<window start>"
    hits: int
    expires_at: datetime

    class Settings:
        name = "rate_limits"
        indexes = [
            IndexModel([("expires_at", pymongo.ASCENDING)], name="expire", expireAfterSeconds=0),
        ]


class MfaChallenge(Document):
    """A password accepted for an account with a second factor: the short-lived token
    that `POST /v1/auth/mfa/verify` redeems with a code (only its SHA-256 is stored)."""

    id: str  # type: ignore[assignment]  # sha256 of the token
    user_id: ObjectId
    # The account's token version when the password was accepted: a new password or
    # signing out everywhere since then ends the challenge too.
    token_version: int = 0
    first_factor: str = "password"  # or "magic_link": the session's method says which
    attempts: int = 0
    user_agent: str | None = None
    address: str | None = None
    expires_at: datetime

    model_config = {"arbitrary_types_allowed": True}

    class Settings:
        name = "mfa_challenges"
        indexes = [
            IndexModel([("expires_at", pymongo.ASCENDING)], name="expire", expireAfterSeconds=0),
        ]

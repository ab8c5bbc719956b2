"""Persistence model of a user account."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import pymongo
from beanie import Document
from pymongo import IndexModel


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Document):
    email: str
    name: str
    password_hash: str
    role: Role = Role.USER
    disabled: bool = False
    # Confirmed by following the verification mail; a new email starts unverified.
    email_verified: bool = False
    # Bumped by logout-all, password change, disabling and role changes: access
    # tokens carry the version they were issued at and die when it moves on.
    token_version: int = 0
    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "users"
        indexes = [
            IndexModel([("email", pymongo.ASCENDING)], name="email_unique", unique=True),
        ]

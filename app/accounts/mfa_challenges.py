"""Sign-in challenges: a password accepted for an account with a second factor gives a
short-lived token instead of a session; `POST /v1/auth/mfa/verify` redeems it once, with
a code. Only the token's SHA-256 is stored; a TTL index removes expired ones, and a
challenge dies after `MFA_MAX_ATTEMPTS` wrong codes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pymongo import ReturnDocument

from app.accounts.models import MfaChallenge, User
from app.db.client import Db


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class MfaChallenges:
    def __init__(self, db: Db, *, ttl_seconds: int, max_attempts: int) -> None:
        self.collection = db[MfaChallenge.Settings.name]
        self.ttl = timedelta(seconds=ttl_seconds)
        self.max_attempts = max_attempts

    async def create(
        self,
        user: User,
        *,
        address: str | None,
        user_agent: str | None,
        first_factor: str,
        now: datetime,
    ) -> str:
        token = "mfa_" + secrets.token_urlsafe(32)
        challenge = MfaChallenge(
            id=_digest(token),
            user_id=user.id,
            token_version=user.token_version,
            first_factor=first_factor,
            address=address,
            user_agent=user_agent,
            expires_at=now + self.ttl,
        )
        await self.collection.insert_one(challenge.model_dump(by_alias=True))
        return token

    async def attempt(self, token: str, *, now: datetime) -> MfaChallenge | None:
        """The live challenge `token` names, with one more attempt counted, atomically:
        however many requests race, at most `max_attempts` codes are ever judged. None:
        unknown, expired (the TTL index removes those lazily) or out of attempts."""
        raw = await self.collection.find_one_and_update(
            {
                "_id": _digest(token),
                "expires_at": {"$gt": now},
                "attempts": {"$lt": self.max_attempts},
            },
            {"$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return MfaChallenge.model_validate(raw) if raw is not None else None

    async def peek(self, token: str, *, now: datetime) -> MfaChallenge | None:
        """The live challenge `token` names, attempts untouched (to prepare a passkey)."""
        raw = await self.collection.find_one(
            {
                "_id": _digest(token),
                "expires_at": {"$gt": now},
                "attempts": {"$lt": self.max_attempts},
            }
        )
        return MfaChallenge.model_validate(raw) if raw is not None else None

    async def failed(self, challenge: MfaChallenge) -> int:
        """After a wrong code: the attempts left (0: the challenge is gone)."""
        left = self.max_attempts - challenge.attempts
        if left <= 0:
            await self.collection.delete_one({"_id": challenge.id})
        return max(left, 0)

    async def take(self, token: str) -> bool:
        """Use the challenge up: True for the one caller that does."""
        result = await self.collection.delete_one({"_id": _digest(token)})
        return result.deleted_count == 1

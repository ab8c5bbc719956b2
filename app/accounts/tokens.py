"""Access tokens (JWT) and refresh tokens (opaque), as pure functions."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from app.bounded import put_bounded
from app.config import Settings

ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "ver"]


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    token_version: int
    session_id: str | None
    issued_at: int
    expires_at: int
    # The session's sign-in proved a second factor (or was a passkey).
    mfa: bool = False


def issue_access_token(
    settings: Settings,
    *,
    user_id: str,
    token_version: int,
    session_id: str | None,
    now: datetime,
    mfa: bool = False,
) -> str:
    issued = int(now.timestamp())
    claims = {
        "sub": user_id,
        "iat": issued,
        "exp": issued + settings.access_token_ttl_seconds,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
        "ver": token_version,
        "sid": session_id,
    }
    if mfa:
        claims["mfa"] = True
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verify signature, algorithm (pinned), expiry, issuer and audience."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired from exc
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(str(exc)) from exc
    sub, ver, sid = claims.get("sub"), claims.get("ver"), claims.get("sid")
    if not isinstance(sub, str) or not isinstance(ver, int) or isinstance(ver, bool):
        raise TokenInvalid("malformed claims")
    return AccessClaims(
        user_id=sub,
        token_version=ver,
        session_id=sid if isinstance(sid, str) else None,
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        mfa=claims.get("mfa") is True,
    )


class AccessTokenVerifier:
    """`decode_access_token` with a memory: a client sends the same token on every request
    until it expires, and verifying it again (HMAC, JSON, claim checks) is a tenth of a
    GET's CPU. Only tokens that verified are kept; expiry is checked on every use.
    Revocation is not decided here: the principal's token version is (AuthService).
    """

    def __init__(
        self, settings: Settings, *, max_entries: int, now: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.max_entries = max_entries
        self.now = now
        self._verified: dict[str, AccessClaims] = {}

    def __len__(self) -> int:
        return len(self._verified)

    def verify(self, token: str) -> AccessClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = decode_access_token(self.settings, token)
            put_bounded(self._verified, token, claims, self.max_entries)
        # The same rule as PyJWT's: expired from the second named by exp.
        if self.now() >= claims.expires_at:
            self._verified.pop(token, None)
            raise TokenExpired
        return claims


def new_refresh_token(session_id: str) -> tuple[str, str]:
    """A fresh refresh token for a session and the hash that is stored in its place."""
    secret = secrets.token_urlsafe(32)
    token = f"{session_id}.{secret}"
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    # 256 bits of randomness: a fast hash is enough, no password stretching needed.
    return hashlib.sha256(token.encode()).hexdigest()


def session_id_of(refresh_token: str) -> str | None:
    session_id, sep, secret = refresh_token.partition(".")
    return session_id if sep and session_id and secret else None


def expires_at(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)

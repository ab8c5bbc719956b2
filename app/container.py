"""The long-lived objects of one running app: repositories and services, built once.

Built in the lifespan hook and reached by the dependency providers in `app.deps`, so a
request pays for no object construction and tests can swap any piece.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.passwords import PasswordHasher
from app.auth.ratelimit import RateLimiter
from app.auth.repository import RateLimitRepository, SessionRepository
from app.auth.service import AuthService
from app.clock import Clock, utc_now
from app.config import Settings
from app.db.client import Db
from app.pagination import CursorCodec
from app.users.repository import UserRepository
from app.users.service import UserService


@dataclass
class Container:
    settings: Settings
    db: Db
    users: UserRepository
    sessions: SessionRepository
    hasher: PasswordHasher
    auth: AuthService
    user_service: UserService

    @classmethod
    def build(cls, settings: Settings, db: Db, *, clock: Clock = utc_now) -> Container:
        users = UserRepository(db)
        sessions = SessionRepository(db)
        hasher = PasswordHasher(settings)
        limiter = RateLimiter(RateLimitRepository(db), window_seconds=settings.rate_limit_window_seconds)
        auth = AuthService(
            settings=settings,
            users=users,
            sessions=sessions,
            limiter=limiter,
            hasher=hasher,
            clock=clock,
        )
        user_service = UserService(
            users=users,
            sessions=sessions,
            auth=auth,
            hasher=hasher,
            cursors=CursorCodec(settings.jwt_secret),
            clock=clock,
        )
        return cls(
            settings=settings,
            db=db,
            users=users,
            sessions=sessions,
            hasher=hasher,
            auth=auth,
            user_service=user_service,
        )

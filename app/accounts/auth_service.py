"""Business rules of authentication: registration, login, token rotation, revocation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from bson import ObjectId

from app.accounts.api_keys import PREFIX as API_KEY_PREFIX
from app.accounts.api_keys import ApiKey, ApiKeyRepository
from app.accounts.auth_schemas import MfaRequired, TokenPair
from app.accounts.mfa_challenges import MfaChallenges
from app.accounts.models import Role, Session, User
from app.accounts.passwords import PasswordHasher
from app.accounts.principal import Principal
from app.accounts.ratelimit import RateLimiter
from app.accounts.session_repository import SessionRepository
from app.accounts.tokens import (
    AccessTokenVerifier,
    TokenExpired,
    TokenInvalid,
    expires_at,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    session_id_of,
)
from app.accounts.user_repository import EmailTakenError, UserRepository
from app.clock import Clock
from app.config import Settings
from app.errors import (
    AppError,
    Conflict,
    ErrorCode,
    FieldError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from app.observability.context import note_audit


class RegistrationDisabled(AppError):
    code, status = ErrorCode.REGISTRATION_DISABLED, 403


class PasswordPolicyError(AppError):
    code, status = ErrorCode.VALIDATION_FAILED, 422


def email_taken(email: str) -> Conflict:
    return Conflict(f"An account with {email} already exists", code=ErrorCode.EMAIL_TAKEN)


def refuse_api_key(principal: Principal, what: str) -> None:
    """Credentials (password, email, keys, sessions) are a person's: never a key's."""
    if principal.api_key_id is not None:
        raise Forbidden(
            f"An API key cannot {what}: sign in with the account's password",
            code=ErrorCode.API_KEY_NOT_ALLOWED,
        )


def proves_mfa(method: str) -> bool:
    """Whether a session's sign-in method included a second factor: `password+totp`,
    `oauth:google+passkey`, or a passkey (which verifies its user) alone."""
    return "+" in method or method == "passkey"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is knocking, for rate limits and the sessions list."""

    address: str
    user_agent: str | None = None


class AuthService:
    def __init__(
        self,
        *,
        settings: Settings,
        users: UserRepository,
        sessions: SessionRepository,
        limiter: RateLimiter,
        hasher: PasswordHasher,
        clock: Clock,
        api_keys: ApiKeyRepository | None = None,
    ) -> None:
        self.settings = settings
        self.api_keys = api_keys
        # Sign-in challenges for accounts with a second factor (set by the container).
        self.challenges: MfaChallenges | None = None
        # Whether the account has passkeys (one may answer the challenge; the container).
        self.has_passkeys: Callable[[str], Awaitable[bool]] | None = None
        self.users = users
        self.sessions = sessions
        self.limiter = limiter
        self.hasher = hasher
        self.clock = clock
        self.tokens = AccessTokenVerifier(settings, max_entries=settings.read_cache_max_entries)

    # -- passwords -------------------------------------------------------------------------

    def check_password_policy(self, password: str, *, field: str = "password") -> None:
        minimum = self.settings.password_min_length
        if len(password) < minimum:
            raise PasswordPolicyError(
                f"The password must be at least {minimum} characters long",
                errors=[
                    FieldError(
                        loc=["body", field],
                        msg=f"String should have at least {minimum} characters",
                        type="string_too_short",
                    )
                ],
            )

    async def confirm_password(
        self, user: User, password: str | None, me: Principal | None = None
    ) -> None:
        """Re-authentication for sensitive changes (password, email, deleting the account):
        `password` must be the account's current one. Rate-limited per account, so a stolen
        access token cannot be used to guess the password."""
        if user.password_hash is None:
            # An account that signed up with a provider or a passkey has no password to
            # confirm: a recent sign-in (which took its second factor, if any) stands in
            # for it, so a stolen access token of an old session cannot make changes.
            await self._require_recent_sign_in(me)
            return
        wrong = "Does not match the current password"
        if password is not None:
            await self.limiter.hit(
                "reauth",
                str(user.id),
                limit=self.settings.rate_limit_reauth_per_account,
                now=self.clock(),
            )
            if await self.hasher.verify(user.password_hash, password):
                return
        raise ValidationFailed(
            "The current password is missing"
            if password is None
            else "The current password is wrong",
            errors=[
                FieldError(
                    loc=["body", "current_password"],
                    msg="Field required" if password is None else wrong,
                    type="missing" if password is None else "password_mismatch",
                )
            ],
        )

    async def _require_recent_sign_in(self, me: Principal | None) -> None:
        window = self.settings.reauth_max_age_seconds
        session = (
            await self.sessions.get(me.session_id) if me is not None and me.session_id else None
        )
        if session is None or (self.clock() - session.created_at).total_seconds() > window:
            raise Forbidden(
                f"This account has no password: sign in again (within {window // 60} "
                "minutes) to do this, or set a password with a password reset",
                code=ErrorCode.REAUTHENTICATION_REQUIRED,
            )

    # -- accounts --------------------------------------------------------------------------

    async def register(
        self, *, email: str, password: str, name: str, client: ClientInfo, role: Role = Role.USER
    ) -> User:
        if not self.settings.registration_enabled:
            raise RegistrationDisabled("Registration is switched off on this server")
        now = self.clock()
        await self.limiter.hit(
            "register", client.address, limit=self.settings.rate_limit_register_per_ip, now=now
        )
        return await self.create_user(email=email, password=password, name=name, role=role)

    async def create_user(
        self, *, email: str, password: str, name: str, role: Role, email_verified: bool = False
    ) -> User:
        """Create an account, bypassing the registration switch (scripts, admins)."""
        self.check_password_policy(password)
        now = self.clock()
        user = User(
            email=email,
            name=name,
            password_hash=await self.hasher.hash(password),
            role=role,
            email_verified=email_verified,
            created_at=now,
            updated_at=now,
        )
        try:
            return await self.users.insert(user)
        except EmailTakenError:
            raise email_taken(email) from None

    # -- sign-in ---------------------------------------------------------------------------

    async def login(
        self, *, email: str, password: str, client: ClientInfo
    ) -> TokenPair | MfaRequired:
        now = self.clock()
        limits = self.settings
        pair = f"{email}\n{client.address}"
        # Per address (as every way of signing in: limit_sign_in), tight per (account,
        # address); far looser per account alone, and not at all for an address this
        # account has signed in from before: guesses spread over many addresses cannot
        # lock the owner out from their own. Two round trips for the first two and the
        # look at the address's standing.
        known = await self.limiter.hit_many(
            [
                ("login", client.address, limits.rate_limit_login_per_ip),
                ("login-pair", pair, limits.rate_limit_login_per_account_address),
            ],
            now=now,
            remembered=("login-ok", pair),
        )
        if not known:
            await self.limiter.hit(
                "login-account", email, limit=limits.rate_limit_login_per_account, now=now
            )
        user = await self.users.get_by_email(email)
        note_audit(subject=email, user=str(user.id) if user else None)
        # Unknown emails cost one argon2 verification too, so timing tells nothing.
        ok = await self.hasher.verify(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Unauthorized("Wrong email or password", code=ErrorCode.INVALID_CREDENTIALS)
        if user.disabled:
            raise Forbidden("This account is disabled")
        if self.settings.require_verified_email and not user.email_verified:
            # After the password check, so this tells nothing to someone guessing.
            raise Forbidden(
                "Confirm your email address first: follow the link in the verification mail "
                "(a password reset, which also confirms the address, sends a new link)",
                code=ErrorCode.EMAIL_NOT_VERIFIED,
            )
        if user.password_hash is not None and self.hasher.needs_rehash(user.password_hash):
            new_hash = await self.hasher.hash(password)
            await self.users.update(str(user.id), {"password_hash": new_hash}, now=now)
        if user.totp_secret is None:
            await self.remember_sign_in(email, client.address)
        # With a second factor, the address is remembered once the code is right too
        # (MfaService.verify): a phished password alone earns no exemption.
        return await self.signed_in(user, client, first_factor="password")

    async def remember_sign_in(self, email: str, address: str) -> None:
        """This account signed in from this address: its guesses elsewhere do not count
        against it here (the per-account ceiling skips a remembered pair)."""
        await self.limiter.remember(
            "login-ok",
            f"{email}\n{address}",
            until=expires_at(self.clock(), self.settings.refresh_token_ttl_seconds),
        )

    async def limit_sign_in(self, client: ClientInfo) -> None:
        """Every way of signing in (password, provider, passkey) counts against one
        per-address limit, RATE_LIMIT_LOGIN_PER_IP."""
        await self.limiter.hit(
            "login", client.address, limit=self.settings.rate_limit_login_per_ip, now=self.clock()
        )

    async def signed_in(
        self, user: User, client: ClientInfo, *, first_factor: str
    ) -> TokenPair | MfaRequired:
        """After a first factor (a password, a mailed link): a session, or for an account
        with a second factor the challenge `POST /v1/auth/mfa/verify` redeems."""
        note_audit(user=str(user.id), method=first_factor)
        if user.totp_secret is not None and self.challenges is not None:
            note_audit(second_factor="required")
            token = await self.challenges.create(
                user,
                address=client.address,
                user_agent=client.user_agent,
                first_factor=first_factor,
                now=self.clock(),
            )
            methods: list[Literal["totp", "recovery_code", "passkey"]] = ["totp", "recovery_code"]
            if self.has_passkeys is not None and await self.has_passkeys(str(user.id)):
                methods.append("passkey")
            return MfaRequired(
                mfa_token=token,
                methods=methods,
                expires_in=self.settings.mfa_challenge_ttl_seconds,
            )
        return await self.start_session(user, client, method=first_factor)

    async def start_session(
        self, user: User, client: ClientInfo | None = None, *, method: str = "password"
    ) -> TokenPair:
        note_audit(user=str(user.id), method=method)
        now = self.clock()
        session_id = ObjectId()
        refresh_token, token_hash = new_refresh_token(str(session_id))
        await self.sessions.create(
            Session(
                id=session_id,
                user_id=user.id,
                token_hash=token_hash,
                created_at=now,
                last_used_at=now,
                expires_at=expires_at(now, self.settings.refresh_token_ttl_seconds),
                user_agent=client.user_agent if client else None,
                address=client.address if client else None,
                method=method,
            )
        )
        return self._pair(user, str(session_id), refresh_token, mfa=proves_mfa(method))

    def _pair(self, user: User, session_id: str, refresh_token: str, *, mfa: bool) -> TokenPair:
        access = issue_access_token(
            self.settings,
            user_id=str(user.id),
            token_version=user.token_version,
            session_id=session_id,
            now=self.clock(),
            mfa=mfa,
        )
        return TokenPair(
            access_token=access,
            expires_in=self.settings.access_token_ttl_seconds,
            refresh_token=refresh_token,
        )

    async def refresh(self, *, refresh_token: str, client: ClientInfo) -> TokenPair:
        now = self.clock()
        await self.limiter.hit(
            "refresh", client.address, limit=self.settings.rate_limit_refresh_per_ip, now=now
        )
        invalid = Unauthorized("The refresh token is not valid", code=ErrorCode.TOKEN_INVALID)
        session_id = session_id_of(refresh_token)
        if session_id is None:
            raise invalid
        old_hash = hash_refresh_token(refresh_token)
        new_token, new_hash = new_refresh_token(session_id)
        session = await self.sessions.rotate(
            session_id, old_hash=old_hash, new_hash=new_hash, now=now
        )
        if session is None:
            await self._explain_failed_rotation(session_id, old_hash)
            raise invalid
        user = await self.users.get(str(session.user_id))
        if user is None or user.disabled:
            await self.sessions.revoke(session_id, now=now)
            raise invalid
        return self._pair(user, session_id, new_token, mfa=proves_mfa(session.method))

    async def _explain_failed_rotation(self, session_id: str, token_hash: str) -> None:
        session = await self.sessions.get(session_id)
        if session is not None and token_hash in session.used_hashes:
            # A rotated-out token came back: someone holds a copy. Kill the whole family.
            await self.sessions.revoke(session_id, now=self.clock())
            raise Unauthorized(
                "This refresh token was already used; the session has been revoked",
                code=ErrorCode.REFRESH_TOKEN_REUSED,
            )

    async def logout(self, *, refresh_token: str) -> None:
        session_id = session_id_of(refresh_token)
        session = await self.sessions.get(session_id) if session_id else None
        if session is None or session.token_hash != hash_refresh_token(refresh_token):
            raise Unauthorized("The refresh token is not valid", code=ErrorCode.TOKEN_INVALID)
        await self.sessions.revoke(str(session.id), now=self.clock())

    async def list_sessions(self, user_id: str) -> list[Session]:
        return await self.sessions.list_live_for_user(user_id, now=self.clock())

    async def revoke_session(self, user_id: str, session_id: str) -> None:
        if not await self.sessions.revoke_own(user_id, session_id, now=self.clock()):
            raise NotFound(
                f"The account has no session {session_id}", code=ErrorCode.SESSION_NOT_FOUND
            )

    # -- API keys --------------------------------------------------------------------------

    async def create_api_key(
        self, user_id: str, *, name: str, expires_at: datetime | None, mfa: bool = False
    ) -> tuple[ApiKey, str]:
        """A new key for the account: (its record, the secret, shown once). With
        REQUIRE_VERIFIED_EMAIL, only a verified account may make one: a key made on an
        address someone registered before its owner would outlive the owner's recovery."""
        assert self.api_keys is not None
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise ValidationFailed(
                "An API key cannot expire in the past: choose a later expires_at",
                errors=[
                    FieldError(loc=["body", "expires_at"], msg="must be in the future", type="past")
                ],
            )
        if self.settings.require_verified_email:
            user = await self.users.get(user_id)
            if user is None or not user.email_verified:
                raise Forbidden(
                    "Confirm your email address before creating API keys",
                    code=ErrorCode.EMAIL_NOT_VERIFIED,
                )
        return await self.api_keys.create(
            user_id=user_id, name=name, expires_at=expires_at, now=now, mfa=mfa
        )

    async def revoke_all_api_keys(self, user_id: str) -> None:
        assert self.api_keys is not None
        await self.api_keys.delete_all_for_user(user_id)

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        assert self.api_keys is not None
        return await self.api_keys.list_for_user(user_id)

    async def revoke_api_key(self, user_id: str, key_id: str) -> None:
        assert self.api_keys is not None
        if not await self.api_keys.delete(user_id, key_id):
            raise NotFound(f"The account has no API key {key_id}", code=ErrorCode.API_KEY_NOT_FOUND)

    async def logout_all(self, user_id: str) -> None:
        """Every session and access token of the account stops working (API keys stay)."""
        now = self.clock()
        await self.users.update(user_id, {}, now=now, bump_token_version=True)
        await self.sessions.revoke_all_for_user(user_id, now=now)

    # -- access tokens ---------------------------------------------------------------------

    async def authenticate(self, access_token: str) -> Principal:
        """The caller behind an access token or API key, refused when it is no longer good."""
        if access_token.startswith(API_KEY_PREFIX) and self.api_keys is not None:
            return await self._authenticate_key(access_token)
        try:
            claims = self.tokens.verify(access_token)
        except TokenExpired:
            raise Unauthorized(
                "The access token has expired; refresh it", code=ErrorCode.TOKEN_EXPIRED
            ) from None
        except TokenInvalid:
            raise Unauthorized(
                "The access token is not valid", code=ErrorCode.TOKEN_INVALID
            ) from None
        principal = await self.users.get_principal(claims.user_id)
        if (
            principal is None
            or principal.disabled
            or principal.token_version != claims.token_version
        ):
            raise Unauthorized("The access token has been revoked", code=ErrorCode.TOKEN_INVALID)
        if claims.session_id is not None and not await self.sessions.is_live(
            claims.session_id, now=self.clock()
        ):
            # Signed out, refresh token replayed, or the session revoked: its access
            # tokens die with it, not when they expire.
            raise Unauthorized(
                "The session of this access token has ended; sign in again",
                code=ErrorCode.TOKEN_INVALID,
            )
        elevated = claims.mfa or not self.settings.admin_mfa_required
        if claims.session_id is None and elevated:
            return principal
        return replace(principal, session_id=claims.session_id, elevated=elevated)

    async def signed_out_reason(self, principal: Principal) -> str | None:
        """Why a sign-in that held when `principal` was authenticated no longer does
        (long-lived streams re-check it), or None while it holds."""
        current = await self.users.get_principal(principal.id)
        if current is None:
            return "user_deleted"
        if current.disabled:
            return "user_disabled"
        if current.role is not principal.role:
            return "access_changed"
        now = self.clock()
        if principal.api_key_id is not None:
            live = self.api_keys is not None and await self.api_keys.is_live(
                principal.api_key_id, now=now
            )
            return None if live else "revoked"
        if current.token_version != principal.token_version:
            return "signed_out"
        if principal.session_id is not None and not await self.sessions.is_live(
            principal.session_id, now=now
        ):
            return "session_ended"
        return None

    async def _authenticate_key(self, secret: str) -> Principal:
        assert self.api_keys is not None
        key = await self.api_keys.find(secret, now=self.clock())
        principal = await self.users.get_principal(key.user_id) if key else None
        if key is None or principal is None or principal.disabled:
            raise Unauthorized(
                "The API key is not valid (unknown, revoked or expired)",
                code=ErrorCode.TOKEN_INVALID,
            )
        elevated = key.mfa or not self.settings.admin_mfa_required
        return replace(principal, api_key_id=key.id, elevated=elevated)

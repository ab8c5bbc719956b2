"""Second factors: TOTP codes (RFC 6238, pyotp) with single-use recovery codes.

Enrolment: `start_totp` (current password) keeps an encrypted pending secret and answers
the otpauth URI and its QR code (segno, SVG); `confirm_totp` with a first code turns it
on and hands out 10 recovery codes, shown once (only their SHA-256 is kept). From then on
a password sign-in answers a challenge (app/accounts/mfa_challenges.py) that `verify`
redeems with a TOTP or recovery code for a session.

A TOTP code is accepted for the current 30-second step or the one on either side, and
once: each account remembers the last step a code was accepted for. Secrets are sealed
with AES-GCM under a key derived from JWT_SECRET (HKDF), bound to the account id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.accounts.auth_schemas import TokenPair
from app.accounts.auth_service import AuthService, ClientInfo
from app.accounts.mfa_challenges import MfaChallenges
from app.accounts.models import Role, User
from app.accounts.passkeys import Options, PasskeyService
from app.accounts.principal import Principal
from app.accounts.ratelimit import RateLimiter
from app.accounts.session_repository import SessionRepository
from app.accounts.user_repository import UserRepository
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
)

RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_CODE = re.compile(r"^[0-9]{6}$")


class SecretBox:
    """AES-GCM sealing of TOTP secrets, each bound to its account id.

    Keys come from MFA_ENCRYPTION_KEYS (the first seals; all open, so a new key goes
    first and old ones stay until `resealed` has moved every secret) and, last, from
    JWT_SECRET (what sealed before that setting existed). The GCM tag tells which key
    fits; a secret opened by another than the first is resealed on its next use.
    """

    def __init__(self, *key_materials: str, info: bytes = b"docstore totp secrets") -> None:
        # `info` keeps each use's keys apart (webhook signing secrets use their own).
        self._aeads = [
            AESGCM(
                HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
                    material.encode()
                )
            )
            for material in key_materials
            if material
        ]

    def seal(self, plain: str, user_id: str) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aeads[0].encrypt(nonce, plain.encode(), user_id.encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def open_with(self, sealed: str, user_id: str) -> tuple[str | None, bool]:
        """The secret, and whether the first (current) key sealed it."""
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
        except ValueError:
            return None, False
        for index, aead in enumerate(self._aeads):
            try:
                return aead.decrypt(raw[:12], raw[12:], user_id.encode()).decode(), index == 0
            except (InvalidTag, ValueError):
                continue
        # Every key changed since enrolment: recovery codes still work.
        return None, False

    def open(self, sealed: str, user_id: str) -> str | None:
        return self.open_with(sealed, user_id)[0]


def new_recovery_codes() -> list[str]:
    """Ten codes of 12 characters (about 59 bits each), grouped by four."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    return codes


def recovery_hash(code: str) -> str:
    normal = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(normal.encode()).hexdigest()


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step `code` is right for: now's, or the one on either side."""
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def qr_svg(uri: str) -> str:
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, scale=4, border=2)
    return out.getvalue().decode()


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class MfaStatus:
    totp: bool
    recovery_codes_left: int


def _wrong_code(field: str, detail: str) -> AppError:
    return AppError(
        detail,
        code=ErrorCode.MFA_CODE_INVALID,
        status=422,
        errors=[FieldError(loc=["body", field], msg=detail, type="mfa_code")],
    )


class MfaService:
    def __init__(
        self,
        *,
        settings: Settings,
        users: UserRepository,
        auth: AuthService,
        sessions: SessionRepository,
        challenges: MfaChallenges,
        limiter: RateLimiter,
        daily: RateLimiter,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.users = users
        self.auth = auth
        self.sessions = sessions
        self.challenges = challenges
        self.limiter = limiter
        self.daily = daily
        self.clock = clock
        self.box = SecretBox(*settings.sealing_keys)
        # Mails the owner about a change to how the account signs in (set by the
        # container: the mail outbox lives in the account lifecycle).
        self.notify: Callable[[User, str], Awaitable[None]] | None = None
        # Passkeys answer sign-in challenges too (set by the container).
        self.passkeys: PasskeyService | None = None

    async def _notify(self, user: User, what: str) -> None:
        if self.notify is not None:
            await self.notify(user, what)

    async def _user(self, me: Principal) -> User:
        user = await self.users.get(me.id)
        if user is None:
            raise NotFound("Account not found", code=ErrorCode.USER_NOT_FOUND)
        return user

    async def _count_attempt(self, user_id: str) -> None:
        """Codes per account: per rate-limit window, and per day (a 6-digit code guessed
        at the window's pace would otherwise come right within weeks)."""
        now = self.clock()
        await self.limiter.hit(
            "mfa", user_id, limit=self.settings.rate_limit_mfa_per_account, now=now
        )
        await self.daily.hit("mfa-day", user_id, limit=self.settings.mfa_max_per_day, now=now)

    async def _second_factor(
        self, user: User, *, code: str | None, recovery_code: str | None
    ) -> bool:
        """Whether `code` (TOTP) or `recovery_code` proves the second factor; either is
        used up when it does."""
        user_id = str(user.id)
        if code is not None and user.totp_secret is not None:
            secret, current = self.box.open_with(user.totp_secret, user_id)
            step = matching_step(secret, code, self.clock()) if secret is not None else None
            if step is None or not await self.users.advance_totp_step(user_id, step):
                return False
            if not current and secret is not None:  # sealed by an older key: move it on
                await self.users.update_if(
                    user_id,
                    {"totp_secret": user.totp_secret},
                    {"totp_secret": self.box.seal(secret, user_id)},
                    now=self.clock(),
                )
            return True
        if recovery_code is not None:
            return await self.users.use_recovery_code(user_id, recovery_hash(recovery_code))
        return False

    async def _reauthenticate(
        self, user: User, current_password: str | None, code: str | None, me: Principal
    ) -> None:
        """The current password, and with two-step sign-in on a current code (TOTP or
        recovery): what changing the second factor or making a lasting credential takes,
        so a password alone (phished, or an old session's) cannot."""
        await self.auth.confirm_password(user, current_password, me)
        if user.totp_secret is None:
            if self.settings.admin_mfa_required and user.role is Role.ADMIN:
                raise Forbidden(
                    "An admin account needs two-step sign-in for this (ADMIN_MFA_REQUIRED): "
                    "turn it on first (POST /v1/users/me/mfa/totp)",
                    code=ErrorCode.MFA_SETUP_REQUIRED,
                )
            return
        await self._count_attempt(str(user.id))
        code = code or ""
        digits = _CODE.match(code) is not None
        if not await self._second_factor(
            user, code=code if digits else None, recovery_code=None if digits else code
        ):
            raise _wrong_code("code", "The code does not match: use the app's current code")

    async def reauthenticate(
        self, me: Principal, current_password: str | None, code: str | None
    ) -> None:
        """What a lasting credential (an API key, a linked sign-in, a passkey) takes."""
        await self._reauthenticate(await self._user(me), current_password, code, me)

    async def status(self, me: Principal) -> MfaStatus:
        user = await self._user(me)
        return MfaStatus(user.totp_secret is not None, len(user.recovery_code_hashes))

    async def start_totp(self, me: Principal, current_password: str) -> TotpEnrolment:
        user = await self._user(me)
        await self.auth.confirm_password(user, current_password, me)
        if user.totp_secret is not None:
            raise Conflict(
                "Two-step sign-in is already on; turn it off first to enrol another device",
                code=ErrorCode.MFA_ALREADY_ENABLED,
            )
        secret = pyotp.random_base32()
        await self.users.update(
            me.id, {"totp_pending": self.box.seal(secret, me.id)}, now=self.clock()
        )
        uri = pyotp.TOTP(secret).provisioning_uri(
            name=user.email, issuer_name=self.settings.app_name
        )
        return TotpEnrolment(secret, uri, await asyncio.to_thread(qr_svg, uri))

    async def confirm_totp(self, me: Principal, code: str) -> list[str]:
        user = await self._user(me)
        if user.totp_secret is not None:
            raise Conflict("Two-step sign-in is already on", code=ErrorCode.MFA_ALREADY_ENABLED)
        pending = self.box.open(user.totp_pending, me.id) if user.totp_pending else None
        if pending is None:
            raise Conflict(
                "Start with POST /v1/users/me/mfa/totp, then confirm its first code",
                code=ErrorCode.MFA_NOT_ENABLED,
            )
        await self._count_attempt(me.id)
        step = matching_step(pending, code, self.clock())
        if step is None:
            raise _wrong_code(
                "code", "The code does not match: check the device's clock and try the next one"
            )
        codes = new_recovery_codes()
        turned_on = await self.users.update_if(
            me.id,
            {"totp_secret": None, "totp_pending": user.totp_pending},
            {
                "totp_secret": user.totp_pending,
                "totp_pending": None,
                "totp_last_step": step,
                "recovery_code_hashes": [recovery_hash(c) for c in codes],
            },
            now=self.clock(),
        )
        if not turned_on:  # another confirmation, a restart or a disable got there first
            raise Conflict(
                "The enrolment changed meanwhile; check GET /v1/users/me/mfa",
                code=ErrorCode.MFA_ALREADY_ENABLED,
            )
        # Sessions that signed in with the password alone (perhaps a phished one) end;
        # this one, which just proved the app, stays.
        await self.sessions.revoke_all_for_user(me.id, now=self.clock(), keep=me.session_id)
        await self._notify(user, "Two-step sign-in was turned on")
        return codes

    async def disable_totp(self, me: Principal, current_password: str, code: str | None) -> None:
        user = await self._user(me)
        # An unconfirmed enrolment alone: the password will do.
        await self._reauthenticate(user, current_password, code, me)
        if user.totp_secret is None and user.totp_pending is None:
            raise Conflict("Two-step sign-in is not on", code=ErrorCode.MFA_NOT_ENABLED)
        await self.users.update(
            me.id,
            {
                "totp_secret": None,
                "totp_pending": None,
                "totp_last_step": 0,
                "recovery_code_hashes": [],
            },
            now=self.clock(),
        )
        if user.totp_secret is not None:
            await self._notify(user, "Two-step sign-in was turned off")

    async def new_recovery_codes(
        self, me: Principal, current_password: str, code: str | None
    ) -> list[str]:
        """Replace the recovery codes (the old ones stop working)."""
        user = await self._user(me)
        await self._reauthenticate(user, current_password, code, me)
        if user.totp_secret is None:
            raise Conflict("Two-step sign-in is not on", code=ErrorCode.MFA_NOT_ENABLED)
        codes = new_recovery_codes()
        await self.users.update(
            me.id, {"recovery_code_hashes": [recovery_hash(c) for c in codes]}, now=self.clock()
        )
        await self._notify(user, "New recovery codes were made; the old ones no longer work")
        return codes

    async def api_key_made(self, me: Principal, name: str) -> None:
        await self._notify(await self._user(me), f'An API key named "{name}" was made')

    async def passkey_options(self, mfa_token: str) -> Options:
        """Options for answering the challenge `mfa_token` with one of the account's
        passkeys (attempts are counted when the answer comes)."""
        challenge = await self.challenges.peek(mfa_token, now=self.clock())
        user = await self.users.get(str(challenge.user_id)) if challenge else None
        if user is None or user.disabled or self.passkeys is None:
            raise Unauthorized(
                "The MFA token is not valid: it expired, was used, or too many codes were "
                "tried; sign in again",
                code=ErrorCode.TOKEN_INVALID,
            )
        if not await self.passkeys.repository.count_for_user(str(user.id)):
            raise NotFound("The account has no passkey", code=ErrorCode.PASSKEY_NOT_FOUND)
        return await self.passkeys.second_factor_options(user)

    async def verify(
        self,
        *,
        mfa_token: str,
        code: str | None,
        recovery_code: str | None,
        client: ClientInfo,
        passkey: tuple[str, dict[str, Any]] | None = None,
    ) -> TokenPair:
        """A session for the challenge `mfa_token`, once a code proves the second factor."""
        now = self.clock()
        invalid = Unauthorized(
            "The MFA token is not valid: it expired, was used, or too many codes were "
            "tried; sign in again",
            code=ErrorCode.TOKEN_INVALID,
        )
        challenge = await self.challenges.attempt(mfa_token, now=now)
        if challenge is None:
            raise invalid
        user_id = str(challenge.user_id)
        await self._count_attempt(user_id)
        user = await self.users.get(user_id)
        if (
            user is None
            or user.disabled
            or user.totp_secret is None
            or user.token_version != challenge.token_version
        ):
            await self.challenges.take(mfa_token)
            raise invalid
        if passkey is not None:
            ok = self.passkeys is not None and await self.passkeys.second_factor(user, *passkey)
        else:
            ok = await self._second_factor(user, code=code, recovery_code=recovery_code)
        if not ok:
            left = await self.challenges.failed(challenge)
            raise Unauthorized(
                "Wrong or already used code; "
                + (f"{left} more tries with this sign-in" if left else "sign in again"),
                code=ErrorCode.MFA_CODE_INVALID,
            )
        if not await self.challenges.take(mfa_token):
            raise invalid  # redeemed meanwhile by another request
        if challenge.first_factor == "password" and challenge.address:
            await self.auth.remember_sign_in(user.email, challenge.address)
        second = "passkey" if passkey else "totp" if code is not None else "recovery_code"
        method = f"{challenge.first_factor}+{second}"
        return await self.auth.start_session(user, client, method=method)

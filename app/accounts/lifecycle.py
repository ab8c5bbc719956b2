"""The account lifecycle: email verification and password reset, by mail.

Requests only queue a message in the outbox (app/mail); the worker composes it when it
sends it. The single-use token is made at that moment and only its hash is stored, so no
plaintext token sits in the database, and a failed delivery revokes the token it carried.

A reset request for an address with no account queues a message too, which the worker
drops: the request does the same work, and answers the same, whether or not the account
exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from app.accounts.action_tokens import ActionTokenRepository
from app.accounts.auth_schemas import MfaRequired, TokenPair
from app.accounts.auth_service import AuthService, ClientInfo
from app.accounts.models import User
from app.accounts.passwords import PasswordHasher
from app.accounts.ratelimit import RateLimiter
from app.accounts.session_repository import SessionRepository
from app.accounts.user_repository import UserRepository
from app.clock import Clock
from app.config import Settings
from app.errors import AppError, Conflict, ErrorCode
from app.mail.outbox import Outbox, OutboxMessage
from app.mail.templates import render
from app.mail.worker import Composed

VERIFY, RESET, EMAIL_CHANGED = "verify_email", "reset_password", "email_changed"
MAGIC_LINK = "magic_link"
SECURITY_NOTICE = "security_notice"  # a change to how the account signs in
ACCOUNT_EXISTS = "account_exists"


class InvalidToken(AppError):
    code, status = ErrorCode.INVALID_TOKEN, 400


def _invalid() -> InvalidToken:
    return InvalidToken("This link is not valid: it was used already, has expired, or is wrong")


NO_SECOND_FACTOR: dict[str, Any] = {
    "totp_secret": None,
    "totp_pending": None,
    "totp_last_step": 0,
    "recovery_code_hashes": [],
}


class AccountLifecycle:
    def __init__(
        self,
        *,
        settings: Settings,
        users: UserRepository,
        sessions: SessionRepository,
        tokens: ActionTokenRepository,
        outbox: Outbox,
        limiter: RateLimiter,
        hasher: PasswordHasher,
        auth: AuthService,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.users = users
        self.sessions = sessions
        self.tokens = tokens
        self.outbox = outbox
        self.limiter = limiter
        self.hasher = hasher
        self.auth = auth
        self.clock = clock
        # Set by the container to wake this process's mail worker.
        self.on_queued: Callable[[], None] = lambda: None
        # Set by the container: remove an account's linked providers and passkeys.
        self.forget_sign_ins: Callable[[str], Awaitable[None]] | None = None

    async def _queue(self, kind: str, to: str, params: dict[str, str]) -> None:
        await self.outbox.enqueue(kind, to, params, now=self.clock())
        self.on_queued()

    # -- requests --------------------------------------------------------------------------

    async def send_verification(self, user: User) -> None:
        """Mail a verification link (at registration; no rate limit of its own)."""
        if not user.email_verified:
            await self._queue(VERIFY, user.email, {"user_id": str(user.id)})

    async def register_quietly(
        self, *, email: str, password: str, name: str, client: ClientInfo
    ) -> None:
        """Registration that does not tell whether the address has an account (with
        REQUIRE_VERIFIED_EMAIL): a new account gets its verification link; the owner of
        a taken address is told that someone tried, and how to get back in. The answer,
        and the work before it (the password is hashed either way), are the same."""
        await self.limiter.hit(
            "register-mail",
            email,
            limit=self.settings.rate_limit_mail_per_account,
            now=self.clock(),
        )
        try:
            user = await self.auth.register(
                email=email, password=password, name=name, client=client
            )
        except Conflict as exc:
            if exc.code != ErrorCode.EMAIL_TAKEN:
                raise
            await self._queue(ACCOUNT_EXISTS, email, {})
            return
        await self.send_verification(user)

    async def request_verification(self, user: User) -> None:
        """Mail a verification link to the account's address (nothing if verified)."""
        await self.limiter.hit(
            "verify-mail",
            str(user.id),
            limit=self.settings.rate_limit_mail_per_account,
            now=self.clock(),
        )
        if not user.email_verified:
            await self._queue(VERIFY, user.email, {"user_id": str(user.id)})

    async def email_changed(self, user: User, old_email: str) -> None:
        """After a change of address: verify the new one, tell the old one."""
        await self._queue(VERIFY, user.email, {"user_id": str(user.id)})
        await self._queue(
            EMAIL_CHANGED,
            old_email,
            {"name": user.name, "old_email": old_email, "email": user.email},
        )

    async def _mail_on_request(
        self, kind: str, action: str, email: str, client: ClientInfo
    ) -> None:
        """Queue a link mail anyone may ask for (a reset, a sign-in link): limited per
        client address and per address; whether an account has it is decided when the
        mail is composed, so the answer is the same either way."""
        now = self.clock()
        await self.limiter.hit(
            action, client.address, limit=self.settings.rate_limit_reset_per_ip, now=now
        )
        await self.limiter.hit(
            f"{action}-account", email, limit=self.settings.rate_limit_mail_per_account, now=now
        )
        await self._queue(kind, email, {})

    async def request_reset(self, email: str, client: ClientInfo) -> None:
        await self._mail_on_request(RESET, "reset", email, client)

    async def request_magic_link(self, email: str, client: ClientInfo) -> None:
        """Mail a single-use sign-in link, if an account has this address."""
        await self._mail_on_request(MAGIC_LINK, "magic", email, client)

    async def notify(self, user: User, what: str) -> None:
        """Tell the account's owner that how it signs in changed (two-step sign-in on or
        off, new recovery codes, a new API key): if it was not them, they act at once."""
        await self._queue(SECURITY_NOTICE, user.email, {"what": what})

    # -- confirmations ---------------------------------------------------------------------

    async def sign_in_with_link(self, token: str, client: ClientInfo) -> TokenPair | MfaRequired:
        """A session for the account a sign-in link was mailed to (or its second-factor
        challenge). Following the link proves the mailbox: the address is verified."""
        now = self.clock()
        await self.limiter.hit(
            "token", client.address, limit=self.settings.rate_limit_reset_per_ip, now=now
        )
        user = await self._redeem("magic", token, now=now)
        if user.disabled:
            raise _invalid()
        if not user.email_verified:
            # The mailbox's owner, for the first time: whatever ways in the account had
            # were set up by someone who never proved the address (perhaps an attacker
            # who registered it first). They all end; a password reset sets a new one.
            claimed = await self.users.update(
                str(user.id),
                {"email_verified": True, "password_hash": None, **NO_SECOND_FACTOR},
                now=now,
                bump_token_version=True,
            )
            await self._end_every_way_in(str(user.id), now)
            user = claimed or user
        return await self.auth.signed_in(user, client, first_factor="magic_link")

    async def _end_every_way_in(self, user_id: str, now: datetime) -> None:
        await self.sessions.revoke_all_for_user(user_id, now=now)
        await self.auth.revoke_all_api_keys(user_id)
        if self.forget_sign_ins is not None:  # linked providers and passkeys
            await self.forget_sign_ins(user_id)

    async def confirm_verification(self, token: str, client: ClientInfo) -> User:
        now = self.clock()
        await self.limiter.hit(
            "token", client.address, limit=self.settings.rate_limit_reset_per_ip, now=now
        )
        user = await self._redeem("verify", token, now=now)
        updated = await self.users.update(str(user.id), {"email_verified": True}, now=now)
        if updated is None:
            raise _invalid()
        return updated

    async def confirm_reset(self, token: str, new_password: str, client: ClientInfo) -> None:
        """Set the new password; every session, access token and API key of the account
        dies."""
        now = self.clock()
        await self.limiter.hit(
            "token", client.address, limit=self.settings.rate_limit_reset_per_ip, now=now
        )
        # Checked first, so a too-short password does not use up the link.
        self.auth.check_password_policy(new_password, field="new_password")
        user = await self._redeem("reset", token, now=now)
        if user.disabled:
            raise _invalid()
        new_hash = await self.hasher.hash(new_password)
        # Following the link proved the mailbox is theirs: the address is verified too.
        # Unverified until now, the account's second factor was set up by someone who
        # never proved the address: it goes, with the providers and passkeys below.
        await self.users.update(
            str(user.id),
            {
                "password_hash": new_hash,
                "email_verified": True,
                **({} if user.email_verified else NO_SECOND_FACTOR),
            },
            now=now,
            bump_token_version=True,
        )
        await self.sessions.revoke_all_for_user(str(user.id), now=now)
        # Recovery ends every credential: an API key made by whoever held the account
        # before (an attacker who registered the address first) must not outlive it.
        # Event streams re-check their credential every heartbeat and end with it.
        await self.auth.revoke_all_api_keys(str(user.id))
        if not user.email_verified and self.forget_sign_ins is not None:
            # Nor may a provider or passkey such a person linked. (With the address
            # verified, they were the owner's: a forgotten password keeps them.)
            await self.forget_sign_ins(str(user.id))
        await self.tokens.delete_for_user(str(user.id), "reset")

    async def _redeem(self, purpose: str, token: str, *, now: datetime) -> User:
        """The account a mailed token (used up now) was made for; 400 invalid_token when it
        is unknown, used, expired, or the account's address changed since it was mailed."""
        record = await self.tokens.consume(purpose, token, now=now)
        user = await self.users.get(record.user_id) if record else None
        if record is None or user is None or user.email != record.email:
            raise _invalid()
        return user

    # -- composing (called by the mail worker when it sends) -------------------------------

    async def compose(self, message: OutboxMessage) -> Composed | None:
        values: dict[str, str] = {"app_name": self.settings.app_name, "email": message.to}
        token_id: str | None = None
        if message.kind == EMAIL_CHANGED:
            values.update(message.params)
        elif message.kind == SECURITY_NOTICE:
            owner = await self.users.get_by_email(message.to)
            if owner is None:
                return None  # deleted meanwhile
            values.update(
                name=owner.name,
                what=message.params.get("what", ""),
                link=f"{self.settings.public_url.rstrip('/')}/reset-password",
            )
        elif message.kind == ACCOUNT_EXISTS:
            owner = await self.users.get_by_email(message.to)
            if owner is None:
                return None  # deleted meanwhile: the address is free again
            values.update(
                name=owner.name,
                link=self.settings.public_url.rstrip("/"),
            )
        elif message.kind in (VERIFY, RESET, MAGIC_LINK):
            if message.kind == VERIFY:
                user = await self.users.get(message.params.get("user_id", ""))
                if user is None or user.email != message.to or user.email_verified:
                    return None  # changed or verified meanwhile: nothing to confirm
                purpose, path, ttl = (
                    "verify",
                    "verify-email",
                    self.settings.verify_token_ttl_seconds,
                )
            else:
                user = await self.users.get_by_email(message.to)
                if user is None or user.disabled:
                    return None  # no such account: the request answered the same anyway
                purpose, path, ttl = (
                    ("reset", "reset-password", self.settings.reset_token_ttl_seconds)
                    if message.kind == RESET
                    else ("magic", "sign-in", self.settings.magic_link_ttl_seconds)
                )
            token, token_id = await self.tokens.create(
                purpose,
                user_id=str(user.id),
                email=user.email,
                now=self.clock(),
                ttl=timedelta(seconds=ttl),
            )
            base = self.settings.public_url.rstrip("/")
            values.update(
                name=user.name,
                link=f"{base}/{path}?token={quote(token)}",
                hours=str(ttl // 3600),
                minutes=str(ttl // 60),
            )
        else:
            return None
        subject, text, html = render(message.kind, values, self.settings.mail_templates_dir)
        undo = None
        if token_id is not None:
            kept = token_id

            async def undo() -> None:
                await self.tokens.delete(kept)

        return Composed(subject=subject, text=text, html=html, undo=undo)

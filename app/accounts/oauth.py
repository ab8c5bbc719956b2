"""Social sign-in: the web redirect flow, the native ID-token flow, and linked identities.

Web flow: `authorize` stores a pending flow (state, PKCE verifier, nonce, the frontend URL
to return to, a hash of a cookie set on the browser that started it) and sends the
browser to the provider; the provider sends it back to the API's callback, which takes
the flow (once), checks the cookie, redeems the provider's code and answers the frontend
with a one-time exchange code in its URL; the frontend trades that code for tokens
(`POST /v1/auth/oauth/exchange`). Tokens never travel in a URL.

Native flow: the app signs in with the platform SDK and sends the provider's ID token;
it is checked (signature, issuer, audience, expiry, nonce) and its nonce recorded, so the
same token cannot be replayed.

Accounts: a known identity signs its account in. Otherwise a provider-verified email that
matches an account with a verified email links to it; an unverified one never links (the
classic takeover: anyone can claim an address at some provider). No match: a new account,
when registration is open. Linking while signed in needs the account's re-authentication.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from app.accounts.auth_schemas import MfaRequired, TokenPair
from app.accounts.auth_service import AuthService, ClientInfo, RegistrationDisabled
from app.accounts.identities import Identity, IdentityRepository, IdentityTaken, digest
from app.accounts.models import User
from app.accounts.oauth_providers import (
    CLOCK_LEEWAY_SECONDS,
    IdTokenInvalid,
    Provider,
    ProviderIdentity,
    pkce_pair,
)
from app.accounts.principal import Principal
from app.accounts.user_repository import EmailTakenError, UserRepository
from app.accounts.ways_in import remove_way_in
from app.clock import Clock
from app.config import Settings
from app.errors import (
    AppError,
    Conflict,
    ErrorCode,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
)

EXCHANGE_CODE_TTL_SECONDS = 120
MAX_NAME_LENGTH = 100


class OAuthStateInvalid(AppError):
    code, status = ErrorCode.OAUTH_STATE_INVALID, 400


class ExchangeCodeInvalid(AppError):
    code, status = ErrorCode.INVALID_TOKEN, 400


@dataclass(frozen=True, slots=True)
class Started:
    url: str
    # Set as a cookie on the browser; the callback must come from the same browser.
    browser_secret: str


class OAuthService:
    def __init__(
        self,
        *,
        settings: Settings,
        providers: dict[str, Provider],
        identities: IdentityRepository,
        users: UserRepository,
        auth: AuthService,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.identities = identities
        self.users = users
        self.auth = auth
        self.clock = clock
        # The owner is told by mail when a sign-in method is linked (set by the container).
        self.notify: Callable[[User, str], Awaitable[None]] | None = None
        # Counts the account's ways to sign in (password, identities, passkeys), for the
        # rule that the last one stays (set by the container).
        self.methods_left: Callable[[User], Awaitable[int]] | None = None

    def provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound(
                f"No sign-in provider named {name!r} is configured (OAUTH_PROVIDERS)",
                code=ErrorCode.PROVIDER_NOT_FOUND,
            )
        return provider

    # -- the web flow ----------------------------------------------------------------------

    def _check_redirect(self, redirect_uri: str, loc: list[str | int]) -> None:
        parts = urlsplit(redirect_uri)
        reserved = {"code", "state", "error", "error_description", "linked"}
        if reserved & set(parse_qs(parts.query, keep_blank_values=True)):
            raise ValidationFailed(
                "redirect_uri must not carry code, state, error or linked: the answer goes there",
                errors=[FieldError(loc=loc, msg="Reserved query parameter", type="value_error")],
            )
        bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        allowed = self.settings.oauth_redirect_urls
        if allowed:
            ok = bare in allowed and not parts.fragment
        else:
            public = urlsplit(self.settings.public_url)
            ok = (parts.scheme, parts.netloc) == (public.scheme, public.netloc) and not (
                parts.fragment or parts.username or parts.password
            )
        if not ok:
            raise ValidationFailed(
                "This redirect_uri is not allowed: list it in OAUTH_REDIRECT_URLS",
                errors=[FieldError(loc=loc, msg="Not an allowed redirect URL", type="value_error")],
            )

    async def start(
        self,
        name: str,
        *,
        redirect_uri: str,
        callback_url: str,
        client_state: str | None,
        code_challenge: str,
        loc: list[str | int],
        address: str,
    ) -> Started:
        """A sign-in from this browser: the provider's URL, and the cookie to set. The
        frontend's PKCE challenge binds the exchange code to it: a code pushed into
        someone else's browser (login CSRF) cannot be exchanged there. Each start stores a
        flow, so starts are rate-limited per client address."""
        provider = self.provider(name)
        self._check_redirect(redirect_uri, loc)
        await self.auth.limiter.hit(
            "oauth-start", address, limit=self.settings.rate_limit_login_per_ip, now=self.clock()
        )
        state, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        flow = self._new_flow(name, redirect_uri, client_state)
        await self.identities.put_flow(
            state,
            {**flow, "code_challenge": code_challenge, "browser": digest(browser)},
            expires_at=self._flow_expiry(),
        )
        return Started(await self._provider_url(provider, state, flow, callback_url), browser)

    async def start_link(
        self,
        me: Principal,
        name: str,
        *,
        redirect_uri: str,
        client_state: str | None,
        loc: list[str | int],
    ) -> str:
        """Linking, started by the signed-in app: a ticket for `GET …/authorize?flow=`,
        which the browser opens (and is bound to). The provider's answer comes back to the
        frontend as a code only this account can redeem (`POST
        /v1/users/me/identities/exchange`), so a link started by someone else and finished
        in a victim's browser links nothing."""
        self.provider(name)
        self._check_redirect(redirect_uri, loc)
        ticket = secrets.token_urlsafe(32)
        flow = self._new_flow(name, redirect_uri, client_state)
        await self.identities.put_flow(
            ticket,
            {**flow, "code_challenge": None, "browser": None, "link_user": me.id},
            expires_at=self._flow_expiry(),
        )
        return ticket

    async def resume(self, name: str, ticket: str, *, callback_url: str) -> Started:
        provider = self.provider(name)
        browser = secrets.token_urlsafe(32)
        flow = await self.identities.claim_flow(ticket, name, browser, now=self.clock())
        if flow is None:
            raise OAuthStateInvalid(
                "This link request has expired or was opened already: start it again"
            )
        return Started(await self._provider_url(provider, ticket, flow, callback_url), browser)

    @staticmethod
    def _new_flow(name: str, redirect_uri: str, client_state: str | None) -> dict[str, Any]:
        return {
            "provider": name,
            "verifier": secrets.token_urlsafe(48),
            "nonce": secrets.token_urlsafe(24),
            "redirect_uri": redirect_uri,
            "client_state": client_state,
        }

    def _flow_expiry(self) -> datetime:
        return self.clock() + timedelta(seconds=self.settings.oauth_flow_ttl_seconds)

    @staticmethod
    async def _provider_url(
        provider: Provider, state: str, flow: dict[str, Any], callback_url: str
    ) -> str:
        return await provider.authorization_url(
            redirect_uri=callback_url,
            state=state,
            nonce=flow["nonce"],
            code_verifier=flow["verifier"],
        )

    async def finish(
        self,
        name: str,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        browser_secret: str | None,
        callback_url: str,
        client: ClientInfo,
    ) -> str:
        """The provider's answer at the callback; the frontend URL to send the browser to.
        A state that is unknown, used, expired, for another provider or from another
        browser is a 400 here (there is no trusted place to send the browser back to)."""
        now = self.clock()
        flow = await self.identities.take_flow(state, now=now) if state else None
        if (
            flow is None
            or flow["provider"] != name
            or browser_secret is None
            or digest(browser_secret) != flow["browser"]
        ):
            raise OAuthStateInvalid(
                "This sign-in cannot be completed: it expired, was used already, or was "
                "started in another browser. Start again."
            )
        back: dict[str, str] = {}
        if flow.get("client_state"):
            back["state"] = flow["client_state"]
        if error or not code:
            return self._to_frontend(
                flow["redirect_uri"],
                {**back, "error": "access_denied", "error_description": "Sign-in was cancelled"},
            )
        try:
            await self.auth.limit_sign_in(client)
            provider = self.provider(name)
            identity = await provider.redeem_code(
                code=code,
                redirect_uri=callback_url,
                code_verifier=flow["verifier"],
                nonce=flow["nonce"],
            )
            link_user = flow.get("link_user")
            if link_user is None:
                user = await self.resolve(identity, link_user=None)
                record: dict[str, Any] = {
                    "user_id": str(user.id),
                    "provider": name,
                    "code_challenge": flow.get("code_challenge"),
                }
            else:
                record = {"link_user": link_user, "provider": name, "identity": asdict(identity)}
        except AppError as exc:
            return self._to_frontend(
                flow["redirect_uri"],
                {**back, "error": exc.code.value, "error_description": exc.detail},
            )
        exchange = secrets.token_urlsafe(32)
        await self.identities.put_code(
            exchange, record, expires_at=now + timedelta(seconds=EXCHANGE_CODE_TTL_SECONDS)
        )
        return self._to_frontend(flow["redirect_uri"], {**back, "code": exchange})

    @staticmethod
    def _to_frontend(redirect_uri: str, params: dict[str, str]) -> str:
        parts = urlsplit(redirect_uri)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    async def exchange(
        self, code: str, code_verifier: str | None, client: ClientInfo
    ) -> TokenPair | MfaRequired:
        now = self.clock()
        await self.auth.limit_sign_in(client)
        record = await self.identities.take_code(code, now=now)
        challenge = record.get("code_challenge") if record else None
        if (
            record is None
            or "user_id" not in record
            or challenge is None
            or code_verifier is None
            or pkce_pair(code_verifier) != challenge
        ):
            raise ExchangeCodeInvalid(
                "This sign-in code is not valid: it was used already, has expired, or its "
                "code_verifier does not match"
            )
        user = await self.users.get(record["user_id"])
        if user is None:
            raise ExchangeCodeInvalid("This sign-in code's account no longer exists")
        return await self._signed_in(user, record["provider"], client)

    async def _signed_in(
        self, user: User, provider: str, client: ClientInfo
    ) -> TokenPair | MfaRequired:
        if user.disabled:
            raise Forbidden("This account is disabled")
        return await self.auth.signed_in(user, client, first_factor=f"oauth:{provider}")

    async def complete_link(self, me: Principal, provider: str, code: str) -> Identity:
        """The code a linking flow's callback gave the frontend, redeemed by the account
        that started it (and only by it)."""
        record = await self.identities.take_code(code, now=self.clock())
        if record is None or record.get("link_user") != me.id or record["provider"] != provider:
            raise ExchangeCodeInvalid(
                "This link code is not valid: it was used already, has expired, or was "
                "started by another account"
            )
        return await self._linked(me, ProviderIdentity(**record["identity"]))

    async def _linked(self, me: Principal, identity: ProviderIdentity) -> Identity:
        await self.resolve(identity, link_user=me.id)
        found = await self.identities.find(identity.provider, identity.subject)
        assert found is not None
        return found

    # -- the native flow -------------------------------------------------------------------

    async def _verified_claims(
        self, provider: Provider, id_token: str, nonce: str | None, client: ClientInfo
    ) -> dict[str, Any]:
        now = self.clock()
        await self.auth.limit_sign_in(client)
        if nonce is None and provider.config.require_nonce:
            raise ValidationFailed(
                f"{provider.title} sign-in needs the nonce the app passed to its SDK",
                errors=[FieldError(loc=["body", "nonce"], msg="Field required", type="missing")],
            )
        claims = await provider.verify_id_token(id_token, audiences=provider.audiences, nonce=nonce)
        if nonce is None and claims.get("nonce") is not None:
            raise IdTokenInvalid("This ID token carries a nonce: send it")
        # Each nonce (the token's own, as the provider signed it; or, without one, each
        # token) signs in once.
        sent = claims.get("nonce")
        once = f"nonce:{sent}" if isinstance(sent, str) else f"token:{digest(id_token)}"
        exp = claims.get("exp")
        until = datetime.fromtimestamp(float(exp), tz=now.tzinfo) if exp else now
        if not await self.identities.use_nonce(
            provider.name, once, expires_at=until + timedelta(seconds=CLOCK_LEEWAY_SECONDS)
        ):
            raise IdTokenInvalid("This ID token (or its nonce) was used already")
        return claims

    async def sign_in_with_id_token(
        self, name: str, id_token: str, nonce: str | None, client: ClientInfo
    ) -> TokenPair | MfaRequired:
        provider = self.provider(name)
        claims = await self._verified_claims(provider, id_token, nonce, client)
        user = await self.resolve(provider.identity_of(claims), link_user=None)
        return await self._signed_in(user, name, client)

    async def link_with_id_token(
        self, me: Principal, name: str, id_token: str, nonce: str | None, client: ClientInfo
    ) -> Identity:
        provider = self.provider(name)
        claims = await self._verified_claims(provider, id_token, nonce, client)
        return await self._linked(me, provider.identity_of(claims))

    # -- accounts --------------------------------------------------------------------------

    async def resolve(self, identity: ProviderIdentity, *, link_user: str | None) -> User:
        """The account this provider identity signs in to (linked, matched or created)."""
        now = self.clock()
        known = await self.identities.find(identity.provider, identity.subject)
        if link_user is not None:
            if known is not None and known.user_id != link_user:
                raise Conflict(
                    "This sign-in is linked to another account already",
                    code=ErrorCode.IDENTITY_IN_USE,
                )
            user = await self.users.get(link_user)
            if user is None:
                raise NotFound("The account no longer exists", code=ErrorCode.USER_NOT_FOUND)
            if known is None:
                await self._link(user, identity, now)
            return user
        if known is not None:
            user = await self.users.get(known.user_id)
            if user is not None:
                await self.identities.touch(known, email=identity.email, now=now)
                return user
            await self.identities.unlink(known.user_id, known.provider, known.subject)
        if identity.email is None or not identity.email_verified:
            # Never an account from an address the provider has not verified (anyone can
            # claim one there), and the same answer whether or not it has an account.
            raise Forbidden(
                "The provider has not verified an email address for this sign-in: sign "
                "up another way, then link the provider from the account's settings",
                code=ErrorCode.EMAIL_NOT_VERIFIED,
            )
        existing = await self.users.get_by_email(identity.email)
        if existing is not None:
            if existing.email_verified:
                await self._link(existing, identity, now)
                return existing
            raise Conflict(
                f"An account with {identity.email} exists: sign in to it (password, "
                "sign-in link) and link this provider from the account's settings",
                code=ErrorCode.IDENTITY_NOT_LINKED,
            )
        return await self._create(identity, now)

    async def _link(self, user: User, identity: ProviderIdentity, now: datetime) -> None:
        try:
            await self.identities.link(identity, user_id=str(user.id), now=now)
        except IdentityTaken:
            raise Conflict(
                "This sign-in is linked to another account already",
                code=ErrorCode.IDENTITY_IN_USE,
            ) from None
        if self.notify is not None:
            title = self.providers[identity.provider].title
            await self.notify(user, f"Sign-in with {title} was linked to your account")

    async def _create(self, identity: ProviderIdentity, now: datetime) -> User:
        if not self.settings.registration_enabled:
            raise RegistrationDisabled("Registration is switched off on this server")
        assert identity.email is not None
        name = (identity.name or identity.email.partition("@")[0])[:MAX_NAME_LENGTH]
        user = User(
            email=identity.email,
            name=name or identity.email,
            password_hash=None,
            email_verified=identity.email_verified,
            created_at=now,
            updated_at=now,
        )
        try:
            user = await self.users.insert(user)
        except EmailTakenError:
            raise Conflict(
                f"An account with {identity.email} exists: sign in to it and link this provider",
                code=ErrorCode.IDENTITY_NOT_LINKED,
            ) from None
        try:
            await self.identities.link(identity, user_id=str(user.id), now=now)
        except IdentityTaken:
            # Two first sign-ins at once: one account wins, the other is removed.
            await self.users.delete(str(user.id))
            raise Conflict(
                "This sign-in was being set up twice at once: try again",
                code=ErrorCode.IDENTITY_IN_USE,
            ) from None
        return user

    async def list(self, me: Principal) -> list[Identity]:
        return await self.identities.for_user(me.id)

    async def unlink(self, me: Principal, identity_id: str) -> None:
        user = await self.users.get(me.id)
        if user is None:
            raise NotFound("The account no longer exists", code=ErrorCode.USER_NOT_FOUND)
        await remove_way_in(
            self.identities,
            user,
            identity_id,
            methods_left=self.methods_left,
            missing=NotFound("No such linked sign-in", code=ErrorCode.IDENTITY_NOT_FOUND),
            last=Conflict(
                "This is the account's only way to sign in: set a password (password reset) "
                "or link another provider first",
                code=ErrorCode.LAST_SIGN_IN_METHOD,
            ),
        )

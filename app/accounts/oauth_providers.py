"""Sign-in providers: where they live, their keys, and checking what they send back.

An OpenID Connect provider is found by discovery (`{issuer}/.well-known/openid-configuration`)
and its ID tokens are checked with joserfc (the JOSE library of the Authlib project)
against its published keys (JWKS): signature, algorithm, issuer, audience, expiry and
nonce. PKCE values come from Authlib. GitHub speaks OAuth2 without OpenID: its identity
is read from its user API with the access token the code exchange gives.

Everything fetched is bounded (size, time) and cached: discovery for an hour, keys until
a token names a key id the set lacks (then refetched, at most once a minute).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import ECKey, KeySet

from app.config import OAuthProviderConfig
from app.errors import AppError, ErrorCode

DISCOVERY_TTL_SECONDS = 3600
JWKS_MIN_REFRESH_SECONDS = 60
MAX_RESPONSE_BYTES = 512 * 1024
MAX_ID_TOKEN_LENGTH = 16 * 1024
CLOCK_LEEWAY_SECONDS = 60
# Microsoft's issuers: a tenant's id (however the tenant was named in the URL).
_MICROSOFT_ISSUER = re.compile(r"^https://login\.microsoftonline\.com/([0-9a-fA-F-]{36})/v2\.0/?$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Asymmetric algorithms only: an HS256 token would be "signed" with the client secret.
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]


@dataclass(frozen=True, slots=True)
class Preset:
    title: str
    issuer: str | None
    scopes: tuple[str, ...]
    # OAuth2 without OpenID (GitHub): fixed endpoints, identity from the user API.
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    # Apple posts the callback as a form when it is asked for the name or email.
    form_post: bool = False


PRESETS: dict[str, Preset] = {
    "google": Preset("Google", "https://accounts.google.com", ("openid", "email", "profile")),
    "apple": Preset(
        "Apple", "https://appleid.apple.com", ("openid", "email", "name"), form_post=True
    ),
    "microsoft": Preset(
        "Microsoft",
        "https://login.microsoftonline.com/{tenant}/v2.0",
        ("openid", "email", "profile"),
    ),
    "gitlab": Preset("GitLab", "https://gitlab.com", ("openid", "email", "profile")),
    "github": Preset(
        "GitHub",
        None,
        ("read:user", "user:email"),
        authorization_endpoint="https://github.com/login/oauth/authorize",
        token_endpoint="https://github.com/login/oauth/access_token",
        userinfo_endpoint="https://api.github.com/user",
    ),
}
GENERIC = Preset("OpenID", None, ("openid", "email", "profile"))


class ProviderUnavailable(AppError):
    code, status = ErrorCode.PROVIDER_UNAVAILABLE, 503


class IdTokenInvalid(AppError):
    code, status = ErrorCode.ID_TOKEN_INVALID, 401


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """Who the provider says signed in."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None
    userinfo_endpoint: str | None


def pkce_pair(verifier: str) -> str:
    """The S256 challenge of a PKCE verifier."""
    return str(create_s256_code_challenge(verifier))


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _truthy(value: object) -> bool:
    # Apple sends email_verified as "true"/"false" strings.
    return value is True or value == "true"


class Provider:
    def __init__(
        self,
        name: str,
        config: OAuthProviderConfig,
        http: httpx.AsyncClient,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self.preset = PRESETS[config.preset] if config.preset else GENERIC
        self.http = http
        self.now = now
        self.title = config.display_name or self.preset.title
        self.oidc = self.preset.token_endpoint is None and config.token_endpoint is None
        issuer = config.issuer or self.preset.issuer
        self.issuer = issuer.replace("{tenant}", config.tenant) if issuer else None
        self.scopes = tuple(config.scopes or self.preset.scopes)
        # OAuth2 without discovery (GitHub): the endpoints are fixed by configuration.
        self._metadata: Metadata | None = None if self.oidc else self._configured_metadata()
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()
        self._apple_secret: tuple[str, float] | None = None

    @property
    def audiences(self) -> list[str]:
        return [self.config.client_id, *self.config.native_client_ids]

    # -- what the provider publishes -------------------------------------------------------

    async def _fetch(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call to the provider, read up to MAX_RESPONSE_BYTES within the timeout as
        a whole (httpx's timeout is per read: a provider dripping bytes would hold on)."""
        try:
            async with asyncio.timeout(self.http.timeout.read or 5.0):
                async with self.http.stream(method, url, **kwargs) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise ProviderUnavailable(f"{self.title} answered too much")
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                content=bytes(body),
                request=response.request,
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ProviderUnavailable(
                f"{self.title} cannot be reached ({type(exc).__name__})"
            ) from None

    async def _get_json(self, url: str, **kwargs: Any) -> Any:
        return self._json(await self._fetch("GET", url, **kwargs))

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"{self.title} answered {response.status_code} to {response.request.url.path}"
            )
        try:
            return response.json()
        except ValueError:
            raise ProviderUnavailable(f"{self.title} answered something other than JSON") from None

    def _configured_metadata(self) -> Metadata:
        preset, config = self.preset, self.config
        authorize = config.authorization_endpoint or preset.authorization_endpoint
        token = config.token_endpoint or preset.token_endpoint
        assert authorize and token
        return Metadata(
            issuer=None,
            authorization_endpoint=authorize,
            token_endpoint=token,
            jwks_uri=None,
            userinfo_endpoint=config.userinfo_endpoint or preset.userinfo_endpoint,
        )

    async def metadata(self) -> Metadata:
        if self._metadata is not None and (
            not self.oidc or self.now() - self._metadata_at < DISCOVERY_TTL_SECONDS
        ):
            return self._metadata
        assert self.issuer is not None
        document = await self._get_json(
            self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        try:
            metadata = Metadata(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
                userinfo_endpoint=document.get("userinfo_endpoint"),
            )
        except (KeyError, TypeError):
            raise ProviderUnavailable(f"{self.title}'s discovery document is incomplete") from None
        if not self._is_own_issuer(metadata.issuer):
            # OpenID Connect Discovery 4.3: a document naming another issuer is not this
            # provider's (a mix-up, or a host serving someone else's configuration).
            raise ProviderUnavailable(
                f"{self.title}'s discovery names the issuer {metadata.issuer!r}, not "
                f"{self.issuer!r}: check the provider's issuer setting"
            )
        endpoints = (metadata.authorization_endpoint, metadata.token_endpoint, metadata.jwks_uri)
        if self.issuer.startswith("https://") and not all(
            str(url).startswith("https://") for url in endpoints
        ):
            raise ProviderUnavailable(f"{self.title}'s discovery names endpoints without HTTPS")
        self._metadata, self._metadata_at = metadata, self.now()
        return metadata

    def _is_own_issuer(self, published: str | None) -> bool:
        """Whether discovery's `issuer` is the one configured (a trailing slash aside).
        Microsoft's multi-tenant endpoints (common, organizations) publish a template,
        `{tenantid}`, that ID tokens fill in with the user's tenant; its others publish
        the tenant's id (consumers: 9188040d-...; a tenant named by domain: its id), which
        must be the configured one when that is an id."""
        assert self.issuer is not None
        if published is None:
            return False
        if published.rstrip("/") == self.issuer.rstrip("/"):
            return True
        template = self.config.issuer or self.preset.issuer or ""
        if "{tenant}" in template and self.config.tenant in ("common", "organizations"):
            return published.rstrip("/") == template.replace("{tenant}", "{tenantid}").rstrip("/")
        if self.preset is PRESETS["microsoft"] and self.config.issuer is None:
            # Microsoft names a tenant by its id in the issuer, however it was asked for:
            # consumers is 9188040d-...; a tenant given by domain name is its id too.
            found = _MICROSOFT_ISSUER.match(published)
            if found is not None:
                tenant = self.config.tenant.lower()
                return not _GUID.match(tenant) or found.group(1).lower() == tenant
        return False

    async def keys(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            fresh = self.now() - self._keys_at < JWKS_MIN_REFRESH_SECONDS
            if self._keys is not None and (not refresh or fresh):
                return self._keys
            metadata = await self.metadata()
            assert metadata.jwks_uri is not None
            document = await self._get_json(metadata.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(document)
            except (JoseError, ValueError, TypeError, KeyError):
                raise ProviderUnavailable(
                    f"{self.title} publishes keys that cannot be read"
                ) from None
            self._keys_at = self.now()
            return self._keys

    # -- the redirect flow -----------------------------------------------------------------

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        metadata = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "code_challenge": pkce_pair(code_verifier),
            "code_challenge_method": "S256",
        }
        if self.oidc:
            params["nonce"] = nonce
        if self.preset.form_post:
            params["response_mode"] = "form_post"
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + urlencode(params)

    def _client_secret(self) -> str | None:
        config = self.config
        if config.apple_private_key is not None:
            return self._apple_client_secret()
        return config.client_secret.get_secret_value() if config.client_secret else None

    def _apple_client_secret(self) -> str:
        """Apple's client secret: an ES256 JWT signed with the team's key, valid for up
        to six months; made for a day and renewed an hour before it runs out."""
        now = self.now()
        if self._apple_secret is not None and self._apple_secret[1] - now > 3600:
            return self._apple_secret[0]
        config = self.config
        assert config.apple_private_key and config.apple_key_id and config.apple_team_id
        key = ECKey.import_key(config.apple_private_key.get_secret_value())
        expires = now + 86_400
        secret = jwt.encode(
            {"alg": "ES256", "kid": config.apple_key_id},
            {
                "iss": config.apple_team_id,
                "iat": int(now),
                "exp": int(expires),
                "aud": "https://appleid.apple.com",
                "sub": config.client_id,
            },
            key,
        )
        self._apple_secret = (secret, expires)
        return secret

    async def redeem_code(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ProviderIdentity:
        """The code the provider sent to the callback, exchanged (with the PKCE verifier)
        for the identity it stands for."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": code_verifier,
        }
        secret = self._client_secret()
        if secret is not None:
            form["client_secret"] = secret
        response = await self._fetch(
            "POST", metadata.token_endpoint, data=form, headers={"Accept": "application/json"}
        )
        if response.status_code in (400, 401):
            raise IdTokenInvalid(f"{self.title} refused the sign-in code")
        tokens = self._json(response)
        if not isinstance(tokens, dict):
            raise ProviderUnavailable(f"{self.title} answered an unexpected token response")
        if "error" in tokens:
            raise IdTokenInvalid(f"{self.title} refused the sign-in code")
        if self.oidc:
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise ProviderUnavailable(f"{self.title} sent no ID token")
            claims = await self.verify_id_token(
                id_token, audiences=[self.config.client_id], nonce=nonce
            )
            return self.identity_of(claims)
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str):
            raise ProviderUnavailable(f"{self.title} sent no access token")
        return await self._github_identity(access_token)

    async def _github_identity(self, access_token: str) -> ProviderIdentity:
        metadata = await self.metadata()
        assert metadata.userinfo_endpoint is not None
        headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/vnd.github+json",
        }
        user = await self._get_json(metadata.userinfo_endpoint, headers=headers)
        emails = await self._get_json(metadata.userinfo_endpoint + "/emails", headers=headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise ProviderUnavailable(f"{self.title} answered an unexpected user")
        primary = next(
            (
                e
                for e in emails
                if isinstance(e, dict) and e.get("primary") and isinstance(e.get("email"), str)
            )
            if isinstance(emails, list)
            else iter(()),
            None,
        )
        name = user.get("name") or user.get("login")
        return ProviderIdentity(
            provider=self.name,
            subject=str(user["id"]),
            email=primary["email"].strip().lower() if primary else None,
            email_verified=bool(primary and primary.get("verified") is True),
            name=name if isinstance(name, str) else None,
        )

    # -- ID tokens -------------------------------------------------------------------------

    async def verify_id_token(
        self, id_token: str, *, audiences: list[str], nonce: str | None
    ) -> dict[str, Any]:
        """The claims of a provider-signed ID token, or IdTokenInvalid. `nonce`, when
        given, must be the token's (or its SHA-256, as Apple's and Google's native SDKs
        put the hash of the app's nonce in the token)."""
        if not self.oidc:
            raise IdTokenInvalid(f"{self.title} issues no ID tokens: use the redirect flow")
        if len(id_token) > MAX_ID_TOKEN_LENGTH:
            raise IdTokenInvalid("The ID token is too long")
        metadata = await self.metadata()
        # joserfc raises its own errors, and others (TypeError, KeyError...) on some
        # malformed headers: a token that does not decode is the caller's problem.
        try:
            token = jwt.decode(id_token, await self.keys(), algorithms=ID_TOKEN_ALGORITHMS)
        except AppError:
            raise
        except Exception as first:
            # A key id the cached set lacks: the provider may have rotated its keys.
            try:
                fresh = await self.keys(refresh=True)
                token = jwt.decode(id_token, fresh, algorithms=ID_TOKEN_ALGORITHMS)
            except AppError:
                raise
            except Exception:
                raise IdTokenInvalid(
                    f"The ID token's signature does not verify ({first})"
                ) from None
        claims = token.claims
        issuer = metadata.issuer or ""
        if "{tenantid}" in issuer:
            # Microsoft's multi-tenant endpoints: the issuer names the user's tenant.
            issuer = issuer.replace("{tenantid}", str(claims.get("tid", "")))
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()),
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "values": audiences},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise IdTokenInvalid("The ID token has expired") from None
        except Exception as exc:
            raise IdTokenInvalid(f"The ID token was not issued for this app ({exc})") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") not in audiences:
            # Issued to another client that named us too (OpenID Connect Core 3.1.3.7).
            raise IdTokenInvalid("The ID token was issued to another app (azp)")
        if nonce is not None:
            sent = claims.get("nonce")
            if sent not in (nonce, nonce_hash(nonce)):
                raise IdTokenInvalid("The ID token's nonce does not match")
        return claims

    def identity_of(self, claims: dict[str, Any]) -> ProviderIdentity:
        email = claims.get("email")
        name = claims.get("name")
        return ProviderIdentity(
            provider=self.name,
            subject=str(claims["sub"]),
            email=email.strip().lower() if isinstance(email, str) and email else None,
            email_verified=(
                _truthy(claims.get("email_verified"))
                # Microsoft Entra sends no email_verified; its optional claim xms_edov
                # ("email domain owner verified", added in the app's token configuration)
                # says the address's domain is verified by its tenant.
                or (self.preset is PRESETS["microsoft"] and claims.get("xms_edov") is True)
                or self.config.emails_verified
            ),
            name=name if isinstance(name, str) else None,
        )

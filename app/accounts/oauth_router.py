"""HTTP endpoints of social sign-in (/v1/auth/oauth) and linked sign-ins
(/v1/users/me/identities). The flows are in app/accounts/oauth.py."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Path, Query, Request, status
from fastapi.responses import RedirectResponse

from app.accounts.auth_schemas import (
    CodeChallenge,
    IdTokenSignIn,
    MfaRequired,
    OAuthExchange,
    OAuthProviderList,
    OAuthProviderOut,
    TokenPair,
)
from app.accounts.identities import Identity
from app.accounts.oauth import Started
from app.accounts.user_schemas import (
    AuthorizeUrl,
    IdentityLinkIdToken,
    IdentityLinkStart,
    IdentityList,
    IdentityOut,
)
from app.config import Settings
from app.errors import FieldError, ValidationFailed
from app.http.deps import (
    ClientDep,
    MfaServiceDep,
    OAuthServiceDep,
    Person,
    SettingsDep,
    no_store,
)
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

router = APIRouter(prefix="/v1/auth/oauth", tags=["auth"], route_class=StrictJSONRoute)
identities_router = APIRouter(
    prefix="/v1/users/me/identities", tags=["users"], route_class=StrictJSONRoute
)

ProviderPath = Annotated[str, Path(max_length=32, description="A name from OAUTH_PROVIDERS")]
COOKIE_PREFIX = "docstore_oauth_"
REDIRECT = {"description": "To the provider (a top-level browser navigation)"}


def _callback_url(request: Request, settings: Settings, provider: str) -> str:
    base = settings.public_api_url or str(request.base_url)
    return f"{base.rstrip('/')}/v1/auth/oauth/{provider}/callback"


def _redirect_with_cookie(
    started: Started, request: Request, settings: Settings, provider: str
) -> RedirectResponse:
    """To the provider, with the cookie that binds the flow to this browser. Secure and
    SameSite=None over HTTPS (Apple posts the callback cross-site); Lax over plain HTTP
    (development), where a None cookie would be refused."""
    callback = _callback_url(request, settings, provider)
    secure = callback.startswith("https://")
    response = RedirectResponse(started.url, status_code=status.HTTP_302_FOUND)
    response.set_cookie(
        COOKIE_PREFIX + provider,
        started.browser_secret,
        max_age=settings.oauth_flow_ttl_seconds,
        path=urlsplit(callback).path,
        secure=secure,
        httponly=True,
        samesite="none" if secure else "lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(
    "/providers",
    operation_id="auth_oauth_providers",
    summary="The configured sign-in providers (for a sign-in screen's buttons)",
)
async def providers(oauth: OAuthServiceDep) -> OAuthProviderList:
    return OAuthProviderList(
        items=[
            OAuthProviderOut(name=name, title=p.title, id_token=p.oidc)
            for name, p in oauth.providers.items()
        ]
    )


@router.get(
    "/{provider}/authorize",
    status_code=status.HTTP_302_FOUND,
    operation_id="auth_oauth_authorize",
    summary="Start a web sign-in: redirects the browser to the provider",
    description="Open it as a top-level navigation (not fetch). The provider sends the "
    "browser back to the API's callback, which sends it on to `redirect_uri` with "
    "`?code=…` (trade it at `POST /v1/auth/oauth/exchange`) or `?error=<code>"
    "&error_description=…`, plus your `state`. `code_challenge` (PKCE S256 of a verifier "
    "the frontend keeps) binds the code to this browser: the exchange needs the verifier, "
    "so a code pushed into someone else's browser is useless there. `flow` "
    "continues a link started with `POST /v1/users/me/identities/{provider}/authorize`.",
    response_class=RedirectResponse,
    responses={302: REDIRECT, **problem_responses(400, 404, 422, 429, 503)},
)
async def authorize(
    provider: ProviderPath,
    request: Request,
    oauth: OAuthServiceDep,
    settings: SettingsDep,
    client: ClientDep,
    redirect_uri: Annotated[
        str | None, Query(min_length=1, max_length=2000, description="An allowed frontend URL")
    ] = None,
    state: Annotated[
        str | None, Query(min_length=1, max_length=500, description="Returned unchanged")
    ] = None,
    code_challenge: Annotated[
        CodeChallenge | None,
        Query(description="PKCE S256 of a verifier the frontend keeps (required to sign in)"),
    ] = None,
    code_challenge_method: Annotated[str | None, Query(pattern="^S256$")] = None,
    flow: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> RedirectResponse:
    callback = _callback_url(request, settings, provider)
    if flow is not None:
        started = await oauth.resume(provider, flow, callback_url=callback)
    else:
        for name, value in (("redirect_uri", redirect_uri), ("code_challenge", code_challenge)):
            if value is None:
                raise ValidationFailed(
                    f"{name} is required to start a sign-in",
                    errors=[FieldError(loc=["query", name], msg="Field required", type="missing")],
                )
        assert redirect_uri is not None and code_challenge is not None
        started = await oauth.start(
            provider,
            redirect_uri=redirect_uri,
            callback_url=callback,
            client_state=state,
            code_challenge=code_challenge,
            loc=["query", "redirect_uri"],
            address=client.address,
        )
    return _redirect_with_cookie(started, request, settings, provider)


async def _finish(
    provider: str,
    request: Request,
    oauth: OAuthServiceDep,
    settings: Settings,
    client: ClientDep,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
) -> RedirectResponse:
    callback = _callback_url(request, settings, provider)
    url = await oauth.finish(
        provider,
        state=state,
        code=code,
        error=error,
        browser_secret=request.cookies.get(COOKIE_PREFIX + provider),
        callback_url=callback,
        client=client,
    )
    response = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE_PREFIX + provider, path=urlsplit(callback).path)
    response.headers["Cache-Control"] = "no-store"
    return response


CALLBACK_DESCRIPTION = (
    "Where the provider sends the browser back (register this URL with the provider). "
    "Sends the browser on to the flow's `redirect_uri`; a state that is unknown, used, "
    "expired or from another browser is 400 `oauth_state_invalid`."
)
Short = Annotated[str | None, Query(max_length=2000)]


@router.get(
    "/{provider}/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    operation_id="auth_oauth_callback",
    summary="The provider's redirect back to the API",
    description=CALLBACK_DESCRIPTION,
    response_class=RedirectResponse,
    responses={303: {"description": "To the frontend"}, **problem_responses(400, 404, 429)},
)
async def callback(
    provider: ProviderPath,
    request: Request,
    oauth: OAuthServiceDep,
    settings: SettingsDep,
    client: ClientDep,
    state: Short = None,
    code: Short = None,
    error: Short = None,
) -> RedirectResponse:
    return await _finish(
        provider, request, oauth, settings, client, state=state, code=code, error=error
    )


FormShort = Annotated[str | None, Form(max_length=2000)]


@router.post(
    "/{provider}/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    operation_id="auth_oauth_callback_form",
    summary="The provider's redirect back to the API, as a form post (Apple)",
    description=CALLBACK_DESCRIPTION,
    response_class=RedirectResponse,
    responses={303: {"description": "To the frontend"}, **problem_responses(400, 404, 429)},
)
async def callback_form(
    provider: ProviderPath,
    request: Request,
    oauth: OAuthServiceDep,
    settings: SettingsDep,
    client: ClientDep,
    state: FormShort = None,
    code: FormShort = None,
    error: FormShort = None,
) -> RedirectResponse:
    return await _finish(
        provider, request, oauth, settings, client, state=state, code=code, error=error
    )


@router.post(
    "/exchange",
    operation_id="auth_oauth_exchange",
    summary="Trade the code from the web flow's redirect for tokens",
    description="The token pair, or `mfa_required` for an account with two-step sign-in. "
    "A code works once, for 2 minutes; a used, expired or unknown one (or a wrong "
    "`code_verifier`) answers 400 `invalid_token`.",
    responses=problem_responses(400, 403, 422, 429),
    dependencies=[Depends(no_store)],
)
async def exchange(
    body: OAuthExchange, oauth: OAuthServiceDep, client: ClientDep
) -> TokenPair | MfaRequired:
    return await oauth.exchange(body.code, body.code_verifier, client)


@router.post(
    "/{provider}/id-token",
    operation_id="auth_oauth_id_token",
    summary="Sign in with a provider's ID token (mobile and native apps)",
    description="The app signs in with the platform SDK (Sign in with Apple, Google "
    "Sign-In, ...) and sends the ID token it got. It must be signed by the provider, "
    "issued to one of its configured client ids, unexpired, and carry the `nonce` sent "
    "(raw or SHA-256); each nonce signs in once. Otherwise 401 `id_token_invalid`. An "
    "email the provider has not verified never signs in to an existing account (409 "
    "`identity_not_linked`).",
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
    dependencies=[Depends(no_store)],
)
async def id_token(
    provider: ProviderPath, body: IdTokenSignIn, oauth: OAuthServiceDep, client: ClientDep
) -> TokenPair | MfaRequired:
    return await oauth.sign_in_with_id_token(provider, body.id_token, body.nonce, client)


# -- linked sign-ins ----------------------------------------------------------------------


def _identity_out(identity: Identity) -> IdentityOut:
    return IdentityOut.model_validate(asdict(identity))


@identities_router.get(
    "",
    operation_id="users_list_identities",
    summary="The providers linked to the caller's account",
    responses=problem_responses(401, 403),
)
async def list_identities(me: Person, oauth: OAuthServiceDep) -> IdentityList:
    return IdentityList(items=[_identity_out(i) for i in await oauth.list(me)])


REAUTH = (
    "Needs `current_password` when the account has one, and with two-step sign-in on a "
    "current `code`: a linked provider is a lasting way in."
)


@identities_router.post(
    "/{provider}/id-token",
    status_code=status.HTTP_201_CREATED,
    operation_id="users_link_identity_id_token",
    summary="Link a provider with its ID token (native apps)",
    description=REAUTH + " The token is checked as for sign-in; 409 `identity_in_use` "
    "when it is linked to another account.",
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
)
async def link_id_token(
    provider: ProviderPath,
    body: IdentityLinkIdToken,
    me: Person,
    oauth: OAuthServiceDep,
    mfa: MfaServiceDep,
    client: ClientDep,
) -> IdentityOut:
    oauth.provider(provider)
    await mfa.reauthenticate(me, body.current_password, body.code)
    return _identity_out(
        await oauth.link_with_id_token(me, provider, body.id_token, body.nonce, client)
    )


@identities_router.post(
    "/{provider}/authorize",
    operation_id="users_link_identity_start",
    summary="Start linking a provider in the browser",
    description=REAUTH + " Answers the URL to open (a top-level navigation); the browser "
    "comes back to `redirect_uri` with `?code=…`, which this account then redeems at "
    "`POST /v1/users/me/identities/{provider}/exchange`.",
    responses=problem_responses(401, 403, 404, 422, 429),
    dependencies=[Depends(no_store)],
)
async def link_start(
    provider: ProviderPath,
    body: IdentityLinkStart,
    request: Request,
    me: Person,
    oauth: OAuthServiceDep,
    mfa: MfaServiceDep,
    settings: SettingsDep,
) -> AuthorizeUrl:
    oauth.provider(provider)
    await mfa.reauthenticate(me, body.current_password, body.code)
    ticket = await oauth.start_link(
        me,
        provider,
        redirect_uri=body.redirect_uri,
        client_state=body.state,
        loc=["body", "redirect_uri"],
    )
    base = _callback_url(request, settings, provider).removesuffix("/callback")
    return AuthorizeUrl(url=f"{base}/authorize?{urlencode({'flow': ticket})}")


@identities_router.post(
    "/{provider}/exchange",
    status_code=status.HTTP_201_CREATED,
    operation_id="users_link_identity_exchange",
    summary="Finish linking: redeem the code the browser came back with",
    description="Only the account that started the link can redeem its code (400 "
    "`invalid_token` otherwise, or when used or expired); 409 `identity_in_use` when the "
    "provider account is linked to another account.",
    responses=problem_responses(400, 401, 403, 409, 422),
)
async def link_exchange(
    provider: ProviderPath, body: OAuthExchange, me: Person, oauth: OAuthServiceDep
) -> IdentityOut:
    return _identity_out(await oauth.complete_link(me, provider, body.code))


@identities_router.delete(
    "/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_unlink_identity",
    summary="Unlink a provider",
    description="409 `last_sign_in_method` when it is the account's only way to sign in "
    "(no password, no passkey, no other provider).",
    responses=problem_responses(401, 403, 404, 409),
)
async def unlink(
    identity_id: Annotated[str, Path(max_length=64)], me: Person, oauth: OAuthServiceDep
) -> None:
    await oauth.unlink(me, identity_id)

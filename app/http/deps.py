"""Annotated dependency aliases, so route signatures read like sentences.

Every dependency is `async def`, even the ones that do no I/O: FastAPI runs a plain
`def` dependency in a worker thread, a thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from app.accounts.auth_service import AuthService, ClientInfo, refuse_api_key
from app.accounts.lifecycle import AccountLifecycle
from app.accounts.mfa import MfaService
from app.accounts.models import Role
from app.accounts.oauth import OAuthService
from app.accounts.passkeys import PasskeyService
from app.accounts.principal import Principal
from app.accounts.user_service import UserService
from app.collections.service import CollectionService
from app.config import Settings
from app.container import Container
from app.documents.batch import BatchService
from app.documents.service import DocumentService
from app.errors import ErrorCode, Forbidden, Unauthorized
from app.files.service import FileService
from app.realtime.service import RealtimeService
from app.teams.service import TeamService
from app.webhooks.service import WebhookService


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_container(request: Request) -> Container:
    return _container(request)


ContainerDep = Annotated[Container, Depends(get_container)]

# The providers below take the Request rather than ContainerDep: each dependency is a
# node FastAPI resolves on every request, and the hot paths need few of them.


async def get_settings_dep(request: Request) -> Settings:
    return _container(request).settings


async def get_auth_service(request: Request) -> AuthService:
    return _container(request).auth


async def get_user_service(request: Request) -> UserService:
    return _container(request).user_service


async def get_mfa_service(request: Request) -> MfaService:
    return _container(request).mfa


async def get_oauth_service(request: Request) -> OAuthService:
    return _container(request).oauth


async def get_passkey_service(request: Request) -> PasskeyService:
    return _container(request).passkeys


async def get_collection_service(request: Request) -> CollectionService:
    return _container(request).collections


async def get_document_service(request: Request) -> DocumentService:
    return _container(request).documents


async def get_file_service(request: Request) -> FileService:
    return _container(request).files


async def get_realtime_service(request: Request) -> RealtimeService:
    return _container(request).realtime


async def get_team_service(request: Request) -> TeamService:
    return _container(request).teams


async def get_batch_service(request: Request) -> BatchService:
    return _container(request).batch


async def get_webhook_service(request: Request) -> WebhookService:
    return _container(request).webhooks


async def get_client_info(request: Request) -> ClientInfo:
    # Behind a proxy, uvicorn's --proxy-headers/--forwarded-allow-ips fill request.client.
    agent = request.headers.get("user-agent")
    return ClientInfo(
        address=request.client.host if request.client else "unknown",
        user_agent=agent[:300] if agent else None,
    )


async def no_store(response: Response) -> None:
    """Responses that carry credentials must not be kept by browsers or proxies."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
UserServiceDep = Annotated[UserService, Depends(get_user_service)]
MfaServiceDep = Annotated[MfaService, Depends(get_mfa_service)]
OAuthServiceDep = Annotated[OAuthService, Depends(get_oauth_service)]
PasskeyServiceDep = Annotated[PasskeyService, Depends(get_passkey_service)]
ClientDep = Annotated[ClientInfo, Depends(get_client_info)]
CollectionServiceDep = Annotated[CollectionService, Depends(get_collection_service)]
DocumentServiceDep = Annotated[DocumentService, Depends(get_document_service)]
FileServiceDep = Annotated[FileService, Depends(get_file_service)]
RealtimeServiceDep = Annotated[RealtimeService, Depends(get_realtime_service)]
BatchServiceDep = Annotated[BatchService, Depends(get_batch_service)]
TeamServiceDep = Annotated[TeamService, Depends(get_team_service)]
WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]

# tokenUrl makes Swagger UI's Authorize button work with the OAuth2 password flow.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def bearer_token(authorization: str | None) -> str | None:
    """`OAuth2PasswordBearer`'s rule, for the paths that read the header themselves."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(
    auth: AuthService, token: str | None, state: dict[str, Any]
) -> Principal | None:
    """The caller a bearer token stands for (None: anonymous), noted for the access log."""
    if not token:
        return None
    principal = await auth.authenticate(token)
    state["user_id"] = principal.id
    state["via"] = "api_key" if principal.api_key_id is not None else "session"
    return principal


async def get_optional_user(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal | None:
    state = request.scope.setdefault("state", {})  # what request.state reads and writes
    return await authenticate(_container(request).auth, token, state)


async def get_current_user(
    principal: Annotated[Principal | None, Depends(get_optional_user)],
) -> Principal:
    if principal is None:
        raise Unauthorized(
            "Sign in first: send 'Authorization: Bearer <access token>'",
            code=ErrorCode.NOT_AUTHENTICATED,
        )
    return principal


async def get_admin_user(
    principal: Annotated[Principal, Depends(get_current_user)],
) -> Principal:
    if not principal.is_admin:
        if principal.role is Role.ADMIN:  # ADMIN_MFA_REQUIRED, signed in without one
            raise Forbidden(
                "Admin rights need two-step sign-in (ADMIN_MFA_REQUIRED): turn it on "
                "(POST /v1/users/me/mfa/totp) and sign in again with a code or a passkey",
                code=ErrorCode.MFA_SETUP_REQUIRED,
            )
        raise Forbidden("This needs an admin account")
    return principal


async def get_person(
    principal: Annotated[Principal, Depends(get_current_user)],
) -> Principal:
    refuse_api_key(principal, "manage the account's password, keys or sessions")
    return principal


async def get_admin_person(
    principal: Annotated[Principal, Depends(get_admin_user)],
) -> Principal:
    refuse_api_key(principal, "manage an account's keys or sessions")
    return principal


async def get_lifecycle(request: Request) -> AccountLifecycle:
    return _container(request).lifecycle


OptionalUser = Annotated[Principal | None, Depends(get_optional_user)]
# Signed in with a password (an access token), not an API key.
Person = Annotated[Principal, Depends(get_person)]
LifecycleDep = Annotated[AccountLifecycle, Depends(get_lifecycle)]
CurrentUser = Annotated[Principal, Depends(get_current_user)]
AdminUser = Annotated[Principal, Depends(get_admin_user)]
# An admin signed in as a person: another account's keys and sessions are credentials,
# which an API key never manages (as with the caller's own, under /v1/users/me).
AdminPerson = Annotated[Principal, Depends(get_admin_person)]

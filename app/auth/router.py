"""HTTP endpoints of /v1/auth."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, status

from app.auth.schemas import LoginRequest, RefreshRequest, RegisterRequest, TokenPair
from app.deps import AuthServiceDep, ClientDep, CurrentUser, no_store
from app.errors import BadRequest, problem_responses
from app.strict_json import StrictJSONRoute
from app.users.schemas import UserOut

router = APIRouter(
    prefix="/v1/auth",
    tags=["auth"],
    route_class=StrictJSONRoute,
    dependencies=[Depends(no_store)],
)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    operation_id="auth_register",
    summary="Create an account",
    responses=problem_responses(403, 409, 422, 429),
)
async def register(body: RegisterRequest, auth: AuthServiceDep, client: ClientDep) -> UserOut:
    user = await auth.register(
        email=body.email, password=body.password, name=body.name, client=client
    )
    return UserOut.of(user)


@router.post(
    "/login",
    operation_id="auth_login",
    summary="Sign in with email and password",
    responses=problem_responses(401, 403, 422, 429),
)
async def login(body: LoginRequest, auth: AuthServiceDep, client: ClientDep) -> TokenPair:
    return await auth.login(email=body.email, password=body.password, client=client)


@router.post(
    "/token",
    operation_id="auth_token",
    summary="OAuth2 token endpoint (password and refresh_token grants)",
    description="Form-encoded, as OAuth2 clients and Swagger UI's Authorize button send it. "
    "`username` is the account's email address.",
    responses=problem_responses(400, 401, 403, 422, 429),
)
async def token(
    auth: AuthServiceDep,
    client: ClientDep,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()],
    username: Annotated[str | None, Form(max_length=320)] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=512)] = None,
    scope: Annotated[str, Form(max_length=1024)] = "",
) -> TokenPair:
    if grant_type == "password":
        if not username or not password:
            raise BadRequest("The password grant needs `username` and `password`")
        return await auth.login(email=username.strip().lower(), password=password, client=client)
    if not refresh_token:
        raise BadRequest("The refresh_token grant needs `refresh_token`")
    return await auth.refresh(refresh_token=refresh_token, client=client)


@router.post(
    "/refresh",
    operation_id="auth_refresh",
    summary="Trade a refresh token for a new token pair",
    description="Refresh tokens rotate on every use. Presenting a used one again revokes "
    "its whole session and answers `refresh_token_reused`.",
    responses=problem_responses(401, 422, 429),
)
async def refresh(body: RefreshRequest, auth: AuthServiceDep, client: ClientDep) -> TokenPair:
    return await auth.refresh(refresh_token=body.refresh_token, client=client)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="auth_logout",
    summary="End the session a refresh token belongs to",
    responses=problem_responses(401, 422),
)
async def logout(body: RefreshRequest, auth: AuthServiceDep) -> None:
    await auth.logout(refresh_token=body.refresh_token)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="auth_logout_all",
    summary="End every session and invalidate every access token of the caller",
    responses=problem_responses(401),
)
async def logout_all(user: CurrentUser, auth: AuthServiceDep) -> None:
    await auth.logout_all(user)

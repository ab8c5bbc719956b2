"""HTTP endpoints of /v1/auth."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, status
from fastapi.responses import JSONResponse

from app.accounts.auth_schemas import (
    Accepted,
    EmailVerification,
    LoginRequest,
    MfaRequired,
    MfaVerify,
    PasskeyVerify,
    PasswordReset,
    PasswordResetRequest,
    RecoveryVerify,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    TotpVerify,
)
from app.accounts.user_schemas import UserOut
from app.errors import BadRequest, ErrorCode, Forbidden
from app.http.deps import (
    AuthServiceDep,
    ClientDep,
    CurrentUser,
    LifecycleDep,
    MfaServiceDep,
    Person,
    UserServiceDep,
    no_store,
)
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

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
    description="201 with the account; with REQUIRE_VERIFIED_EMAIL, 202 whether or not the "
    "address already has an account (its owner is told by mail), so the answer does not "
    "reveal which addresses are registered.",
    response_model=UserOut,
    responses={
        202: {"model": Accepted, "description": "Check the mailbox (REQUIRE_VERIFIED_EMAIL)"},
        **problem_responses(403, 409, 422, 429),
    },
)
async def register(
    body: RegisterRequest, auth: AuthServiceDep, lifecycle: LifecycleDep, client: ClientDep
) -> UserOut | JSONResponse:
    if auth.settings.require_verified_email:
        await lifecycle.register_quietly(
            email=body.email, password=body.password, name=body.name, client=client
        )
        accepted = Accepted(
            detail="Check your mailbox: a link to confirm the address is on its way"
        )
        return JSONResponse(
            accepted.model_dump(),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
    user = await auth.register(
        email=body.email, password=body.password, name=body.name, client=client
    )
    await lifecycle.send_verification(user)
    return UserOut.of(user)


@router.post(
    "/login",
    operation_id="auth_login",
    summary="Sign in with email and password",
    description="The token pair; or, for an account with two-step sign-in on, "
    "`{mfa_required: true, mfa_token, ...}`: send a code with the token to "
    "`POST /v1/auth/mfa/verify`.",
    responses=problem_responses(401, 403, 422, 429),
)
async def login(
    body: LoginRequest, auth: AuthServiceDep, client: ClientDep
) -> TokenPair | MfaRequired:
    return await auth.login(email=body.email, password=body.password, client=client)


@router.post(
    "/mfa/verify",
    operation_id="auth_mfa_verify",
    summary="Finish a two-step sign-in with a TOTP or recovery code, or a passkey",
    description="`{mfa_token, code}` (the authenticator app's 6 digits), `{mfa_token, "
    "recovery_code}` (single use) or `{mfa_token, challenge_id, credential}` (a passkey, "
    "options from `POST /v1/auth/mfa/passkey-options`). A code works once; after "
    "`MFA_MAX_ATTEMPTS` wrong codes the token dies and the sign-in starts again; codes "
    "are rate-limited per account (`RATE_LIMIT_MFA_PER_ACCOUNT`).",
    responses=problem_responses(401, 422, 429),
    dependencies=[Depends(no_store)],
)
async def mfa_verify(body: MfaVerify, mfa: MfaServiceDep, client: ClientDep) -> TokenPair:
    return await mfa.verify(
        mfa_token=body.mfa_token,
        code=body.code if isinstance(body, TotpVerify) else None,
        recovery_code=body.recovery_code if isinstance(body, RecoveryVerify) else None,
        passkey=(body.challenge_id, body.credential.model_dump(exclude_none=True))
        if isinstance(body, PasskeyVerify)
        else None,
        client=client,
    )


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
        signed_in = await auth.login(
            email=username.strip().lower(), password=password, client=client
        )
        if isinstance(signed_in, MfaRequired):
            raise Forbidden(
                "This account has two-step sign-in: use POST /v1/auth/login, then "
                "POST /v1/auth/mfa/verify with a code",
                code=ErrorCode.MFA_REQUIRED,
            )
        return signed_in
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
    responses=problem_responses(401, 403),
)
async def logout_all(user: Person, auth: AuthServiceDep) -> None:
    await auth.logout_all(user.id)


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="auth_verify_email_request",
    summary="Mail a new verification link to the caller's address",
    description="Nothing is sent when the address is verified already. Rate-limited per account.",
    responses=problem_responses(401, 429),
)
async def request_verification(
    me: CurrentUser, users: UserServiceDep, lifecycle: LifecycleDep
) -> Accepted:
    await lifecycle.request_verification(await users.get(me.id))
    return Accepted(detail="If the address is not verified yet, a link is on its way")


@router.post(
    "/verify-email",
    operation_id="auth_verify_email",
    summary="Confirm an email address with the token from the mail",
    description="Tokens are single-use; a used, expired or unknown one answers 400 "
    "`invalid_token`.",
    responses=problem_responses(400, 422, 429),
)
async def verify_email(
    body: EmailVerification, lifecycle: LifecycleDep, client: ClientDep
) -> UserOut:
    return UserOut.of(await lifecycle.confirm_verification(body.token, client))


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="auth_password_reset_request",
    summary="Mail a password-reset link",
    description="Answers the same, in about the same time, whether or not an account has "
    "this address. Rate-limited per client address and per account.",
    responses=problem_responses(422, 429),
)
async def request_password_reset(
    body: PasswordResetRequest, lifecycle: LifecycleDep, client: ClientDep
) -> Accepted:
    await lifecycle.request_reset(body.email, client)
    return Accepted(detail="If an account has this address, a reset link is on its way")


@router.post(
    "/magic-link/request",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="auth_magic_link_request",
    summary="Mail a single-use sign-in link",
    description="Answers the same whether or not an account has this address (no account "
    "is created). The link (`PUBLIC_URL/sign-in?token=…`) works once, for "
    "`MAGIC_LINK_TTL_SECONDS`; the frontend sends its token to `POST "
    "/v1/auth/magic-link`. Rate-limited per client address and per address.",
    responses=problem_responses(422, 429),
)
async def request_magic_link(
    body: PasswordResetRequest, lifecycle: LifecycleDep, client: ClientDep
) -> Accepted:
    await lifecycle.request_magic_link(body.email, client)
    return Accepted(detail="If an account has this address, a sign-in link is on its way")


@router.post(
    "/magic-link",
    operation_id="auth_magic_link",
    summary="Sign in with the token from a mailed sign-in link",
    description="The token pair, or `mfa_required` for an account with two-step sign-in "
    "(as `POST /v1/auth/login`). Tokens are single-use; a used, expired or unknown one "
    "answers 400 `invalid_token`. The address counts as verified.",
    responses=problem_responses(400, 422, 429),
    dependencies=[Depends(no_store)],
)
async def magic_link(
    body: EmailVerification, lifecycle: LifecycleDep, client: ClientDep
) -> TokenPair | MfaRequired:
    return await lifecycle.sign_in_with_link(body.token, client)


@router.post(
    "/password-reset",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="auth_password_reset",
    summary="Set a new password with the token from the reset mail",
    description="Every session and access token of the account dies. Tokens are "
    "single-use; a used, expired or unknown one answers 400 `invalid_token`.",
    responses=problem_responses(400, 422, 429),
)
async def reset_password(body: PasswordReset, lifecycle: LifecycleDep, client: ClientDep) -> None:
    await lifecycle.confirm_reset(body.token, body.new_password, client)

"""HTTP endpoints of /v1/users."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Path, Query, status

from app.accounts.api_keys import ApiKey
from app.accounts.auth_schemas import TokenPair
from app.accounts.models import Session
from app.accounts.principal import Principal
from app.accounts.user_schemas import (
    AccountDeletion,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyList,
    ApiKeyOut,
    MeUpdate,
    MfaStatusOut,
    NewRecoveryCodes,
    PageLimit,
    PasswordChange,
    Reauthentication,
    SecondFactorChange,
    SessionList,
    SessionOut,
    SignInMethod,
    TotpConfirm,
    TotpEnrolmentOut,
    UserAdminUpdate,
    UserOut,
    UserPage,
)
from app.http.deps import (
    AdminPerson,
    AdminUser,
    AuthServiceDep,
    CurrentUser,
    MfaServiceDep,
    Person,
    UserServiceDep,
    no_store,
)
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

router = APIRouter(prefix="/v1/users", tags=["users"], route_class=StrictJSONRoute)


@router.get(
    "/me",
    operation_id="users_get_me",
    summary="The caller's account",
    responses=problem_responses(401),
)
async def get_me(me: CurrentUser, users: UserServiceDep) -> UserOut:
    return UserOut.of(await users.get(me.id))


@router.patch(
    "/me",
    operation_id="users_update_me",
    summary="Change the caller's name or email",
    description="A new email needs `current_password`; it starts unverified (a verification "
    "mail goes to it) and the old address is told. An API key may change the name only.",
    responses=problem_responses(401, 403, 409, 422, 429),
)
async def update_me(body: MeUpdate, me: CurrentUser, users: UserServiceDep) -> UserOut:
    changes = body.model_dump(exclude_none=True, exclude={"current_password"})
    return UserOut.of(await users.update_me(me, changes, current_password=body.current_password))


@router.post(
    "/me/password",
    operation_id="users_change_password",
    summary="Change the caller's password",
    description="Revokes every session and access token of the account and returns a "
    "token pair for a fresh session. Wrong guesses are rate-limited per account.",
    responses=problem_responses(401, 403, 422, 429),
    dependencies=[Depends(no_store)],
)
async def change_password(body: PasswordChange, me: Person, users: UserServiceDep) -> TokenPair:
    return await users.change_password(
        me, current_password=body.current_password, new_password=body.new_password
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_delete_me",
    summary="Delete the caller's account, its sessions and its documents",
    description="Needs `current_password` in the body.",
    responses=problem_responses(401, 403, 422, 429),
)
async def delete_me(body: AccountDeletion, me: Person, users: UserServiceDep) -> None:
    await users.delete_me(me, current_password=body.current_password)


@router.get(
    "/me/mfa",
    operation_id="users_mfa_status",
    summary="Whether two-step sign-in is on, and the recovery codes left",
    responses=problem_responses(401, 403),
)
async def mfa_status(me: Person, mfa: MfaServiceDep) -> MfaStatusOut:
    found = await mfa.status(me)
    return MfaStatusOut(totp=found.totp, recovery_codes_left=found.recovery_codes_left)


@router.post(
    "/me/mfa/totp",
    operation_id="users_mfa_totp_start",
    summary="Start two-step sign-in with an authenticator app (TOTP)",
    description="Needs `current_password`. Answers the secret, its otpauth URI and a QR "
    "code; nothing changes at sign-in until `POST /v1/users/me/mfa/totp/confirm` with a "
    "first code. Starting again replaces an unconfirmed secret.",
    responses=problem_responses(401, 403, 409, 422, 429),
    dependencies=[Depends(no_store)],
)
async def mfa_totp_start(
    body: Reauthentication, me: Person, mfa: MfaServiceDep
) -> TotpEnrolmentOut:
    enrolment = await mfa.start_totp(me, body.current_password)
    return TotpEnrolmentOut(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
    )


@router.post(
    "/me/mfa/totp/confirm",
    operation_id="users_mfa_totp_confirm",
    summary="Turn two-step sign-in on with a first code; get 10 recovery codes",
    responses=problem_responses(401, 403, 409, 422, 429),
    dependencies=[Depends(no_store)],
)
async def mfa_totp_confirm(body: TotpConfirm, me: Person, mfa: MfaServiceDep) -> NewRecoveryCodes:
    return NewRecoveryCodes(recovery_codes=await mfa.confirm_totp(me, body.code))


@router.delete(
    "/me/mfa/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_mfa_totp_disable",
    summary="Turn two-step sign-in off (needs `current_password` and a current `code`)",
    responses=problem_responses(401, 403, 409, 422, 429),
)
async def mfa_totp_disable(body: SecondFactorChange, me: Person, mfa: MfaServiceDep) -> None:
    await mfa.disable_totp(me, body.current_password, body.code)


@router.post(
    "/me/mfa/recovery-codes",
    operation_id="users_mfa_recovery_codes",
    summary="Replace the recovery codes (the old ones stop working)",
    description="Needs `current_password` and a current `code` (TOTP, or a recovery code).",
    responses=problem_responses(401, 403, 409, 422, 429),
    dependencies=[Depends(no_store)],
)
async def mfa_recovery_codes(
    body: SecondFactorChange, me: Person, mfa: MfaServiceDep
) -> NewRecoveryCodes:
    codes = await mfa.new_recovery_codes(me, body.current_password, body.code)
    return NewRecoveryCodes(recovery_codes=codes)


@router.get(
    "/me/sessions",
    operation_id="users_list_sessions",
    summary="The caller's signed-in devices",
    responses=problem_responses(401, 403),
)
async def list_sessions(me: Person, auth: AuthServiceDep) -> SessionList:
    return _sessions(await auth.list_sessions(me.id), me)


def _sessions(sessions: list[Session], caller: Principal) -> SessionList:
    return SessionList(
        items=[
            SessionOut(
                id=str(s.id),
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                user_agent=s.user_agent,
                address=s.address,
                current=str(s.id) == caller.session_id,
                method=cast(SignInMethod, re.sub(r":[^+]*", "", s.method)),
                provider=s.method.partition(":")[2].partition("+")[0] or None,
            )
            for s in sessions
        ]
    )


@router.delete(
    "/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_revoke_session",
    summary="Sign one device out; its access tokens stop working at once",
    responses=problem_responses(401, 403, 404),
)
async def revoke_session(
    session_id: Annotated[str, Path(max_length=64)], me: Person, auth: AuthServiceDep
) -> None:
    await auth.revoke_session(me.id, session_id)


@router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    operation_id="users_create_api_key",
    summary="Create an API key for servers and scripts",
    description="Needs `current_password`, and with two-step sign-in on a current `code`: "
    "a key outlives sessions, so a stolen access token alone must not make one. The "
    "secret is in this response only. Send it as `Authorization: Bearer dsk_...`: it acts "
    "as you for collections and documents, never for your password, email, keys or "
    "sessions.",
    responses=problem_responses(401, 403, 422, 429),
    dependencies=[Depends(no_store)],
)
async def create_api_key(
    body: ApiKeyIn, me: Person, auth: AuthServiceDep, mfa: MfaServiceDep
) -> ApiKeyCreated:
    await mfa.reauthenticate(me, body.current_password, body.code)
    # With TOTP on, re-authentication took a code: the key counts as made with MFA.
    with_code = (await mfa.status(me)).totp
    key, secret = await auth.create_api_key(
        me.id, name=body.name, expires_at=body.expires_at, mfa=with_code
    )
    await mfa.api_key_made(me, key.name)
    return ApiKeyCreated.model_validate({**asdict(key), "key": secret})


@router.get(
    "/me/api-keys",
    operation_id="users_list_api_keys",
    summary="The caller's API keys (without their secrets)",
    responses=problem_responses(401, 403),
)
async def list_api_keys(me: Person, auth: AuthServiceDep) -> ApiKeyList:
    return _api_keys(await auth.list_api_keys(me.id))


def _api_keys(keys: list[ApiKey]) -> ApiKeyList:
    return ApiKeyList(items=[ApiKeyOut.model_validate(asdict(k)) for k in keys])


@router.delete(
    "/me/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_revoke_api_key",
    summary="Revoke an API key; it stops working at once",
    responses=problem_responses(401, 403, 404),
)
async def revoke_api_key(
    key_id: Annotated[str, Path(max_length=64)], me: Person, auth: AuthServiceDep
) -> None:
    await auth.revoke_api_key(me.id, key_id)


@router.get(
    "",
    operation_id="users_list",
    summary="List accounts (admin)",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_users(
    _: AdminUser,
    users: UserServiceDep,
    # No NUL: MongoDB refuses it inside the regular expression the search becomes.
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=r"^[^\x00]*$", description="Search email and name"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    limit: PageLimit = 20,
) -> UserPage:
    page, next_cursor = await users.list_page(query=q, cursor=cursor, limit=limit)
    return UserPage(items=[UserOut.of(u) for u in page], next_cursor=next_cursor)


@router.get(
    "/{user_id}",
    operation_id="users_get",
    summary="One account (admin)",
    responses=problem_responses(401, 403, 404),
)
async def get_user(user_id: str, _: AdminUser, users: UserServiceDep) -> UserOut:
    return UserOut.of(await users.get(user_id))


@router.patch(
    "/{user_id}",
    operation_id="users_update",
    summary="Change an account's name, role or disabled flag (admin)",
    responses=problem_responses(401, 403, 404, 422),
)
async def update_user(
    user_id: str, body: UserAdminUpdate, admin: AdminUser, users: UserServiceDep
) -> UserOut:
    changes = body.model_dump(exclude_none=True)
    return UserOut.of(await users.admin_update(admin, user_id, changes))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_delete",
    summary="Delete an account and its sessions (admin)",
    responses=problem_responses(401, 403, 404),
)
async def delete_user(user_id: str, admin: AdminUser, users: UserServiceDep) -> None:
    await users.admin_delete(admin, user_id)


# -- another account's sessions and keys (admin: the console's user page) -----------------

UserId = Annotated[str, Path(max_length=64)]


async def managed_account(user_id: UserId, _: AdminPerson, users: UserServiceDep) -> str:
    """The id of the account an admin acts on, in its one spelling (404 when none)."""
    return str((await users.get(user_id)).id)


ManagedAccount = Annotated[str, Depends(managed_account)]


@router.get(
    "/{user_id}/sessions",
    operation_id="users_list_sessions_of",
    summary="An account's signed-in devices (admin)",
    responses=problem_responses(401, 403, 404),
)
async def list_sessions_of(
    account: ManagedAccount, admin: AdminPerson, auth: AuthServiceDep
) -> SessionList:
    return _sessions(await auth.list_sessions(account), admin)


@router.post(
    "/{user_id}/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_logout_all",
    summary="Sign an account out everywhere: every session and access token (admin)",
    description="Its API keys keep working: revoke them one by one.",
    responses=problem_responses(401, 403, 404),
)
async def logout_all_of(account: ManagedAccount, auth: AuthServiceDep) -> None:
    await auth.logout_all(account)


@router.delete(
    "/{user_id}/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_revoke_session_of",
    summary="Sign one of an account's devices out (admin)",
    responses=problem_responses(401, 403, 404),
)
async def revoke_session_of(
    account: ManagedAccount,
    session_id: Annotated[str, Path(max_length=64)],
    auth: AuthServiceDep,
) -> None:
    await auth.revoke_session(account, session_id)


@router.get(
    "/{user_id}/api-keys",
    operation_id="users_list_api_keys_of",
    summary="An account's API keys, without their secrets (admin)",
    responses=problem_responses(401, 403, 404),
)
async def list_api_keys_of(account: ManagedAccount, auth: AuthServiceDep) -> ApiKeyList:
    return _api_keys(await auth.list_api_keys(account))


@router.delete(
    "/{user_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_revoke_api_key_of",
    summary="Revoke one of an account's API keys (admin)",
    responses=problem_responses(401, 403, 404),
)
async def revoke_api_key_of(
    account: ManagedAccount,
    key_id: Annotated[str, Path(max_length=64)],
    auth: AuthServiceDep,
) -> None:
    await auth.revoke_api_key(account, key_id)

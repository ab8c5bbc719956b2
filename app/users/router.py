"""HTTP endpoints of /v1/users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from app.auth.schemas import TokenPair
from app.deps import AdminUser, CurrentUser, UserServiceDep, no_store
from app.errors import problem_responses
from app.strict_json import StrictJSONRoute
from app.users.schemas import (
    AccountDeletion,
    MeUpdate,
    PageLimit,
    PasswordChange,
    UserAdminUpdate,
    UserOut,
    UserPage,
)

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
    description="A new email needs `current_password`.",
    responses=problem_responses(401, 409, 422, 429),
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
    responses=problem_responses(401, 422, 429),
    dependencies=[Depends(no_store)],
)
async def change_password(
    body: PasswordChange, me: CurrentUser, users: UserServiceDep
) -> TokenPair:
    return await users.change_password(
        me, current_password=body.current_password, new_password=body.new_password
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_delete_me",
    summary="Delete the caller's account, its sessions and its documents",
    description="Needs `current_password` in the body.",
    responses=problem_responses(401, 422, 429),
)
async def delete_me(body: AccountDeletion, me: CurrentUser, users: UserServiceDep) -> None:
    await users.delete_me(me, current_password=body.current_password)


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

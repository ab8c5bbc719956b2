"""Business rules for user accounts: profile, password change, deletion, admin management."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.accounts.api_keys import ApiKeyRepository
from app.accounts.auth_schemas import Email, TokenPair
from app.accounts.auth_service import AuthService, email_taken, refuse_api_key
from app.accounts.lifecycle import AccountLifecycle
from app.accounts.models import Role, User
from app.accounts.passwords import PasswordHasher
from app.accounts.principal import Principal
from app.accounts.session_repository import SessionRepository
from app.accounts.user_repository import EmailTakenError, UserRepository, UsersImported
from app.clock import Clock
from app.db.ids import canonical_id
from app.errors import ErrorCode, FieldError, Forbidden, NotFound, ValidationFailed
from app.pagination import CursorCodec

_CURSOR_SCOPE = "users"


def user_not_found(user_id: str) -> NotFound:
    return NotFound(f"User {user_id} does not exist", code=ErrorCode.USER_NOT_FOUND)


class UserService:
    def __init__(
        self,
        *,
        users: UserRepository,
        sessions: SessionRepository,
        auth: AuthService,
        hasher: PasswordHasher,
        cursors: CursorCodec,
        clock: Clock,
        on_delete: Callable[[str], Awaitable[object]] | None = None,
        lifecycle: AccountLifecycle | None = None,
        api_keys: ApiKeyRepository | None = None,
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.auth = auth
        self.hasher = hasher
        self.cursors = cursors
        self.clock = clock
        # Removes what the account owns elsewhere (its documents): deletion means all of it.
        self.on_delete = on_delete
        self.lifecycle = lifecycle
        self.api_keys = api_keys

    async def get(self, user_id: str) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise user_not_found(user_id)
        return user

    async def get_many(self, user_ids: list[str]) -> dict[str, User]:
        """The existing users among `user_ids`, by id (other domains name members)."""
        return {str(user.id): user for user in await self.users.get_many(user_ids)}

    async def _update(self, user_id: str, changes: dict[str, Any], *, bump: bool = False) -> User:
        try:
            user = await self.users.update(
                user_id, changes, now=self.clock(), bump_token_version=bump
            )
        except EmailTakenError:
            raise email_taken(str(changes.get("email"))) from None
        if user is None:
            raise user_not_found(user_id)
        return user

    # -- the caller's own account ----------------------------------------------------------

    async def update_me(
        self, me: Principal, changes: dict[str, Any], *, current_password: str | None = None
    ) -> User:
        """Change the caller's name or email; a new email needs the current password, starts
        unverified (a verification mail goes to it) and the old address is told."""
        old_email = None
        if "email" in changes:
            user = await self.get(me.id)
            if changes["email"] != user.email:
                refuse_api_key(me, "change the email")
                await self.auth.confirm_password(user, current_password, me)
                old_email = user.email
                changes = {**changes, "email_verified": False}
        updated = await self._update(me.id, changes)
        if old_email is not None and self.lifecycle is not None:
            await self.lifecycle.email_changed(updated, old_email)
        return updated

    async def change_password(
        self, me: Principal, *, current_password: str, new_password: str
    ) -> TokenPair:
        """Set a new password, end every session and access token, and start a fresh session."""
        user = await self.get(me.id)
        await self.auth.confirm_password(user, current_password, me)
        self.auth.check_password_policy(new_password, field="new_password")
        new_hash = await self.hasher.hash(new_password)
        # The new session keeps how this one signed in (a second factor stays proven).
        current = await self.sessions.get(me.session_id) if me.session_id else None
        user = await self._update(me.id, {"password_hash": new_hash}, bump=True)
        await self.sessions.revoke_all_for_user(me.id, now=self.clock())
        return await self.auth.start_session(
            user, method=current.method if current is not None else "password"
        )

    async def delete_me(self, me: Principal, *, current_password: str | None) -> None:
        await self.auth.confirm_password(await self.get(me.id), current_password, me)
        await self.delete(me.id)

    async def delete(self, user_id: str) -> None:
        # Documents record their owner's id in lower case.
        user_id = canonical_id(user_id)
        if not await self.users.delete(user_id):
            raise user_not_found(user_id)
        await self.sessions.delete_all_for_user(user_id)
        if self.api_keys is not None:
            await self.api_keys.delete_all_for_user(user_id)
        if self.lifecycle is not None:
            await self.lifecycle.tokens.delete_for_user(user_id)
        if self.on_delete is not None:
            await self.on_delete(user_id)

    # -- admin -----------------------------------------------------------------------------

    async def list_page(
        self, *, query: str | None, cursor: str | None, limit: int
    ) -> tuple[list[User], str | None]:
        scope = f"{_CURSOR_SCOPE}:{query or ''}"
        after = str(self.cursors.decode(cursor, scope=scope)) if cursor else None
        users = await self.users.find_page(query=query, after=after, limit=limit + 1)
        next_cursor = None
        if len(users) > limit:
            users = users[:limit]
            next_cursor = self.cursors.encode(str(users[-1].id), scope=scope)
        return users, next_cursor

    async def admin_update(self, actor: Principal, user_id: str, changes: dict[str, Any]) -> User:
        user_id = canonical_id(user_id)
        if user_id == actor.id and ({"role", "disabled"} & changes.keys()):
            raise Forbidden("Admins cannot change their own role or disable themselves")
        # A role change or disabling must take effect on live tokens at once.
        bump = bool({"role", "disabled"} & changes.keys())
        return await self._update(user_id, changes, bump=bump)

    async def admin_promote(self, user_id: str) -> User:
        """Make an account an enabled admin (operator scripts; no acting admin needed)."""
        user_id = canonical_id(user_id)
        return await self._update(user_id, {"role": Role.ADMIN, "disabled": False}, bump=True)

    async def admin_delete(self, actor: Principal, user_id: str) -> None:
        user_id = canonical_id(user_id)
        if user_id == actor.id:
            raise Forbidden("Admins delete their own account with DELETE /v1/users/me")
        await self.delete(user_id)

    # -- restore (scripts.restore) ----------------------------------------------------------

    async def import_users(self, users: list[User]) -> UsersImported:
        """Insert exported accounts as they were: ids, password hashes, roles, timestamps.

        Emails are normalised and validated as the API does, so imported accounts sign in
        like any other and stay unique; ids that exist are skipped, and so are emails that
        another account here has (listed in the result). Each account starts with token
        version 0 and no sessions: its owner signs in again with the same password.
        """
        errors: list[FieldError] = []
        ready: list[User] = []
        for index, user in enumerate(users):
            try:
                email = _EMAIL.validate_python(user.email)
            except ValidationError as exc:
                field, msg = "email", str(exc.errors()[0]["msg"])
            else:
                if user.id is None:
                    field, msg = "id", "Field required"
                elif user.password_hash is not None and not user.password_hash.startswith(
                    "$argon2"
                ):
                    field, msg = "password_hash", "Not an argon2 hash (as scripts.export writes)"
                else:
                    ready.append(user.model_copy(update={"email": email, "token_version": 0}))
                    continue
            errors.append(FieldError(loc=[index, field], msg=msg, type="value_error"))
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValidationFailed(
                f"Account {first.loc[0]} is not valid: {first.loc[1]}: {first.msg}{more}",
                errors=errors,
            )
        return await self.users.insert_many_as_is(ready)


_EMAIL: TypeAdapter[str] = TypeAdapter(Email)

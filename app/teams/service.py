"""Business rules of teams: who may see, change, join and leave them.

Roles: exactly one `owner` (who may do everything and leaves only after transferring
ownership), `admin`s (rename, invite, change roles and remove members, but not other
admins), `member`s, and any custom role name an app gives (`editor`, `billing`...), which
rules match with `@team.role`. People join only by accepting an invitation mailed to
their address. A team is invisible to non-members: every route answers 404 for it,
site admins included (a team is its members' business).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from app.accounts.models import User
from app.accounts.principal import Principal
from app.accounts.ratelimit import RateLimiter
from app.accounts.user_service import UserService
from app.clock import Clock
from app.config import Settings
from app.db.change_feed import ReadCache
from app.errors import AppError, BadRequest, Conflict, ErrorCode, Forbidden, NotFound
from app.mail.outbox import OutboxMessage
from app.mail.templates import render
from app.mail.worker import Composed
from app.teams.repository import Invitation, Member, Team, TeamRepository, new_id

INVITATION_MAIL = "team_invitation"
OWNER, ADMIN, MEMBER = "owner", "admin", "member"
MANAGERS = frozenset({OWNER, ADMIN})


class OwnerMustTransfer(AppError):
    code, status = ErrorCode.OWNER_MUST_TRANSFER, 409


class TeamLimitReached(AppError):
    code, status = ErrorCode.TEAM_LIMIT_REACHED, 409


def team_not_found(team_id: str) -> NotFound:
    return NotFound(f"Team {team_id} does not exist", code=ErrorCode.TEAM_NOT_FOUND)


def _invalid_invitation() -> BadRequest:
    return BadRequest(
        "The invitation is not valid (unknown, used, revoked or expired); ask for a new one",
        code=ErrorCode.INVALID_TOKEN,
    )


def _role(team: Team, recorded: str, user_id: str) -> str:
    """The owner is whoever the team names (a transfer cut short leaves roles to fix)."""
    if team.owner_id == user_id:
        return OWNER
    return ADMIN if recorded == OWNER else recorded


@dataclass(frozen=True, slots=True)
class Membership:
    """A team as one of its members sees it."""

    team: Team
    role: str


@dataclass(frozen=True, slots=True)
class MemberView:
    member: Member
    name: str
    email: str | None  # shown to the team's owner and admins only


class TeamService:
    def __init__(
        self,
        *,
        repository: TeamRepository,
        users: UserService,
        settings: Settings,
        clock: Clock,
        queue_mail: Callable[[str, str, dict[str, str]], Awaitable[None]],
        limiter: RateLimiter,
        roles: ReadCache[str, dict[str, str]] | None = None,
    ) -> None:
        # Each user's teams and roles, read by access rules on every request that needs
        # them; the change feed forgets an entry when a membership or team changes.
        self.roles = roles
        self.limiter = limiter
        self.repository = repository
        self.users = users
        self.settings = settings
        self.clock = clock
        self.queue_mail = queue_mail

    # -- reading -----------------------------------------------------------------------------

    async def _membership(self, caller: Principal, team_id: str) -> Membership:
        member = await self.repository.member(team_id, caller.id)
        team = await self.repository.get(team_id) if member is not None else None
        if member is None or team is None:
            raise team_not_found(team_id)
        return Membership(team, _role(team, member.role, caller.id))

    async def _managed(self, caller: Principal, team_id: str) -> Membership:
        mine = await self._membership(caller, team_id)
        if mine.role not in MANAGERS:
            raise Forbidden(f"Only the owner and admins of team {team_id} do this")
        return mine

    async def get(self, caller: Principal, team_id: str) -> Membership:
        return await self._membership(caller, team_id)

    async def mine(self, caller: Principal) -> list[Membership]:
        roles = await self.repository.memberships(caller.id)
        teams = await self.repository.get_many(list(roles))
        return [Membership(team, _role(team, roles[team.id], caller.id)) for team in teams]

    async def roles_of(self, user_id: str) -> dict[str, str]:
        """The user's teams and their role in each (what rules know as @user.teams and
        @team.role)."""

        async def load() -> dict[str, str]:
            recorded = await self.repository.memberships(user_id)
            teams = await self.repository.get_many(list(recorded))
            return {team.id: _role(team, recorded[team.id], user_id) for team in teams}

        if self.roles is None:
            return await load()
        return await self.roles.load(user_id, load)

    async def members(self, caller: Principal, team_id: str) -> list[MemberView]:
        mine = await self._membership(caller, team_id)
        members = await self.repository.members_of(team_id, limit=self.settings.team_max_members)
        people = await self.users.get_many([m.user_id for m in members])
        views = []
        for member in members:
            person = people.get(member.user_id)
            if person is None:
                continue  # deleted meanwhile; its membership goes with it
            email = person.email if mine.role in MANAGERS else None
            views.append(MemberView(member, person.name, email))
        return views

    # -- changing ----------------------------------------------------------------------------

    # Each limit is checked before the write (the usual refusal, nothing changed) and again
    # after it, counting the write itself: requests racing past the first check see each
    # other there, and each one over the limit takes its own write back. A race may refuse
    # one that would have fit (try again); the limit is never left exceeded.

    def _too_many_teams(self) -> TeamLimitReached:
        return TeamLimitReached(
            f"An account belongs to at most {self.settings.teams_max_per_user} teams "
            "(TEAMS_MAX_PER_USER); leave one first"
        )

    def _too_many_members(self, team_id: str) -> TeamLimitReached:
        limit = self.settings.team_max_members
        return TeamLimitReached(f"Team {team_id} has its {limit} members (TEAM_MAX_MEMBERS)")

    def _too_many_invitations(self) -> TeamLimitReached:
        return TeamLimitReached(
            f"A team has at most {self.settings.team_max_invitations} pending invitations "
            "(TEAM_MAX_INVITATIONS); revoke some first"
        )

    async def _check_room(self, user_id: str, *, joined: bool = False) -> None:
        """Room for one more team (`joined`: counting the one just joined)."""
        held = await self.repository.count_memberships(user_id)
        if held > self.settings.teams_max_per_user - (0 if joined else 1):
            raise self._too_many_teams()

    async def create(self, caller: Principal, name: str) -> Membership:
        await self._check_room(caller.id)
        now = self.clock()
        team = Team(
            id=new_id("team"), name=name, owner_id=caller.id, created_at=now, updated_at=now
        )
        await self.repository.create(team, now=now)
        try:
            await self._check_room(caller.id, joined=True)
        except TeamLimitReached:
            await self.repository.delete(team.id)
            raise
        return Membership(team, OWNER)

    async def rename(self, caller: Principal, team_id: str, name: str) -> Membership:
        mine = await self._managed(caller, team_id)
        team = await self.repository.rename(team_id, name, now=self.clock())
        if team is None:
            raise team_not_found(team_id)
        return Membership(team, mine.role)

    async def delete(self, caller: Principal, team_id: str) -> None:
        mine = await self._membership(caller, team_id)
        if mine.role != OWNER:
            raise Forbidden(f"Only the owner deletes team {team_id}")
        await self.repository.delete(team_id)

    async def _target(self, team_id: str, user_id: str) -> Member:
        member = await self.repository.member(team_id, user_id)
        if member is None:
            raise NotFound(
                f"User {user_id} is not a member of team {team_id}",
                code=ErrorCode.MEMBER_NOT_FOUND,
            )
        return member

    async def set_role(
        self, caller: Principal, team_id: str, user_id: str, role: str
    ) -> MemberView:
        mine = await self._managed(caller, team_id)
        target = await self._target(team_id, user_id)
        theirs = _role(mine.team, target.role, user_id)
        if role == OWNER or theirs == OWNER:
            raise OwnerMustTransfer(
                "Ownership changes hands only by POST /v1/teams/{team_id}/transfer"
            )
        if mine.role != OWNER and ADMIN in (role, theirs):
            raise Forbidden("Only the owner makes or unmakes admins")
        await self.repository.set_role(team_id, user_id, role)
        person = (await self.users.get_many([user_id])).get(user_id)
        return MemberView(
            Member(team_id, user_id, role, target.joined_at),
            person.name if person else "",
            person.email if person else None,
        )

    async def remove(self, caller: Principal, team_id: str, user_id: str) -> None:
        """Remove a member, or leave when `user_id` is the caller's own."""
        mine = await self._membership(caller, team_id)
        if user_id != caller.id and mine.role not in MANAGERS:
            raise Forbidden(f"Only the owner and admins of team {team_id} remove members")
        target = await self._target(team_id, user_id)
        theirs = _role(mine.team, target.role, user_id)
        if theirs == OWNER:
            raise OwnerMustTransfer(
                "The owner leaves only after transferring ownership "
                "(POST /v1/teams/{team_id}/transfer), or deletes the team"
            )
        if user_id != caller.id and mine.role != OWNER and theirs == ADMIN:
            raise Forbidden("Only the owner removes admins")
        await self.repository.remove_member(team_id, user_id)

    async def transfer(self, caller: Principal, team_id: str, user_id: str) -> Membership:
        mine = await self._membership(caller, team_id)
        if mine.role != OWNER:
            raise Forbidden(f"Only the owner transfers team {team_id}")
        if user_id == caller.id:
            return mine
        await self._target(team_id, user_id)
        # The team's owner_id decides who owns it (one atomic write); the member records'
        # roles follow it.
        if not await self.repository.set_owner(team_id, user_id, was=caller.id, now=self.clock()):
            raise Conflict(f"Team {team_id} changed owner meanwhile", code=ErrorCode.WRITE_CONFLICT)
        if not await self.repository.set_role(team_id, user_id, OWNER):
            # They left between the check and the switch: ownership comes back.
            await self.repository.set_owner(team_id, caller.id, was=user_id, now=self.clock())
            await self._target(team_id, user_id)  # raises member_not_found
        await self.repository.set_role(team_id, caller.id, ADMIN)
        return Membership(await self.repository.get(team_id) or mine.team, ADMIN)

    async def forget_user(self, user_id: str) -> None:
        """Account deletion: the teams it owned go (with their memberships and
        invitations), and it leaves every other team."""
        for team_id in await self.repository.owned_by(user_id):
            await self.repository.delete(team_id)
        await self.repository.remove_user(user_id)

    # -- invitations -------------------------------------------------------------------------

    async def invite(self, caller: Principal, team_id: str, email: str, role: str) -> Invitation:
        mine = await self._managed(caller, team_id)
        if role == OWNER:
            raise OwnerMustTransfer("Invite as admin or member; ownership moves by transfer")
        if role == ADMIN and mine.role != OWNER:
            raise Forbidden("Only the owner invites admins")
        now = self.clock()
        # Invitations are mail to any address: bounded per sender and per recipient, so
        # a team admin cannot turn Docstore into a mail cannon (invite, revoke, repeat).
        settings = self.settings
        await self.limiter.hit(
            "invitation", caller.id, limit=settings.rate_limit_invitations_per_user, now=now
        )
        await self.limiter.hit(
            "invitation-to", email, limit=settings.rate_limit_invitations_per_address, now=now
        )
        limit = self.settings.team_max_invitations
        if await self.repository.count_invitations(team_id, now=now) >= limit:
            raise self._too_many_invitations()
        invitation = Invitation(
            id=new_id("inv"),
            team_id=team_id,
            email=email,
            role=role,
            invited_by=caller.id,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.team_invitation_ttl_seconds),
        )
        # One pending invitation per address: a new one (another role, say) replaces it.
        await self.repository.revoke_for(team_id, email)
        await self.repository.invite(invitation)
        if await self.repository.count_invitations(team_id, now=now) > limit:
            await self.repository.revoke(team_id, invitation.id)
            raise self._too_many_invitations()
        await self.queue_mail(INVITATION_MAIL, email, {"invitation_id": invitation.id})
        return invitation

    async def invitations(self, caller: Principal, team_id: str) -> list[Invitation]:
        await self._managed(caller, team_id)
        return await self.repository.invitations_of(team_id, now=self.clock())

    async def revoke(self, caller: Principal, team_id: str, invitation_id: str) -> None:
        await self._managed(caller, team_id)
        if not await self.repository.revoke(team_id, invitation_id):
            raise NotFound(
                f"Invitation {invitation_id} is not pending for team {team_id}",
                code=ErrorCode.INVITATION_NOT_FOUND,
            )

    async def accept(self, caller: Principal, token: str) -> Membership:
        invitation = await self.repository.by_token(token, now=self.clock())
        if invitation is None:
            raise _invalid_invitation()
        me: User = await self.users.get(caller.id)
        if me.email != invitation.email:
            raise Forbidden(
                "This invitation was sent to another address: sign in with that account"
            )
        team = await self.repository.get(invitation.team_id)
        if team is None:
            raise _invalid_invitation()
        joining = await self.repository.member(team.id, caller.id) is None
        if joining:
            await self._check_room(caller.id)
            if await self.repository.count_members(team.id) >= self.settings.team_max_members:
                raise self._too_many_members(team.id)
        if not await self._inviter_may_still(team, invitation):
            raise _invalid_invitation()
        if not await self.repository.consume(invitation.id, token):
            raise _invalid_invitation()  # used by a concurrent request
        await self.repository.add_member(team.id, caller.id, invitation.role, now=self.clock())
        if joining:
            try:
                await self._check_room(caller.id, joined=True)
                if await self.repository.count_members(team.id) > self.settings.team_max_members:
                    raise self._too_many_members(team.id)
            except TeamLimitReached:
                # Out again, and the invitation back as it was: it may be accepted later.
                await self.repository.remove_member(team.id, caller.id)
                await self.repository.invite(invitation)
                await self.repository.set_token(invitation.id, token)
                raise
        current = await self.repository.get(team.id)
        member = await self.repository.member(team.id, caller.id)
        if current is None or member is None:  # the team was deleted meanwhile
            await self.repository.remove_member(team.id, caller.id)
            raise _invalid_invitation()
        return Membership(current, _role(current, member.role, caller.id))

    async def _inviter_may_still(self, team: Team, invitation: Invitation) -> bool:
        """An invitation stands for its sender: removed or demoted, their invitations lapse."""
        sender = await self.repository.member(team.id, invitation.invited_by)
        if sender is None:
            return False
        role = _role(team, sender.role, invitation.invited_by)
        return role == OWNER or (role == ADMIN and invitation.role != ADMIN)

    async def compose(self, message: OutboxMessage) -> Composed | None:
        """The invitation mail, with a fresh single-use token (None: revoked meanwhile)."""
        invitation = await self.repository.invitation(message.params.get("invitation_id", ""))
        team = await self.repository.get(invitation.team_id) if invitation else None
        if invitation is None or team is None:
            return None
        token = secrets.token_urlsafe(32)
        await self.repository.set_token(invitation.id, token)
        inviter = (await self.users.get_many([invitation.invited_by])).get(invitation.invited_by)
        ttl = self.settings.team_invitation_ttl_seconds
        base = self.settings.public_url.rstrip("/")
        values = {
            "app_name": self.settings.app_name,
            "email": invitation.email,
            "team": team.name,
            "inviter": inviter.name if inviter else "Someone",
            "role": invitation.role,
            "link": f"{base}/accept-invitation?token={quote(token)}",
            "days": str(max(1, ttl // 86400)),
        }
        subject, text, html = render(INVITATION_MAIL, values, self.settings.mail_templates_dir)
        kept = invitation.id

        async def undo() -> None:
            await self.repository.set_token(kept, None)

        return Composed(subject=subject, text=text, html=html, undo=undo)

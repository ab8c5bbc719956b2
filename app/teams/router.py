"""HTTP endpoints of /v1/teams: teams, members, invitations, ownership transfer."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.http.deps import CurrentUser, TeamServiceDep
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute
from app.teams.schemas import (
    InvitationAccept,
    InvitationIn,
    InvitationList,
    InvitationOut,
    MemberList,
    MemberOut,
    RoleChange,
    TeamIn,
    TeamList,
    TeamOut,
    Transfer,
)

router = APIRouter(prefix="/v1/teams", tags=["teams"], route_class=StrictJSONRoute)
# Not a member: 404, as if the team did not exist (site admins included).
_TEAM = problem_responses(401, 404)
_MANAGED = problem_responses(401, 403, 404, 409, 422)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="teams_create",
    summary="Create a team; you are its owner",
    responses=problem_responses(401, 409, 422),
)
async def create_team(
    body: TeamIn, caller: CurrentUser, teams: TeamServiceDep, response: Response
) -> TeamOut:
    membership = await teams.create(caller, body.name)
    response.headers["Location"] = f"/v1/teams/{membership.team.id}"
    return TeamOut.of(membership)


@router.get(
    "",
    operation_id="teams_list",
    summary="The teams you belong to, with your role in each",
    responses=problem_responses(401),
)
async def list_teams(caller: CurrentUser, teams: TeamServiceDep) -> TeamList:
    return TeamList(items=[TeamOut.of(m) for m in await teams.mine(caller)])


@router.post(
    "/invitations/accept",
    operation_id="teams_accept_invitation",
    summary="Join a team with the token of an invitation mailed to your address",
    responses=problem_responses(400, 401, 403, 409, 422),
)
async def accept_invitation(
    body: InvitationAccept, caller: CurrentUser, teams: TeamServiceDep
) -> TeamOut:
    return TeamOut.of(await teams.accept(caller, body.token))


@router.get(
    "/{team_id}",
    operation_id="teams_get",
    summary="A team you belong to",
    responses=_TEAM,
)
async def get_team(team_id: str, caller: CurrentUser, teams: TeamServiceDep) -> TeamOut:
    return TeamOut.of(await teams.get(caller, team_id))


@router.patch(
    "/{team_id}",
    operation_id="teams_update",
    summary="Rename a team (owner, admins)",
    responses=_MANAGED,
)
async def update_team(
    team_id: str, body: TeamIn, caller: CurrentUser, teams: TeamServiceDep
) -> TeamOut:
    return TeamOut.of(await teams.rename(caller, team_id, body.name))


@router.delete(
    "/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="teams_delete",
    summary="Delete a team, its memberships and invitations (owner)",
    responses=problem_responses(401, 403, 404),
)
async def delete_team(team_id: str, caller: CurrentUser, teams: TeamServiceDep) -> None:
    await teams.delete(caller, team_id)


@router.get(
    "/{team_id}/members",
    operation_id="teams_list_members",
    summary="A team's members and their roles (emails for the owner and admins)",
    responses=_TEAM,
)
async def list_members(team_id: str, caller: CurrentUser, teams: TeamServiceDep) -> MemberList:
    return MemberList(items=[MemberOut.of(v) for v in await teams.members(caller, team_id)])


@router.patch(
    "/{team_id}/members/{user_id}",
    operation_id="teams_update_member",
    summary="Change a member's role (owner, admins; admins are made by the owner)",
    responses=_MANAGED,
)
async def update_member(
    team_id: str, user_id: str, body: RoleChange, caller: CurrentUser, teams: TeamServiceDep
) -> MemberOut:
    return MemberOut.of(await teams.set_role(caller, team_id, user_id, body.role))


@router.delete(
    "/{team_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="teams_remove_member",
    summary="Remove a member (owner, admins), or leave: your own user id",
    responses=problem_responses(401, 403, 404, 409),
)
async def remove_member(
    team_id: str, user_id: str, caller: CurrentUser, teams: TeamServiceDep
) -> None:
    await teams.remove(caller, team_id, user_id)


@router.post(
    "/{team_id}/transfer",
    operation_id="teams_transfer",
    summary="Make another member the owner; you become an admin (owner)",
    description="409 `write_conflict` when the team changed owner meanwhile (another "
    "transfer came first): read the team again before retrying.",
    responses=_MANAGED,
)
async def transfer_team(
    team_id: str, body: Transfer, caller: CurrentUser, teams: TeamServiceDep
) -> TeamOut:
    return TeamOut.of(await teams.transfer(caller, team_id, body.user_id))


@router.post(
    "/{team_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    operation_id="teams_invite",
    summary="Invite someone by email (owner, admins); they accept with the mailed link",
    responses=_MANAGED,
)
async def invite(
    team_id: str, body: InvitationIn, caller: CurrentUser, teams: TeamServiceDep
) -> InvitationOut:
    return InvitationOut.of(await teams.invite(caller, team_id, body.email, body.role))


@router.get(
    "/{team_id}/invitations",
    operation_id="teams_list_invitations",
    summary="Pending invitations (owner, admins)",
    responses=problem_responses(401, 403, 404),
)
async def list_invitations(
    team_id: str, caller: CurrentUser, teams: TeamServiceDep
) -> InvitationList:
    items = await teams.invitations(caller, team_id)
    return InvitationList(items=[InvitationOut.of(i) for i in items])


@router.delete(
    "/{team_id}/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="teams_revoke_invitation",
    summary="Revoke a pending invitation (owner, admins)",
    responses=problem_responses(401, 403, 404),
)
async def revoke_invitation(
    team_id: str, invitation_id: str, caller: CurrentUser, teams: TeamServiceDep
) -> None:
    await teams.revoke(caller, team_id, invitation_id)

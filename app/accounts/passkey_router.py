"""HTTP endpoints of passkeys: /v1/users/me/passkeys (register, list, remove) and
/v1/auth/passkey (sign in), /v1/auth/mfa/passkey-options (as a second factor)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from app.accounts.auth_schemas import (
    MfaPasskeyOptionsRequest,
    PasskeyOptions,
    PasskeySignIn,
    TokenPair,
)
from app.accounts.passkeys import Options, Passkey
from app.accounts.user_schemas import (
    LinkReauthentication,
    PasskeyList,
    PasskeyOut,
    PasskeyRegistration,
)
from app.http.deps import ClientDep, MfaServiceDep, PasskeyServiceDep, Person, no_store
from app.http.problems import problem_responses
from app.http.strict_route import StrictJSONRoute

router = APIRouter(prefix="/v1/users/me/passkeys", tags=["users"], route_class=StrictJSONRoute)
options_router = APIRouter(prefix="/v1/users/me", tags=["users"], route_class=StrictJSONRoute)
auth_router = APIRouter(
    prefix="/v1/auth",
    tags=["auth"],
    route_class=StrictJSONRoute,
    dependencies=[Depends(no_store)],
)


def _options(options: Options) -> PasskeyOptions:
    return PasskeyOptions(challenge_id=options.challenge_id, options=options.options)


def _out(passkey: Passkey) -> PasskeyOut:
    return PasskeyOut.model_validate(asdict(passkey))


@options_router.post(
    "/passkey-options",
    operation_id="users_passkey_options",
    summary="Start registering a passkey: options for navigator.credentials.create",
    description="Needs `current_password` when the account has one, and with two-step "
    "sign-in on a current `code`: a passkey is a lasting way in. The options (resident "
    "key and user verification required) are valid for 5 minutes, once.",
    responses=problem_responses(401, 403, 409, 422, 429),
)
async def registration_options(
    body: LinkReauthentication, me: Person, passkeys: PasskeyServiceDep, mfa: MfaServiceDep
) -> PasskeyOptions:
    await mfa.reauthenticate(me, body.current_password, body.code)
    return _options(await passkeys.registration_options(me))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="users_passkey_register",
    summary="Finish registering a passkey with the browser's answer",
    description="401 `passkey_invalid` when the answer does not verify (another origin "
    "or site, no user verification, a used or expired challenge).",
    responses=problem_responses(401, 403, 409, 422),
)
async def register(
    body: PasskeyRegistration, me: Person, passkeys: PasskeyServiceDep
) -> PasskeyOut:
    credential = body.credential.model_dump(exclude_none=True)
    return _out(await passkeys.register(me, body.challenge_id, credential, body.name))


@router.get(
    "",
    operation_id="users_passkey_list",
    summary="The caller's passkeys",
    responses=problem_responses(401, 403),
)
async def list_passkeys(me: Person, passkeys: PasskeyServiceDep) -> PasskeyList:
    return PasskeyList(items=[_out(p) for p in await passkeys.of_user(me)])


@router.delete(
    "/{passkey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_passkey_remove",
    summary="Remove a passkey",
    description="409 `last_sign_in_method` when it is the account's only way to sign in.",
    responses=problem_responses(401, 403, 404, 409),
)
async def remove(
    passkey_id: Annotated[str, Path(max_length=64)], me: Person, passkeys: PasskeyServiceDep
) -> None:
    await passkeys.remove(me, passkey_id)


@auth_router.post(
    "/passkey/options",
    operation_id="auth_passkey_options",
    summary="Start a passkey sign-in: options for navigator.credentials.get",
    description="Usernameless: the browser offers the site's passkeys. Valid 5 minutes, once.",
    responses=problem_responses(429),
)
async def sign_in_options(passkeys: PasskeyServiceDep, client: ClientDep) -> PasskeyOptions:
    return _options(await passkeys.sign_in_options(client))


@auth_router.post(
    "/passkey",
    operation_id="auth_passkey",
    summary="Sign in with a passkey",
    description="A passkey verifies its user (PIN, biometric): it is both factors, so no "
    "`mfa_required` follows even with two-step sign-in on. 401 `passkey_invalid` when the "
    "answer does not verify.",
    responses=problem_responses(401, 403, 422, 429),
)
async def sign_in(body: PasskeySignIn, passkeys: PasskeyServiceDep, client: ClientDep) -> TokenPair:
    credential = body.credential.model_dump(exclude_none=True)
    return await passkeys.sign_in(body.challenge_id, credential, client)


@auth_router.post(
    "/mfa/passkey-options",
    operation_id="auth_mfa_passkey_options",
    summary="Options for answering a two-step sign-in with a passkey",
    description="Then `POST /v1/auth/mfa/verify` with `{mfa_token, challenge_id, "
    "credential}`. 404 `passkey_not_found` when the account has none.",
    responses=problem_responses(401, 404, 422),
)
async def mfa_options(body: MfaPasskeyOptionsRequest, mfa: MfaServiceDep) -> PasskeyOptions:
    return _options(await mfa.passkey_options(body.mfa_token))

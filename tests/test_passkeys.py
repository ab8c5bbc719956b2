"""Passkey errors without a browser (issue 22): answers that do not verify are 401
`passkey_invalid` whatever their shape, limits hold, the last way in stays."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from typing import Any

import cbor2
import httpx
import pytest
from bson import ObjectId

from app.accounts.models import User
from app.clock import utc_now
from app.config import Settings
from app.container import Container
from tests.support.accounts import PASSWORD, MakeAccount
from tests.support.apps import shared_settings
from tests.support.problems import assert_problem


@pytest.fixture
def settings(database_url: str) -> Settings:
    return shared_settings(database_url, public_url="https://app.example", passkeys_max_per_user=2)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_registration(challenge: str, public_key: Any) -> dict[str, Any]:
    """A registration answer for `challenge` from the right origin, with user presence
    and verification flags, whose public key is whatever CBOR we like."""
    client_data = json.dumps(
        {"type": "webauthn.create", "challenge": challenge, "origin": "https://app.example"}
    ).encode()
    credential_id = b"forged-credential"
    auth_data = (
        hashlib.sha256(b"app.example").digest()
        + bytes([0x45])  # user present, user verified, attested credential data
        + struct.pack(">I", 0)
        + bytes(16)
        + struct.pack(">H", len(credential_id))
        + credential_id
        + cbor2.dumps(public_key)
    )
    attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
    return {
        "id": b64(credential_id),
        "rawId": b64(credential_id),
        "type": "public-key",
        "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation)},
    }


async def options_for(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    started = await client.post(
        "/v1/users/me/passkey-options", json={"current_password": PASSWORD}, headers=headers
    )
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    assert body["options"]["rp"]["id"] == "app.example"
    assert body["options"]["authenticatorSelection"]["userVerification"] == "required"
    return body


@pytest.mark.parametrize(
    "public_key",
    [[1, 2, 3], {1: 2, 3: -7, -1: 1, -2: b"x", -3: b"y"}, "not a key"],
    ids=["cbor-list", "point-off-curve", "cbor-string"],
)
async def test_hostile_registrations_are_refused_not_errors(
    client: httpx.AsyncClient, make_account: MakeAccount, public_key: Any
) -> None:
    account = await make_account()
    started = await options_for(client, account.headers)
    answer = forged_registration(started["options"]["challenge"], public_key)
    refused = await client.post(
        "/v1/users/me/passkeys",
        json={"challenge_id": started["challenge_id"], "credential": answer},
        headers=account.headers,
    )
    assert_problem(refused, 401, "passkey_invalid")
    assert (await client.get("/v1/users/me/passkeys", headers=account.headers)).json() == {
        "items": []
    }


async def test_a_challenge_is_for_its_account_and_works_once(
    client: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    owner, other = await make_account(), await make_account()
    started = await options_for(client, owner.headers)
    answer = forged_registration(started["options"]["challenge"], [1])
    body = {"challenge_id": started["challenge_id"], "credential": answer}
    taken = await client.post("/v1/users/me/passkeys", json=body, headers=other.headers)
    assert_problem(taken, 401, "passkey_invalid")
    # Spent by that try: the owner must ask for new options.
    spent = await client.post("/v1/users/me/passkeys", json=body, headers=owner.headers)
    assert_problem(spent, 401, "passkey_invalid")
    signing_in = await client.post(
        "/v1/auth/passkey",
        json={
            "challenge_id": "made-up",
            "credential": {
                "id": "AAAA",
                "rawId": "AAAA",
                "type": "public-key",
                "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
            },
        },
    )
    assert_problem(signing_in, 401, "passkey_invalid")


async def stored_passkey(container: Container, user_id: str, name: str) -> str:
    passkey_id = ObjectId()
    await container.passkeys.repository.insert(
        {
            "_id": passkey_id,
            "user_id": user_id,
            "credential_id": b64(name.encode()),
            "public_key": b"\x01",
            "sign_count": 0,
            "name": name,
            "created_at": utc_now(),
        }
    )
    return str(passkey_id)


async def test_passkeys_per_account_are_limited(
    client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    account = await make_account()
    for name in ("one", "two"):
        await stored_passkey(container, account.id, name)
    full = await client.post(
        "/v1/users/me/passkey-options",
        json={"current_password": PASSWORD},
        headers=account.headers,
    )
    assert_problem(full, 409, "passkey_limit_reached")


async def passwordless(container: Container, email: str) -> tuple[User, dict[str, str]]:
    """An account without a password (made by a provider or a passkey), signed in."""
    now = utc_now()
    user = await container.users.insert(User(email=email, name="K", created_at=now, updated_at=now))
    tokens = await container.auth.start_session(user, method="passkey")
    return user, {"Authorization": f"Bearer {tokens.access_token}"}


async def test_the_last_passkey_of_an_account_without_a_password_stays(
    client: httpx.AsyncClient, container: Container
) -> None:
    user, headers = await passwordless(container, "keys-only@example.com")
    only = await stored_passkey(container, str(user.id), "only")
    refused = await client.delete(f"/v1/users/me/passkeys/{only}", headers=headers)
    assert_problem(refused, 409, "last_sign_in_method")
    spare = await stored_passkey(container, str(user.id), "spare")
    assert (
        await client.delete(f"/v1/users/me/passkeys/{only}", headers=headers)
    ).status_code == 204
    assert_problem(
        await client.delete(f"/v1/users/me/passkeys/{spare}", headers=headers),
        409,
        "last_sign_in_method",
    )
    assert_problem(
        await client.delete(f"/v1/users/me/passkeys/{only}", headers=headers),
        404,
        "passkey_not_found",
    )


async def test_removing_two_last_ways_in_at_once_leaves_one(
    client: httpx.AsyncClient, container: Container
) -> None:
    """Each removal checks that another way in remains; two at once must not both pass."""
    user, headers = await passwordless(container, "two-keys@example.com")
    first = await stored_passkey(container, str(user.id), "first")
    second = await stored_passkey(container, str(user.id), "second")
    answers = await asyncio.gather(
        client.delete(f"/v1/users/me/passkeys/{first}", headers=headers),
        client.delete(f"/v1/users/me/passkeys/{second}", headers=headers),
    )
    assert sorted(a.status_code for a in answers) in ([204, 409], [409, 409])
    left = (await client.get("/v1/users/me/passkeys", headers=headers)).json()["items"]
    assert len(left) >= 1

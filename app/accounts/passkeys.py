"""Passkeys (WebAuthn, checked by py_webauthn): register one, sign in with one (a first
factor that is also a second: the authenticator verifies its user), or answer a
two-step sign-in's challenge with one.

Every ceremony starts with options holding a random challenge that the server keeps
(once, for a few minutes, taken atomically); the browser's answer must sign it, from an
allowed origin, for this relying party, with user verification. Sign-in is usernameless:
the passkey names its account (the user handle is the account id). The signature count
is kept; a counter that goes backwards (a cloned authenticator) is refused by py_webauthn.
Checks run in a worker thread: a hostile attestation (certificate chains) costs CPU.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from app.accounts.auth_schemas import TokenPair
from app.accounts.auth_service import AuthService, ClientInfo
from app.accounts.models import User
from app.accounts.principal import Principal
from app.accounts.user_repository import UserRepository
from app.accounts.ways_in import OwnedRecords, remove_way_in
from app.clock import Clock
from app.config import Settings
from app.db.client import Db, insert_new
from app.errors import AppError, Conflict, ErrorCode, Forbidden, NotFound

T = TypeVar("T")
PASSKEYS = "passkeys"
CHALLENGES = "webauthn_challenges"
CHALLENGE_TTL_SECONDS = 300
TIMEOUT_MS = 120_000


class PasskeyInvalid(AppError):
    code, status = ErrorCode.PASSKEY_INVALID, 401


@dataclass(frozen=True, slots=True)
class Passkey:
    id: str
    user_id: str
    credential_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Passkey:
        return cls(
            id=str(raw["_id"]),
            user_id=raw["user_id"],
            credential_id=raw["credential_id"],
            name=raw["name"],
            created_at=raw["created_at"],
            last_used_at=raw.get("last_used_at"),
            backed_up=bool(raw.get("backed_up")),
        )


@dataclass(frozen=True, slots=True)
class Options:
    """A ceremony's options for the browser, and the id that names its challenge."""

    challenge_id: str
    options: dict[str, Any]


class PasskeyRepository(OwnedRecords):
    def __init__(self, db: Db) -> None:
        self.collection = db[PASSKEYS]
        self.challenges = db[CHALLENGES]

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("credential_id", ASCENDING)], name="credential", unique=True),
                IndexModel([("user_id", ASCENDING)], name="by_user"),
            ]
        )
        await self.challenges.create_indexes(
            [IndexModel([("expires_at", ASCENDING)], name="expiry", expireAfterSeconds=0)]
        )

    async def for_user(self, user_id: str) -> list[dict[str, Any]]:
        cursor = self.collection.find({"user_id": user_id}).sort("created_at", ASCENDING)
        return [raw async for raw in cursor]

    async def count_for_user(self, user_id: str) -> int:
        return await self.collection.count_documents({"user_id": user_id})

    async def by_credential(self, credential_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"credential_id": credential_id})

    async def insert(self, raw: dict[str, Any]) -> bool:
        try:
            await self.collection.insert_one(raw)
        except DuplicateKeyError:
            return False
        return True

    async def used(self, raw: dict[str, Any], sign_count: int, now: datetime) -> bool:
        """Record a use; False when another use with the same count won (a replay)."""
        result = await self.collection.find_one_and_update(
            {"_id": raw["_id"], "sign_count": raw["sign_count"]},
            {"$set": {"sign_count": sign_count, "last_used_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return result is not None

    async def delete_for_user(self, user_id: str) -> None:
        await self.collection.delete_many({"user_id": user_id})

    async def raw_for_users(self, user_ids: list[str]) -> list[dict[str, Any]]:
        return [raw async for raw in self.collection.find({"user_id": {"$in": user_ids}})]

    async def restore(self, raws: list[dict[str, Any]]) -> None:
        """Insert records from a backup; ones already here (same key) are left alone."""
        await insert_new(self.collection, raws)

    async def put_challenge(self, record: dict[str, Any], *, expires_at: datetime) -> str:
        challenge_id = secrets.token_urlsafe(24)
        await self.challenges.insert_one({"_id": challenge_id, **record, "expires_at": expires_at})
        return challenge_id

    async def take_challenge(self, challenge_id: str, *, now: datetime) -> dict[str, Any] | None:
        return await self.challenges.find_one_and_delete(
            {"_id": challenge_id, "expires_at": {"$gt": now}}
        )


def _descriptor(raw: dict[str, Any]) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in raw.get("transports", []):
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(raw["credential_id"]), transports=transports or None
    )


def _verified_registration(**kwargs: Any) -> VerifiedRegistration:
    """py_webauthn's check, plus: the public key must load (an attestation of format
    "none" signs nothing with it, so a key that could never verify would be stored)."""
    verified = verify_registration_response(**kwargs)
    decoded_public_key_to_cryptography(decode_credential_public_key(verified.credential_public_key))
    return verified


def _invalid(what: str) -> PasskeyInvalid:
    return PasskeyInvalid(f"The passkey's answer does not verify: {what}")


class PasskeyService:
    def __init__(
        self,
        *,
        settings: Settings,
        repository: PasskeyRepository,
        users: UserRepository,
        auth: AuthService,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.users = users
        self.auth = auth
        self.clock = clock
        self.rp_id = settings.passkey_rp_id
        self.origins = settings.passkey_origins
        # Counts the account's ways to sign in (password, identities, passkeys), for the
        # rule that the last one stays (set by the container).
        self.methods_left: Callable[[User], Awaitable[int]] | None = None

    def _expiry(self) -> datetime:
        return self.clock() + timedelta(seconds=CHALLENGE_TTL_SECONDS)

    async def _check(
        self, check: Callable[..., T], credential: dict[str, Any], challenge: bytes, **more: Any
    ) -> T:
        """A py_webauthn check of the browser's answer, in a worker thread; whatever it
        raises (its own errors, and others such as IndexError on hostile CBOR) is 401."""
        try:
            return await asyncio.to_thread(
                check,
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                require_user_verification=True,
                **more,
            )
        except Exception as exc:
            raise _invalid(str(exc) or type(exc).__name__) from None

    # -- registration ----------------------------------------------------------------------

    async def registration_options(self, me: Principal) -> Options:
        user = await self.users.get(me.id)
        if user is None:
            raise NotFound("The account no longer exists", code=ErrorCode.USER_NOT_FOUND)
        existing = await self.repository.for_user(me.id)
        if len(existing) >= self.settings.passkeys_max_per_user:
            raise Conflict(
                f"An account has at most {self.settings.passkeys_max_per_user} passkeys: "
                "remove one first",
                code=ErrorCode.PASSKEY_LIMIT_REACHED,
            )
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.settings.app_name,
            user_id=ObjectId(me.id).binary,
            user_name=user.email,
            user_display_name=user.name,
            exclude_credentials=[_descriptor(raw) for raw in existing],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            timeout=TIMEOUT_MS,
        )
        challenge_id = await self.repository.put_challenge(
            {"purpose": "register", "user_id": me.id, "challenge": options.challenge},
            expires_at=self._expiry(),
        )
        return Options(challenge_id, json.loads(options_to_json(options)))

    async def register(
        self, me: Principal, challenge_id: str, credential: dict[str, Any], name: str | None
    ) -> Passkey:
        now = self.clock()
        record = await self.repository.take_challenge(challenge_id, now=now)
        if record is None or record["purpose"] != "register" or record["user_id"] != me.id:
            raise _invalid("its challenge is unknown, used or expired: ask for new options")
        verified = await self._check(_verified_registration, credential, record["challenge"])
        transports = credential.get("response", {}).get("transports") or []
        raw = {
            "_id": ObjectId(),
            "user_id": me.id,
            "credential_id": bytes_to_base64url(verified.credential_id),
            "public_key": verified.credential_public_key,
            "sign_count": verified.sign_count,
            "transports": [t for t in transports if isinstance(t, str)][:10],
            "backed_up": verified.credential_backed_up,
            "name": name or "Passkey",
            "created_at": now,
            "last_used_at": None,
        }
        if not await self.repository.insert(raw):
            raise Conflict("This passkey is registered already", code=ErrorCode.PASSKEY_INVALID)
        return Passkey.of(raw)

    async def of_user(self, me: Principal) -> list[Passkey]:
        return [Passkey.of(raw) for raw in await self.repository.for_user(me.id)]

    async def remove(self, me: Principal, passkey_id: str) -> None:
        user = await self.users.get(me.id)
        missing = NotFound("No such passkey", code=ErrorCode.PASSKEY_NOT_FOUND)
        if user is None:
            raise missing
        await remove_way_in(
            self.repository,
            user,
            passkey_id,
            methods_left=self.methods_left,
            missing=missing,
            last=Conflict(
                "This passkey is the account's only way to sign in: set a password (password "
                "reset) or link a provider first",
                code=ErrorCode.LAST_SIGN_IN_METHOD,
            ),
        )

    # -- assertions ------------------------------------------------------------------------

    async def _assertion_options(
        self, record: dict[str, Any], allow: list[dict[str, Any]]
    ) -> Options:
        options = generate_authentication_options(
            rp_id=self.rp_id,
            allow_credentials=[_descriptor(raw) for raw in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
            timeout=TIMEOUT_MS,
        )
        challenge_id = await self.repository.put_challenge(
            {**record, "challenge": options.challenge}, expires_at=self._expiry()
        )
        return Options(challenge_id, json.loads(options_to_json(options)))

    async def sign_in_options(self, client: ClientInfo) -> Options:
        """Usernameless: the browser offers whichever passkey of this site the person picks."""
        await self.auth.limit_sign_in(client)
        return await self._assertion_options({"purpose": "sign_in", "user_id": None}, [])

    async def second_factor_options(self, user: User) -> Options:
        user_id = str(user.id)
        keys = await self.repository.for_user(user_id)
        return await self._assertion_options({"purpose": "mfa", "user_id": user_id}, keys)

    async def _verify(
        self, challenge_id: str, credential: dict[str, Any], *, purpose: str
    ) -> dict[str, Any]:
        """The stored passkey whose signature answers the challenge (count advanced)."""
        now = self.clock()
        record = await self.repository.take_challenge(challenge_id, now=now)
        if record is None or record["purpose"] != purpose:
            raise _invalid("its challenge is unknown, used or expired: ask for new options")
        credential_id = credential.get("rawId") or credential.get("id")
        raw = (
            await self.repository.by_credential(credential_id)
            if isinstance(credential_id, str)
            else None
        )
        if raw is None or (record["user_id"] is not None and raw["user_id"] != record["user_id"]):
            raise _invalid("this passkey is not registered here (it may have been removed)")
        handle = credential.get("response", {}).get("userHandle")
        if handle and handle != bytes_to_base64url(ObjectId(raw["user_id"]).binary):
            raise _invalid("the passkey names another account")
        verified = await self._check(
            verify_authentication_response,
            credential,
            record["challenge"],
            credential_public_key=raw["public_key"],
            credential_current_sign_count=raw["sign_count"],
        )
        if not await self.repository.used(raw, verified.new_sign_count, now):
            raise _invalid("it was used at the same moment elsewhere")
        return raw

    async def sign_in(
        self, challenge_id: str, credential: dict[str, Any], client: ClientInfo
    ) -> TokenPair:
        await self.auth.limit_sign_in(client)
        raw = await self._verify(challenge_id, credential, purpose="sign_in")
        user = await self.users.get(raw["user_id"])
        if user is None:
            raise _invalid("its account no longer exists")
        if user.disabled:
            raise Forbidden("This account is disabled")
        # A passkey with user verification is two factors in one (something held, and a
        # PIN or biometric): no second challenge, even with TOTP on.
        return await self.auth.start_session(user, client, method="passkey")

    async def second_factor(
        self, user: User, challenge_id: str, credential: dict[str, Any]
    ) -> bool:
        try:
            raw = await self._verify(challenge_id, credential, purpose="mfa")
        except PasskeyInvalid:
            return False
        return bool(raw["user_id"] == str(user.id))

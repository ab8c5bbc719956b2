"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import email_validator
from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StringConstraints

from app.accounts.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_FLOOR

# email-validator refuses special-use domains (RFC 6761: .test, .local, .localhost...).
# They are valid addresses, and development and test setups use them; the contract says
# `format: email`, which they meet.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()


def _normalise_email(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Email = Annotated[EmailStr, BeforeValidator(_normalise_email)]
# Any stored password may be presented; the maximum bounds hashing cost.
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
# A password being set: at least the documented floor. PASSWORD_MIN_LENGTH may raise the
# minimum (the service checks it), never lower it below what the contract promises.
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_FLOOR,
        max_length=MAX_PASSWORD_LENGTH,
        description=f"At least {MIN_PASSWORD_FLOOR} characters (more if the server requires)",
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
            ]
        },
    )
    email: Email
    password: NewPassword
    name: Name


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        },
    )
    email: Email
    password: Password


class RefreshRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"refresh_token": "6650c2aa0000000000000001.q8R…"}]},
    )
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str


# -- passkeys (WebAuthn Level 3 JSON, as PublicKeyCredential.toJSON() gives it) ----------

B64Url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*={0,2}$", max_length=32_768)]
ChallengeId = Annotated[str, Field(min_length=1, max_length=100)]


class _Credential(BaseModel):
    # Browsers add fields over time: unknown ones are ignored, the known ones bounded.
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,1400}$")]
    rawId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,1400}$")]
    type: Literal["public-key"]
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None
    clientExtensionResults: dict[str, Any] = Field(default_factory=dict, max_length=20)


class AttestationResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    clientDataJSON: B64Url
    attestationObject: B64Url
    transports: list[Annotated[str, Field(max_length=30)]] = Field(
        default_factory=list, max_length=10
    )


class AssertionResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    clientDataJSON: B64Url
    authenticatorData: B64Url
    signature: B64Url
    userHandle: B64Url | None = None


class RegistrationCredential(_Credential):
    """`navigator.credentials.create(...)`'s answer, as JSON."""

    response: AttestationResponse


class AssertionCredential(_Credential):
    """`navigator.credentials.get(...)`'s answer, as JSON."""

    response: AssertionResponse


class PasskeyOptions(BaseModel):
    challenge_id: str = Field(description="Send it back with the browser's answer")
    options: dict[str, Any] = Field(
        description="WebAuthn options JSON: pass it to PublicKeyCredential."
        "parseCreationOptionsFromJSON (registering) or parseRequestOptionsFromJSON "
        "(signing in), then navigator.credentials.create/get"
    )


class PasskeySignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: ChallengeId
    credential: AssertionCredential


class MfaPasskeyOptionsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: Annotated[str, Field(min_length=1, max_length=200)]


class MfaRequired(BaseModel):
    """The password was right and the account has a second factor: redeem `mfa_token`
    with a code at `POST /v1/auth/mfa/verify` for the token pair."""

    mfa_required: Literal[True] = True
    mfa_token: str
    methods: list[Literal["totp", "recovery_code", "passkey"]]
    expires_in: int = Field(description="Seconds until `mfa_token` expires")


class TotpVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: Annotated[str, Field(min_length=1, max_length=200)]
    code: Annotated[str, Field(min_length=1, max_length=12, description="The app's 6 digits")]


class RecoveryVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: Annotated[str, Field(min_length=1, max_length=200)]
    recovery_code: Annotated[str, Field(min_length=1, max_length=40)]


class PasskeyVerify(BaseModel):
    """A passkey as the second factor: options from `POST /v1/auth/mfa/passkey-options`."""

    model_config = ConfigDict(extra="forbid")
    mfa_token: Annotated[str, Field(min_length=1, max_length=200)]
    challenge_id: ChallengeId
    credential: AssertionCredential


MfaVerify = TotpVerify | RecoveryVerify | PasskeyVerify


class Accepted(BaseModel):
    """A request taken on: what happens next happens by mail."""

    detail: str


class EmailVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="The token from the link in the verification mail"
    )


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"email": "ada@example.com"}]}
    )
    email: Email


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="The token from the link in the reset mail"
    )
    new_password: NewPassword


# -- social sign-in (app/accounts/oauth.py) --------------------------------------------

CodeVerifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._~-]{43,128}$")]
CodeChallenge = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
IdToken = Annotated[str, Field(min_length=1, max_length=16_384, description="A compact JWT")]
Nonce = Annotated[str, Field(min_length=1, max_length=200)]


class OAuthProviderOut(BaseModel):
    name: str = Field(description="The `{provider}` of the sign-in routes")
    title: str = Field(description="For the button: Google, Apple, ...")
    id_token: bool = Field(description="Whether apps may sign in with the provider's ID token")


class OAuthProviderList(BaseModel):
    items: list[OAuthProviderOut]


class OAuthExchange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="The `code` the callback put in the frontend's URL (once, 2 minutes)"
    )
    code_verifier: CodeVerifier | None = Field(
        default=None,
        description="When the flow started with a `code_challenge`: its PKCE verifier",
    )


class IdTokenSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id_token: IdToken
    nonce: Nonce | None = Field(
        default=None,
        description="The raw nonce the app gave the provider's SDK (the token may carry "
        "it or its SHA-256); each nonce signs in once",
    )

"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

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


class MfaRequired(BaseModel):
    """The password was right and the account has a second factor: redeem `mfa_token`
    with a code at `POST /v1/auth/mfa/verify` for the token pair."""

    mfa_required: Literal[True] = True
    mfa_token: str
    methods: list[Literal["totp", "recovery_code"]]
    expires_in: int = Field(description="Seconds until `mfa_token` expires")


class TotpVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: Annotated[str, Field(min_length=1, max_length=200)]
    code: Annotated[str, Field(min_length=1, max_length=12, description="The app's 6 digits")]


class RecoveryVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: Annotated[str, Field(min_length=1, max_length=200)]
    recovery_code: Annotated[str, Field(min_length=1, max_length=40)]


MfaVerify = TotpVerify | RecoveryVerify


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

"""What clients see of user accounts, and what they may send."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.accounts.auth_schemas import Email, Name, NewPassword, Password, RegistrationCredential
from app.accounts.models import Role, User
from app.clock import Moment, Timestamp


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    disabled: bool
    email_verified: bool
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=str(user.id),
            email=user.email,
            name=user.name,
            role=user.role,
            disabled=user.disabled,
            email_verified=user.email_verified,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class MeUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Ada L."},
                {"email": "ada@example.org", "current_password": "correct horse battery"},
            ]
        },
    )
    name: Name | None = None
    email: Email | None = None
    current_password: Password | None = Field(
        default=None, description="Required to change the email"
    )


class AccountDeletion(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"current_password": "correct horse battery"}]},
    )
    current_password: Password


class Reauthentication(BaseModel):
    """The account's current password, for a change to how it signs in."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"current_password": "correct horse battery"}]},
    )
    current_password: Password


class SecondFactorChange(BaseModel):
    """The current password and a current code: what turning two-step sign-in off, or
    replacing the recovery codes, takes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"current_password": "correct horse battery", "code": "123456"}]
        },
    )
    current_password: Password
    code: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        default=None,
        description="The app's current code or a recovery code (which it uses up); needed "
        "once two-step sign-in is on",
    )


class TotpEnrolmentOut(BaseModel):
    """Add `secret` to an authenticator app (scan `qr_svg`, or open `otpauth_uri` on the
    device), then confirm a first code."""

    secret: str = Field(description="Base32, for typing in by hand")
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code, an SVG document")


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "123456"}]})
    code: Annotated[str, Field(min_length=1, max_length=12)]


class NewRecoveryCodes(BaseModel):
    """Single-use codes for when the authenticator is lost: shown once, keep them safe."""

    recovery_codes: list[str]


class MfaStatusOut(BaseModel):
    totp: bool = Field(description="Two-step sign-in with an authenticator app is on")
    recovery_codes_left: int


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"current_password": "correct horse battery", "new_password": "a new passphrase"}
            ]
        },
    )
    current_password: Password
    new_password: NewPassword


class UserAdminUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"role": "admin", "disabled": False}]}
    )
    name: Name | None = None
    role: Role | None = None
    disabled: bool | None = None
    email_verified: bool | None = None


PageLimit = Annotated[int, Field(ge=1, le=100, description="Page size, 1 to 100")]


SignInMethod = Literal[
    "password",
    "password+totp",
    "password+recovery_code",
    "password+passkey",
    "magic_link",
    "magic_link+totp",
    "magic_link+recovery_code",
    "magic_link+passkey",
    "oauth",
    "oauth+totp",
    "oauth+recovery_code",
    "oauth+passkey",
    "passkey",
]


class SessionOut(BaseModel):
    id: str
    created_at: Timestamp
    last_used_at: Timestamp
    user_agent: str | None = Field(description="The device's User-Agent when it signed in")
    address: str | None = Field(description="The client address it signed in from")
    current: bool = Field(description="The session of the access token of this request")
    method: SignInMethod = Field(description="How it signed in")
    provider: str | None = Field(
        default=None, description="For `oauth` sign-ins: the provider (OAUTH_PROVIDERS)"
    )


class SessionList(BaseModel):
    items: list[SessionOut]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "nightly import", "current_password": "correct horse battery"}]
        },
    )
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    expires_at: Moment | None = Field(
        default=None,
        description="When the key stops working (RFC 3339, in the future); none: until revoked",
    )
    current_password: Password = Field(
        description="A key outlives sessions: a stolen access token alone must not make one"
    )
    code: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        default=None,
        description="With two-step sign-in on: the app's current code or a recovery code",
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret (`dsk_...`), shown this once: store it now")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


# -- linked sign-ins (app/accounts/oauth.py) --------------------------------------------


class IdentityOut(BaseModel):
    id: str
    provider: str
    subject: str = Field(description="The provider's id for the person (`sub`)")
    email: str | None
    email_verified: bool = Field(description="As the provider said at the last sign-in")
    created_at: Timestamp
    last_used_at: Timestamp


class IdentityList(BaseModel):
    items: list[IdentityOut]


class LinkReauthentication(BaseModel):
    """A lasting way in needs the account's re-authentication."""

    model_config = ConfigDict(extra="forbid")
    current_password: Password | None = Field(
        default=None, description="Required when the account has a password"
    )
    code: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        default=None,
        description="With two-step sign-in on: the app's current code or a recovery code",
    )


class IdentityLinkIdToken(LinkReauthentication):
    id_token: Annotated[str, Field(min_length=1, max_length=16_384)]
    nonce: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class IdentityLinkStart(LinkReauthentication):
    redirect_uri: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="Where the browser returns (`?linked=<provider>` or `?error=`); "
        "allowed by OAUTH_REDIRECT_URLS"
    )
    state: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="Returned unchanged to `redirect_uri`"
    )


class AuthorizeUrl(BaseModel):
    url: str = Field(description="Send the browser here (a top-level navigation)")


# -- passkeys (app/accounts/passkeys.py) -----------------------------------------------


class PasskeyRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: Annotated[str, Field(min_length=1, max_length=100)]
    credential: RegistrationCredential
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = Field(default=None, description="To recognise it in the list (e.g. the device)")


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    backed_up: bool = Field(description="Synced by its provider (iCloud Keychain, Google)")


class PasskeyList(BaseModel):
    items: list[PasskeyOut]

"""Typed settings, read once from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from app.dev_secret import load_or_create_secret

MIN_PROD_SECRET_LENGTH = 32
# OWASP Password Storage Cheat Sheet, argon2id: m=47104 t=1, m=19456 t=2, m=12288 t=3,
# m=9216 t=4, m=7168 t=5 (KiB, passes); each is about 36 MiB-passes or more.
OWASP_MIN_MEMORY_KIB = 7168
OWASP_MIN_MEMORY_X_PASSES = 7168 * 5


OAuthPreset = Literal["google", "apple", "microsoft", "gitlab", "github"]
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class OAuthProviderConfig(BaseModel):
    """One sign-in provider of OAUTH_PROVIDERS (app/accounts/oauth_providers.py): a preset,
    or any OpenID Connect provider by its issuer URL."""

    model_config = ConfigDict(extra="forbid")

    preset: OAuthPreset | None = None
    # Any OpenID provider: discovery at {issuer}/.well-known/openid-configuration.
    issuer: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    # The web client (the redirect flow) and the native apps' client ids, which the
    # id-token route accepts as audiences (iOS, Android, a web One Tap button).
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: SecretStr | None = None
    native_client_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=500)]] = (
        Field(default_factory=list, max_length=20)
    )
    scopes: list[str] | None = Field(default=None, max_length=20)
    display_name: str | None = Field(default=None, max_length=100)
    # Microsoft: "common", "organizations", "consumers" or a tenant id.
    tenant: str = Field(default="common", pattern=r"^[A-Za-z0-9.-]{1,100}$")
    # Treat the provider's emails as verified though it does not say so (Microsoft Entra
    # sends no email_verified): only for a provider whose addresses you control.
    emails_verified: bool = False
    # The id-token route refuses tokens without a nonce (replay protection); false only for
    # a platform SDK that cannot pass one.
    require_nonce: bool = True
    # Apple: its client secret is a short-lived ES256 JWT made from a key; set these three
    # instead of client_secret and the server makes (and renews) it.
    apple_team_id: str | None = None
    apple_key_id: str | None = None
    apple_private_key: SecretStr | None = None
    # OAuth2 endpoints of a provider without discovery (GitHub Enterprise, tests).
    authorization_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s#]+$")
    token_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s#]+$")
    userinfo_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s#]+$")

    @model_validator(mode="after")
    def _complete(self) -> OAuthProviderConfig:
        if self.preset is None and self.issuer is None:
            raise ValueError("a provider needs a preset or an issuer URL")
        if self.preset == "github" and self.issuer is not None:
            raise ValueError("GitHub is OAuth2 without OpenID Connect: it takes no issuer")
        apple = (self.apple_team_id, self.apple_key_id, self.apple_private_key)
        if any(apple) and not all(apple):
            raise ValueError("apple_team_id, apple_key_id and apple_private_key go together")
        return self


class Settings(BaseSettings):
    """Every knob of the server. Environment variable names are the field names in upper case."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    env: Literal["dev", "prod"] = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    # uvicorn worker processes for `python -m app`; uvicorn's own variable name.
    web_concurrency: int = Field(default=1, ge=1, le=64)

    # Database. No URL means: start the embedded SecantusDB server in a child process.
    mongodb_url: str | None = None
    mongodb_db: str = "docstore"
    mongodb_timeout_ms: int = Field(default=3000, ge=100)
    query_max_time_ms: int = Field(default=5000, ge=10)
    data_dir: Path = Path(".data")
    # Keep callers' account state and collection declarations in memory, invalidated by a
    # change stream (app/db/change_feed.py). false: read them from MongoDB per request.
    read_cache: bool = True
    read_cache_max_entries: int = Field(default=10_000, ge=1)

    # Access tokens (JWT, HS256) and refresh sessions.
    # Unset in dev: a random key kept in DATA_DIR/jwt-secret (app/dev_secret.py).
    jwt_secret: str = ""
    jwt_issuer: str = "docstore"
    jwt_audience: str = "docstore-api"
    access_token_ttl_seconds: int = Field(default=900, ge=10)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)

    # Accounts.
    registration_enabled: bool = True
    password_min_length: int = Field(default=8, ge=8, le=1024)  # 8: the contract's floor
    # argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): one hash
    # takes one core for ~25 ms, so a login storm leaves the other cores to requests.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Password hashes computed at once per process; 0 means one less than the CPU count.
    argon2_max_concurrent: int = Field(default=0, ge=0, le=256)
    # Worker processes per server process for big document changes (app/documents/
    # offload.py), started on first use; 0 means one less than the CPU count (at least 1).
    work_processes: int = Field(default=0, ge=0, le=64)

    # Rate limits: attempts per window, counted in MongoDB so they hold across processes.
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    rate_limit_login_per_ip: int = Field(default=30, ge=1)
    # Per (account, address), and per account alone from addresses it never signed in from.
    rate_limit_login_per_account_address: int = Field(default=10, ge=1)
    rate_limit_login_per_account: int = Field(default=100, ge=1)
    rate_limit_register_per_ip: int = Field(default=10, ge=1)
    rate_limit_refresh_per_ip: int = Field(default=60, ge=1)
    # Current-password checks (password change, email change, account deletion).
    rate_limit_reauth_per_account: int = Field(default=10, ge=1)
    # Second-factor codes (TOTP or recovery) per account, and per sign-in challenge.
    rate_limit_mfa_per_account: int = Field(default=10, ge=1)
    mfa_max_attempts: int = Field(default=5, ge=1, le=20)
    mfa_max_per_day: int = Field(default=50, ge=1)
    mfa_challenge_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    # Documents.
    require_if_match: bool = False  # true: PUT/PATCH/DELETE without If-Match answer 428
    bulk_max_documents: int = Field(default=1000, ge=1, le=100_000)
    # Users and teams one document is shared with.
    document_max_shares: int = Field(default=100, ge=1, le=10_000)
    document_max_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024 - 4096)
    document_max_depth: int = Field(default=32, ge=2, le=100)
    # A schema dry run (POST /v1/collections/{name}/schema-check) reads at most this many
    # stored documents, in id order, and reports whether it saw them all.
    schema_check_max_documents: int = Field(default=10_000, ge=1, le=1_000_000)
    # An aggregation may make at most this many groups (more is 422 too_many_groups).
    aggregate_max_groups: int = Field(default=10_000, ge=1, le=1_000_000)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)

    # Realtime (server-sent events): streams per process and per user of a process,
    # events buffered for a slow reader before it is dropped, heartbeat interval (each
    # beat also re-checks that the stream's sign-in still holds).
    realtime_max_streams: int = Field(default=1000, ge=1, le=100_000)
    realtime_max_streams_per_user: int = Field(default=5, ge=1, le=10_000)
    # Anonymous streams per client address (IPv6: per /64) per process.
    realtime_max_streams_per_address: int = Field(default=20, ge=1, le=10_000)
    realtime_buffer_events: int = Field(default=256, ge=8, le=100_000)
    realtime_heartbeat_seconds: float = Field(default=15.0, ge=0.05, le=300)
    # A stream ends (reason `expired`) after this long; the client resumes from its last
    # event with a fresh ticket or token, so no stream outlives the sign-in checks for long.
    realtime_max_stream_seconds: float = Field(default=3600.0, ge=0.01, le=7 * 24 * 3600)

    # Files attached to documents (GridFS).
    file_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1, le=1 << 40)
    file_max_per_document: int = Field(default=100, ge=1, le=100_000)
    file_link_max_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)

    # HTTP.
    # Mail (verification, password reset). MAIL_URL: smtp://user:pass@host:587?starttls=true
    # or smtps://host:465; unset in dev: messages become DATA_DIR/mail/*.eml files.
    mail_url: SecretStr | None = None
    mail_from: str = Field(default="Docstore <no-reply@docstore.invalid>", min_length=3)
    mail_templates_dir: Path | None = None
    # The first retry of a failed delivery, then doubling (at most an hour between tries).
    mail_retry_seconds: float = Field(default=5.0, gt=0, le=3600)

    # Whether this server process also runs the background work: the mail outbox, the
    # change pump (webhook messages, document history; one process at a time leads) and
    # webhook deliveries. Off in API processes when `python -m app.worker` processes do it.
    background_jobs: bool = True

    # Webhooks (app/webhooks): targets on private, loopback or link-local addresses (and
    # http URLs) only when this is on (development, tests, a trusted private network).
    webhook_allow_private_targets: bool = False
    # One attempt's time limit (connect, send, answer).
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The first retry of a failed attempt, then doubling (at most an hour between tries).
    webhook_retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    # A message not delivered this long after it was queued is given up (failed).
    webhook_give_up_seconds: float = Field(default=3 * 24 * 3600, gt=0)
    # Messages each server process sends at once.
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    # After a secret rotation the previous secret signs too, this long.
    webhook_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    # History (collections declared with `history: true`): old versions are kept this
    # long, deleted documents wait in the trash (with their files) this long.
    history_retention_days: int = Field(default=90, ge=1, le=36500)
    trash_retention_days: int = Field(default=30, ge=1, le=36500)
    # The audit log's records are kept this long.
    audit_retention_days: int = Field(default=365, ge=1, le=36500)

    app_name: str = Field(default="Docstore", min_length=1, max_length=100)
    # The frontend: mail links go to {PUBLIC_URL}/verify-email?token=... and /reset-password.
    public_url: str = Field(default="http://localhost:5173", pattern=r"^https?://[^\s?#]+$")
    require_verified_email: bool = False
    verify_token_ttl_seconds: int = Field(default=2 * 24 * 3600, ge=60)
    # Teams: how many one user may belong to, members per team, pending invitations per
    # team, and how long an invitation stays valid.
    teams_max_per_user: int = Field(default=100, ge=1, le=10_000)
    team_max_members: int = Field(default=1000, ge=2, le=100_000)
    team_max_invitations: int = Field(default=100, ge=1, le=10_000)
    team_invitation_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # Invitation mails one account may send a window, and ones one address may receive.
    rate_limit_invitations_per_user: int = Field(default=20, ge=1)
    rate_limit_invitations_per_address: int = Field(default=3, ge=1)
    reset_token_ttl_seconds: int = Field(default=1800, ge=60)
    magic_link_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    # Keys sealing TOTP secrets (comma-separated, each 32+ characters): the first seals,
    # all open (rotation: put the new one first). Unset: a key derived from JWT_SECRET,
    # which then cannot be rotated without enrolled accounts needing recovery codes.
    mfa_encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # An account without a password (made by a provider or a passkey) confirms sensitive
    # changes with a sign-in this recent instead.
    reauth_max_age_seconds: int = Field(default=600, ge=60, le=86_400)
    # Admin rights only for sessions that signed in with a second factor (TOTP, recovery
    # code or passkey); admins need one to make API keys. Others act as plain users.
    admin_mfa_required: bool = False
    # Social sign-in (app/accounts/oauth.py). OAUTH_PROVIDERS is JSON: {"google":
    # {"preset": "google", "client_id": "...", "client_secret": "..."}, "corp": {"issuer":
    # "https://id.corp.example", "client_id": "..."}}. OAUTH_REDIRECT_URLS: the frontend
    # URLs (comma-separated, exact, query aside) the web flow may return to; empty: any
    # URL on PUBLIC_URL's origin.
    oauth_providers: dict[ProviderName, OAuthProviderConfig] = Field(default_factory=dict)
    oauth_redirect_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    oauth_flow_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    oauth_http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Passkeys (WebAuthn): the relying party id (a domain, default PUBLIC_URL's host) and
    # the origins allowed to use them (comma-separated; default PUBLIC_URL's origin; add
    # android:apk-key-hash:... for Android apps).
    webauthn_rp_id: str | None = Field(default=None, pattern=r"^[a-z0-9.-]{1,253}$")
    webauthn_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    passkeys_max_per_user: int = Field(default=20, ge=1, le=100)
    rate_limit_mail_per_account: int = Field(default=3, ge=1)  # reset/verify mails a window
    rate_limit_reset_per_ip: int = Field(default=10, ge=1)
    # The API's public base URL (https://api.example.com), named in the live contract's
    # `servers`; unset: the URL each request came in on.
    public_api_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Proxies (comma-separated addresses/networks, or *) whose X-Forwarded-For and
    # X-Forwarded-Proto are trusted. Empty: no forwarded header is trusted.
    forwarded_allow_ips: str = ""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"
    # Set: GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`. Unset: open.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, values: dict[str, object]) -> dict[str, object]:
        origins = values.get("cors_origins")
        if isinstance(origins, str):
            values["cors_origins"] = [o.strip() for o in origins.split(",") if o.strip()]
        passkey_origins = values.get("webauthn_origins")
        if isinstance(passkey_origins, str):
            values["webauthn_origins"] = [
                o.strip() for o in passkey_origins.split(",") if o.strip()
            ]
        mfa_keys = values.get("mfa_encryption_keys")
        if isinstance(mfa_keys, str):
            values["mfa_encryption_keys"] = [k.strip() for k in mfa_keys.split(",") if k.strip()]
        urls = values.get("oauth_redirect_urls")
        if isinstance(urls, str):
            values["oauth_redirect_urls"] = [u.strip() for u in urls.split(",") if u.strip()]
        return values

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "prod":
            if len(self.jwt_secret) < MIN_PROD_SECRET_LENGTH:
                raise ValueError(
                    "ENV=prod needs JWT_SECRET set to a random value of at least "
                    f"{MIN_PROD_SECRET_LENGTH} characters (e.g. `openssl rand -hex 32`)"
                )
            if not self.mongodb_url:
                raise ValueError(
                    "ENV=prod needs MONGODB_URL: the embedded database is for development only"
                )
            # OWASP's argon2id minimums trade memory for passes: 46 MiB x 1 ... 7 MiB x 5.
            if (
                self.argon2_memory_kib < OWASP_MIN_MEMORY_KIB
                or self.argon2_memory_kib * self.argon2_time_cost < OWASP_MIN_MEMORY_X_PASSES
            ):
                raise ValueError(
                    "ENV=prod needs argon2 parameters at least as strong as OWASP's minimums "
                    "(e.g. ARGON2_MEMORY_KIB=19456 with ARGON2_TIME_COST=2)"
                )
            if self.mail_url is None:
                raise ValueError(
                    "ENV=prod needs MAIL_URL (e.g. smtp://user:pass@smtp.example.com:587"
                    "?starttls=true): verification and password-reset mail must reach people"
                )
        return self

    @property
    def sealing_keys(self) -> tuple[str, ...]:
        """Key materials of the secrets sealed at rest (TOTP secrets, webhook signing
        secrets): MFA_ENCRYPTION_KEYS, the first of which seals, then JWT_SECRET."""
        return (*(key.get_secret_value() for key in self.mfa_encryption_keys), self.jwt_secret)

    @model_validator(mode="after")
    def _strong_mfa_keys(self) -> Settings:
        if any(
            len(k.get_secret_value()) < MIN_PROD_SECRET_LENGTH for k in self.mfa_encryption_keys
        ):
            raise ValueError(
                f"each MFA_ENCRYPTION_KEYS key needs at least {MIN_PROD_SECRET_LENGTH} "
                "characters (e.g. `openssl rand -hex 32`)"
            )
        return self

    @model_validator(mode="after")
    def _mail_url_is_smtp(self) -> Settings:
        if self.mail_url is not None:
            parts = urlsplit(self.mail_url.get_secret_value())
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError(
                    "MAIL_URL must look like smtp://user:pass@host:587?starttls=true or "
                    "smtps://user:pass@host:465"
                )
        return self

    @model_validator(mode="after")
    def _one_process_per_embedded_database(self) -> Settings:
        if self.web_concurrency > 1 and not self.mongodb_url:
            raise ValueError(
                "WEB_CONCURRENCY > 1 needs MONGODB_URL: each worker would start its own "
                "embedded database on the same data directory"
            )
        return self

    @property
    def passkey_rp_id(self) -> str:
        return self.webauthn_rp_id or (urlsplit(self.public_url).hostname or "localhost")

    @property
    def passkey_origins(self) -> list[str]:
        if self.webauthn_origins:
            return self.webauthn_origins
        parts = urlsplit(self.public_url)
        return [f"{parts.scheme}://{parts.netloc}"]

    @property
    def uses_embedded_database(self) -> bool:
        return not self.mongodb_url

    def with_signing_key(self) -> Settings:
        """These settings with `jwt_secret` filled in: in dev without JWT_SECRET, the
        random key kept under DATA_DIR (made on first use)."""
        if self.jwt_secret:
            return self
        return self.model_copy(update={"jwt_secret": load_or_create_secret(self.data_dir)})


class ConfigurationError(SystemExit):
    """A bad setting: exits with one line naming it and the fix (never its value, which
    may be a secret, and no traceback)."""


def describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"]).upper()
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment and `.env`; a bad one stops the process with
    `ConfigurationError`."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(
            f"docstore: bad setting: {describe(exc)} (fix it in the environment or .env)"
        ) from None
    except SettingsError as exc:
        raise ConfigurationError(
            f"docstore: bad setting: {exc} (fix it in the environment or .env)"
        ) from None

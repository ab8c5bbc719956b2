"""The project's one error type, its closed set of codes, and field errors.

Services raise `AppError` subclasses (or `AppError` with a code); routers never build
error responses. How they become RFC 9457 problem+json is the HTTP edge's business
(`app/http/problems.py`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class ErrorCode(StrEnum):
    """The closed set of machine-readable error codes. Clients switch on these."""

    VALIDATION_FAILED = "validation_failed"
    INVALID_FILTER = "invalid_filter"
    INVALID_SORT = "invalid_sort"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_FIELDS = "invalid_fields"
    BAD_REQUEST = "bad_request"
    NOT_AUTHENTICATED = "not_authenticated"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    INVALID_TOKEN = "invalid_token"  # a mailed verification/reset token: used, expired, unknown
    EMAIL_NOT_VERIFIED = "email_not_verified"
    API_KEY_NOT_ALLOWED = "api_key_not_allowed"
    MFA_REQUIRED = "mfa_required"  # a grant that cannot ask for the second factor
    MFA_CODE_INVALID = "mfa_code_invalid"  # wrong, used or expired TOTP/recovery code
    MFA_ALREADY_ENABLED = "mfa_already_enabled"
    MFA_NOT_ENABLED = "mfa_not_enabled"
    SESSION_NOT_FOUND = "session_not_found"
    API_KEY_NOT_FOUND = "api_key_not_found"
    FORBIDDEN = "forbidden"
    REGISTRATION_DISABLED = "registration_disabled"
    NOT_FOUND = "not_found"
    USER_NOT_FOUND = "user_not_found"
    COLLECTION_NOT_FOUND = "collection_not_found"
    DOCUMENT_NOT_FOUND = "document_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    EMAIL_TAKEN = "email_taken"
    COLLECTION_EXISTS = "collection_exists"
    DUPLICATE_KEY = "duplicate_key"
    WRITE_CONFLICT = "write_conflict"
    PRECONDITION_FAILED = "precondition_failed"
    PATCH_TEST_FAILED = "patch_test_failed"  # a JSON Patch test operation did not hold
    PATCH_CONFLICT = "patch_conflict"  # a JSON Patch path does not exist in the document
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    SCHEMA_VIOLATION = "schema_violation"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    PRECONDITION_REQUIRED = "precondition_required"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    DATABASE_UNAVAILABLE = "database_unavailable"
    TRANSACTIONS_UNAVAILABLE = "transactions_unavailable"
    QUERY_TIMEOUT = "query_timeout"
    REALTIME_UNAVAILABLE = "realtime_unavailable"
    TOO_MANY_STREAMS = "too_many_streams"
    INVALID_TICKET = "invalid_ticket"
    FILE_NOT_FOUND = "file_not_found"
    TOO_MANY_FILES = "too_many_files"
    CONTENT_TYPE_MISMATCH = "content_type_mismatch"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    INVALID_LINK = "invalid_link"
    UPLOAD_TIMED_OUT = "upload_timed_out"
    TEAM_NOT_FOUND = "team_not_found"
    MEMBER_NOT_FOUND = "member_not_found"
    INVITATION_NOT_FOUND = "invitation_not_found"
    OWNER_MUST_TRANSFER = "owner_must_transfer"  # the owner leaves only after a transfer
    TEAM_LIMIT_REACHED = "team_limit_reached"  # teams per user, members, invitations
    FIELD_FORBIDDEN = "field_forbidden"  # a field rule forbids reading or changing a field
    SHARE_NOT_FOUND = "share_not_found"
    SHARE_LIMIT_REACHED = "share_limit_reached"  # DOCUMENT_MAX_SHARES
    PROVIDER_NOT_FOUND = "provider_not_found"  # not in OAUTH_PROVIDERS
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # the provider could not be reached/read
    ID_TOKEN_INVALID = "id_token_invalid"  # signature, issuer, audience, expiry, nonce, replay
    OAUTH_STATE_INVALID = "oauth_state_invalid"  # unknown/used/expired state, other browser
    IDENTITY_NOT_LINKED = "identity_not_linked"  # the email has an account: sign in and link
    IDENTITY_IN_USE = "identity_in_use"  # linked to another account
    IDENTITY_NOT_FOUND = "identity_not_found"
    LAST_SIGN_IN_METHOD = "last_sign_in_method"  # unlinking would lock the account out
    PASSKEY_NOT_FOUND = "passkey_not_found"
    PASSKEY_INVALID = "passkey_invalid"  # a registration or assertion that does not verify
    PASSKEY_LIMIT_REACHED = "passkey_limit_reached"  # PASSKEYS_MAX_PER_USER
    REAUTHENTICATION_REQUIRED = "reauthentication_required"  # no password: sign in again
    MFA_SETUP_REQUIRED = "mfa_setup_required"  # ADMIN_MFA_REQUIRED: admin rights need MFA
    MAIL_NOT_FOUND = "mail_not_found"
    MAIL_NOT_RETRYABLE = "mail_not_retryable"  # only failed messages are sent again
    SCHEMA_REJECTS_DOCUMENTS = "schema_rejects_documents"  # a schema change, not forced
    TOO_MANY_GROUPS = "too_many_groups"  # an aggregation over AGGREGATE_MAX_GROUPS
    SEARCH_NOT_ENABLED = "search_not_enabled"  # ?search= on a collection without `search`
    REFERENCE_RESTRICTED = "reference_restricted"  # x-on-delete: restrict (or a huge cascade)
    REFERENCE_NOT_FOUND = "reference_not_found"  # an x-on-delete reference to nothing readable
    WEBHOOK_NOT_FOUND = "webhook_not_found"
    WEBHOOK_LIMIT_REACHED = "webhook_limit_reached"  # at most 100 webhooks
    DELIVERY_NOT_FOUND = "delivery_not_found"
    DELIVERY_PENDING = "delivery_pending"  # a redelivery of a message still queued
    VERSION_NOT_FOUND = "version_not_found"  # no such version of a document kept
    HISTORY_NOT_ENABLED = "history_not_enabled"  # versions/trash of a collection without history
    NOT_IN_TRASH = "not_in_trash"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class AppError(Exception):
    """An expected failure with a stable code. Subclasses fix the code and status.

    Everything an error says is data (code, status, field errors, `retry_after` in
    seconds); the HTTP edge (app/http/problems.py) turns it into headers and a body.
    """

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    status: int = 500

    def __init__(
        self,
        detail: str,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        errors: list[FieldError] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.errors = errors or []
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its fields (not its constructor's arguments, which subclasses narrow),
        # so an error raised in a worker process (app/documents/offload.py) arrives whole.
        return (
            _rebuild,
            (type(self), self.detail, self.code, self.status, self.errors, self.retry_after),
            dict(self.__dict__),  # what subclasses add (a 416's size) comes along
        )


def _rebuild(
    cls: type[AppError],
    detail: str,
    code: ErrorCode,
    status: int,
    errors: list[FieldError],
    retry_after: int | None,
) -> AppError:
    error = cls.__new__(cls)
    AppError.__init__(
        error, detail, code=code, status=status, errors=errors, retry_after=retry_after
    )
    return error


class BadRequest(AppError):
    code, status = ErrorCode.BAD_REQUEST, 400


class ValidationFailed(AppError):
    code, status = ErrorCode.VALIDATION_FAILED, 422


class Unauthorized(AppError):
    code, status = ErrorCode.NOT_AUTHENTICATED, 401

    def __init__(self, detail: str, *, code: ErrorCode = ErrorCode.NOT_AUTHENTICATED) -> None:
        super().__init__(detail, code=code)


class Forbidden(AppError):
    code, status = ErrorCode.FORBIDDEN, 403


class NotFound(AppError):
    code, status = ErrorCode.NOT_FOUND, 404


class Conflict(AppError):
    code, status = ErrorCode.DUPLICATE_KEY, 409


class RateLimited(AppError):
    code, status = ErrorCode.RATE_LIMITED, 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=max(1, retry_after))


class DatabaseUnavailable(AppError):
    code, status = ErrorCode.DATABASE_UNAVAILABLE, 503

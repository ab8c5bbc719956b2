"""The contract fuzzing of tests/test_fuzz*.py: the app under test (in process, signed in
as an admin) and the check every generated case goes through."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pymongo import MongoClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.accounts.models import Role
from app.accounts.passwords import PasswordHasher
from app.accounts.tokens import issue_access_token
from app.clock import utc_now
from app.main import create_app
from tests.support.accounts import PASSWORD
from tests.support.apps import make_settings

FUZZ_COLLECTION = "fuzz"
# The tags tests/test_fuzz_accounts.py (auth) and tests/test_fuzz_users.py take (54
# operations in one file were the suite's longest: 71 s of one worker); tests/test_fuzz.py
# takes the rest but PLATFORM_TAGS (tests/test_fuzz_platform.py).
AUTH_TAGS = "^auth$"
USER_TAGS = "^users$"
ACCOUNT_TAGS = "^(auth|users)$"
# Operations that take the account's current password (their bodies' current_password).
REAUTHENTICATED = {
    ("DELETE", "/v1/users/me"),
    ("PATCH", "/v1/users/me"),
    ("POST", "/v1/users/me/api-keys"),
    ("POST", "/v1/users/me/mfa/recovery-codes"),
    ("DELETE", "/v1/users/me/mfa/totp"),
    ("POST", "/v1/users/me/mfa/totp"),
    ("POST", "/v1/users/me/password"),
}
# Teams, webhooks and operators' routes: a third part, on a third worker.
PLATFORM_TAGS = "^(teams|webhooks|admin|ops)$"


@pytest.fixture(scope="module")
def fuzz_target(database_url: str) -> Iterator[tuple[Any, dict[str, str]]]:
    # Event streams end right after they open, so a 200 stream is a finished response.
    app_settings = make_settings(database_url, realtime_max_stream_seconds=0.01)
    client: MongoClient[dict[str, Any]] = MongoClient(database_url)
    db = client[app_settings.mongodb_db]
    now = utc_now()
    admin_id = (
        db["users"]
        .insert_one(
            {
                "email": f"fuzz-{uuid.uuid4().hex[:6]}@example.com",
                "name": "Fuzz",
                "password_hash": PasswordHasher(app_settings).hash_sync(PASSWORD),
                "role": Role.ADMIN.value,
                "disabled": False,
                "token_version": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        .inserted_id
    )
    token = issue_access_token(
        app_settings, user_id=str(admin_id), token_version=0, session_id=None, now=now
    )
    app = create_app(app_settings)
    try:
        yield app, {"Authorization": f"Bearer {token}"}
    finally:
        client.drop_database(app_settings.mongodb_db)
        client.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_target: tuple[Any, dict[str, str]]) -> Any:
    app, _ = fuzz_target
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Generation settings of every fuzz test. FUZZ_EXAMPLES (cases per operation) trades depth
# for time: 10 keeps `make test` inside its 5-minute budget (about 1,500 requests over 112
# operations; 15 took 45 s of two workers' time, and the suite's total swung past the
# budget on a noisy run); `FUZZ_EXAMPLES=200 make test` digs deeper before a release.
fuzz_settings = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


def honour_contract(case: Any, fuzz_target: tuple[Any, dict[str, str]]) -> None:
    """No 5xx, and the response matches what is documented."""
    _, headers = fuzz_target
    if "name" in (case.path_parameters or {}) and case.operation.path.startswith(
        "/v1/collections/{name}/documents"
    ):
        case.path_parameters["name"] = FUZZ_COLLECTION  # reach real documents, not only 404s
    excluded = []
    if case.operation.path.startswith("/v1/collections") and "documents" not in case.operation.path:
        # Index declarations have rules across items that JSON Schema cannot state (a path
        # twice as `x` and `-x`, two indexes with one name, the keys of a built-in index):
        # schema-valid bodies may get 422 validation_failed, which is still checked above.
        excluded.append(positive_data_acceptance)
    if case.operation.path.endswith("/aggregate"):
        # Names must differ across keys and metrics and a sort must name one of them, the
        # filter is the filter language, and fields a rule hides cannot be measured:
        # 400/403/422, documented, not a schema matter.
        excluded.append(positive_data_acceptance)
    if case.operation.path.endswith(("update", "/bulk-delete", "/v1/batch")) or (
        case.method.upper() == "PATCH" and case.operation.path.endswith("/{doc_id}")
    ):
        # Whether operators or a JSON Patch apply depends on the stored data (inc on a
        # string, a pointer to nothing) and on rules across operations (inc a and set a;
        # add needs a value); a bulk filter is the filter language: 400/409/422,
        # documented, not a schema matter.
        excluded.append(positive_data_acceptance)
    if "/files" in case.operation.path:
        # Whether a file exists, matches If-Match, a Range fits it, or the Content-Type is
        # a real media type depends on the stored file and on rules JSON Schema cannot
        # state: 404/412/415/416/422, documented, still checked above.
        excluded.append(positive_data_acceptance)
    if case.operation.path in (
        "/v1/auth/verify-email",
        "/v1/auth/password-reset",
        "/v1/auth/magic-link",
        "/v1/teams/invitations/accept",
    ):
        # A well-formed token is valid by schema, but only a mailed one is accepted (400
        # invalid_token otherwise, which is documented).
        excluded.append(positive_data_acceptance)
    if "/oauth/" in case.operation.path or "/identities/" in case.operation.path:
        # No sign-in provider is configured here (404 provider_not_found), and codes,
        # states and ID tokens are valid only when a provider issued them (400/401).
        excluded.append(positive_data_acceptance)
    if (case.query or {}).get("expand") is not None:
        # Only references the schema declares (x-ref) expand: 422 otherwise, documented.
        excluded.append(positive_data_acceptance)
    if (case.query or {}).get("search") is not None:
        # Only a collection that declares `search` fields can be searched (400
        # search_not_enabled otherwise, documented).
        excluded.append(positive_data_acceptance)
    if (case.query or {}).get("cursor") is not None:
        # A cursor is valid only when a list gave it (400 invalid_cursor, documented).
        excluded.append(positive_data_acceptance)
    if case.operation.path.startswith("/v1/webhooks") and case.method.upper() in ("POST", "PATCH"):
        # A target must be a public https URL (a name checked again at each send): 422
        # validation_failed for others, documented, not a schema matter.
        excluded.append(positive_data_acceptance)
    if (case.method.upper(), case.operation.path) in REAUTHENTICATED:
        # A schema-valid current_password is still not the account's (422 password
        # mismatch), and changing the email needs it (422 when absent): documented.
        excluded.append(positive_data_acceptance)
    if "passkey" in case.operation.path:
        # A schema-valid credential is still not a signature over a live challenge
        # (401 passkey_invalid), and options need re-authentication (422).
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers=headers, excluded_checks=excluded)


def contract_test(select: Callable[[Any], Any]) -> Callable[..., None]:
    """The fuzz test of the operations `select` keeps of the app's schema (a module of
    tests/test_fuzz*.py binds it to a `test_...` name and imports the fixtures)."""
    schema = select(schemathesis.pytest.from_fixture("api_schema"))

    @schema.parametrize()
    @fuzz_settings
    def test(case: Any, fuzz_target: tuple[Any, dict[str, str]]) -> None:
        honour_contract(case, fuzz_target)

    return test  # type: ignore[no-any-return]

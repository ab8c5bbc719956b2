"""Contract fuzzing: schemathesis drives every operation of the app's own OpenAPI, in
process, signed in as an admin: no 5xx, and every response matches what is documented.

Split by tag over four files, so the parts run on several workers at once: this file
takes documents, collections, files, history and realtime; tests/test_fuzz_accounts.py
the auth operations, tests/test_fuzz_users.py the users ones; tests/test_fuzz_platform.py
teams, webhooks and the operators' routes.
"""

from __future__ import annotations

from tests.support.fuzz import (  # noqa: F401  (module fixtures)
    ACCOUNT_TAGS,
    PLATFORM_TAGS,
    api_schema,
    contract_test,
    fuzz_target,
)

test_every_operation_honours_its_contract = contract_test(
    lambda schema: schema.exclude(tag_regex=ACCOUNT_TAGS).exclude(tag_regex=PLATFORM_TAGS)
)

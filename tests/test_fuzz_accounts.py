"""Contract fuzzing of the auth operations (a part of tests/test_fuzz.py, run on another
worker at the same time; the users operations are tests/test_fuzz_users.py)."""

from __future__ import annotations

from tests.support.fuzz import (  # noqa: F401  (module fixtures)
    AUTH_TAGS,
    api_schema,
    contract_test,
    fuzz_target,
)

test_every_auth_operation_honours_its_contract = contract_test(
    lambda schema: schema.include(tag_regex=AUTH_TAGS)
)

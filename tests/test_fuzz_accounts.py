"""Contract fuzzing of the auth and users operations (the other half of
tests/test_fuzz.py, run on another worker at the same time)."""

from __future__ import annotations

from tests.support.fuzz import (  # noqa: F401  (module fixtures)
    ACCOUNT_TAGS,
    api_schema,
    contract_test,
    fuzz_target,
)

test_every_account_operation_honours_its_contract = contract_test(
    lambda schema: schema.include(tag_regex=ACCOUNT_TAGS)
)

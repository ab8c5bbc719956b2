"""Contract fuzzing of the users operations (a part of tests/test_fuzz.py, run on another
worker at the same time)."""

from __future__ import annotations

from tests.support.fuzz import (  # noqa: F401  (module fixtures)
    USER_TAGS,
    api_schema,
    contract_test,
    fuzz_target,
)

test_every_users_operation_honours_its_contract = contract_test(
    lambda schema: schema.include(tag_regex=USER_TAGS)
)

"""Contract fuzzing of the teams, webhooks and operators' operations (a third part of
tests/test_fuzz.py, run on another worker at the same time)."""

from __future__ import annotations

from typing import Any

import schemathesis

from tests.support.fuzz import (  # noqa: F401  (module fixtures)
    PLATFORM_TAGS,
    api_schema,
    fuzz_settings,
    fuzz_target,
    honour_contract,
)

schema = schemathesis.pytest.from_fixture("api_schema").include(tag_regex=PLATFORM_TAGS)


@schema.parametrize()
@fuzz_settings
def test_every_platform_operation_honours_its_contract(
    case: Any,
    fuzz_target: tuple[Any, dict[str, str]],  # noqa: F811  (the fixture imported above)
) -> None:
    honour_contract(case, fuzz_target)

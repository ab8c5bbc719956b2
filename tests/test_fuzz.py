"""Contract fuzzing: schemathesis drives every operation of the app's own OpenAPI, in
process, signed in as an admin: no 5xx, and every response matches what is documented.

Split by tag over three files, so the parts run on three workers at once: this file
takes documents, collections, files, history and realtime; tests/test_fuzz_accounts.py
the auth and users operations; tests/test_fuzz_platform.py teams, webhooks and the
operators' routes.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from tests.support.fuzz import (  # noqa: F401  (module fixtures)
    ACCOUNT_TAGS,
    PLATFORM_TAGS,
    api_schema,
    fuzz_settings,
    fuzz_target,
    honour_contract,
)

schema = (
    schemathesis.pytest.from_fixture("api_schema")
    .exclude(tag_regex=ACCOUNT_TAGS)
    .exclude(tag_regex=PLATFORM_TAGS)
)


@schema.parametrize()
@fuzz_settings
def test_every_operation_honours_its_contract(
    case: Any,
    fuzz_target: tuple[Any, dict[str, str]],  # noqa: F811  (the fixture imported above)
) -> None:
    honour_contract(case, fuzz_target)

"""RFC 6902 JSON Patch on a document's `data` (PATCH with application/json-patch+json).

Pointers are relative to `data` (`/title`, `/tags/-`). The patch is applied by the
well-kept `jsonpatch` library to the version just read, all or nothing, and written like
any change (validated, version-conditioned, retried when another write came first).

Errors, following RFC 5789 §2.2: a malformed patch document is 422; a patch that cannot
apply to the document as it is (a failed `test`, a path that does not exist) is 409, with
code `patch_test_failed` or `patch_conflict`, and changes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from app.documents.budget import WorkBudget
from app.errors import AppError, ErrorCode, FieldError, ValidationFailed

OPS = {"add", "remove", "replace", "move", "copy", "test"}
MAX_OPERATIONS = 500


class PatchConflict(AppError):
    code, status = ErrorCode.PATCH_CONFLICT, 409


class PatchTestFailed(AppError):
    code, status = ErrorCode.PATCH_TEST_FAILED, 409


def _malformed(index: int, msg: str) -> ValidationFailed:
    return ValidationFailed(
        f"The JSON Patch is not valid: operation {index}: {msg}",
        errors=[FieldError(loc=["body", index], msg=msg, type="json_patch")],
    )


def parse_json_patch(body: Any) -> jsonpatch.JsonPatch:
    """The patch, or 422 naming the first malformed operation."""
    if not isinstance(body, list):
        raise ValidationFailed(
            "A JSON Patch is an array of operations",
            errors=[FieldError(loc=["body"], msg="expected an array", type="json_patch")],
        )
    if len(body) > MAX_OPERATIONS:
        raise ValidationFailed(f"At most {MAX_OPERATIONS} operations in one patch")
    for index, op in enumerate(body):
        if not isinstance(op, dict):
            raise _malformed(index, "an operation is an object")
        name = op.get("op")
        if not isinstance(name, str) or name not in OPS:
            raise _malformed(index, f"op must be one of {', '.join(sorted(OPS))}")
        pointers = ["path", "from"] if name in ("move", "copy") else ["path"]
        for member in pointers:
            pointer = op.get(member)
            if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
                raise _malformed(index, f"{member} must be a JSON Pointer ('' or '/...')")
        if name in ("add", "replace", "test") and "value" not in op:
            raise _malformed(index, f"{name} needs a value")
    return jsonpatch.JsonPatch(body)


def apply_json_patch(data: dict[str, Any], patch: jsonpatch.JsonPatch, max_bytes: int) -> Any:
    """The patched copy of `data`; 409 when the patch cannot apply to it; 413 as soon as
    its operations add, copy or compare more than a few times `max_bytes` (budget.py),
    before the work is done, so a patch that doubles a document per operation stops at
    the first operation over the bound."""
    budget = WorkBudget(max_bytes)
    result: Any = copy.deepcopy(data)
    for index, operation in enumerate(patch.patch):
        name = operation["op"]
        try:
            if name == "copy":
                source = jsonpointer.resolve_pointer(result, operation["from"])
                budget.charge(source, [index, "from"])
            elif name in ("add", "replace", "test"):
                budget.charge(operation["value"], [index, "value"])
            result = jsonpatch.JsonPatch([operation]).apply(result, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise PatchTestFailed(f"A test operation failed: operation {index}: {exc}") from None
        except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
            raise PatchConflict(
                f"The patch does not apply to the document as it is: operation {index}: {exc}"
            ) from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise ValidationFailed(
                f"The JSON Patch is not valid: operation {index}: {exc}"
            ) from None
    return result

"""JSON Schema (draft 2020-12) for documents' `data`: checking schemas and data against them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from app.errors import AppError, ErrorCode, FieldError, ValidationFailed

MAX_REPORTED_ERRORS = 20


class SchemaViolation(AppError):
    code, status = ErrorCode.SCHEMA_VIOLATION, 422


def _refs(
    node: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef"):
                yield (*path, key), value
            yield from _refs(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, (*path, i))


def _nul_key(node: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where a key holding NUL is (MongoDB cannot store such a key), or None."""
    if isinstance(node, dict):
        for key, value in node.items():
            if "\x00" in key:
                return (*path, key)
            found = _nul_key(value, (*path, key))
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _nul_key(value, (*path, i))
            if found is not None:
                return found
    return None


def check_schema(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for `schema`, or ValidationFailed naming what is wrong with it.

    Only local references (`#...`) are allowed: the server never fetches remote schemas.
    """
    nul = _nul_key(schema)
    if nul is not None:
        raise ValidationFailed(
            "The schema has a key with a NUL character, which cannot be stored",
            errors=[FieldError(loc=["body", "schema", *nul], msg="NUL in a key", type="schema")],
        )
    for where, ref in _refs(schema):
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValidationFailed(
                "The schema may only use local references ($ref starting with #)",
                errors=[
                    FieldError(loc=["body", "schema", *where], msg="remote $ref", type="schema")
                ],
            )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationFailed(
            f"The schema is not a valid JSON Schema (draft 2020-12): {exc.message}",
            errors=[
                FieldError(
                    loc=["body", "schema", *exc.absolute_path], msg=exc.message, type="schema"
                )
            ],
        ) from None
    validator = Draft202012Validator(schema)
    try:
        # Resolve every local reference once, so a dangling one fails now, not per write.
        list(validator.iter_errors({}))
    except Unresolvable as exc:
        raise ValidationFailed(
            f"The schema has a reference that does not resolve: {exc}",
            errors=[FieldError(loc=["body", "schema"], msg=str(exc), type="schema")],
        ) from None
    return validator


def validate_data(validator: Draft202012Validator, data: dict[str, Any]) -> None:
    """Raise SchemaViolation (422) listing the failing paths when `data` breaks the schema."""
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except Unresolvable as exc:  # a reference reached only through this data
        raise SchemaViolation(f"The collection's schema cannot be applied: {exc}") from None
    if not errors:
        return
    field_errors = [
        FieldError(loc=["data", *err.absolute_path], msg=err.message, type=str(err.validator))
        for err in errors[:MAX_REPORTED_ERRORS]
    ]
    where = ", ".join(".".join(map(str, e.loc)) for e in field_errors[:5])
    raise SchemaViolation(
        f"The document does not match the collection's schema at {where}", errors=field_errors
    )

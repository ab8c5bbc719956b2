"""JSON Schema (draft 2020-12) for documents' `data`: checking schemas and data against them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from app.errors import AppError, ErrorCode, FieldError, ValidationFailed

MAX_REPORTED_ERRORS = 20


class SchemaViolation(AppError):
    code, status = ErrorCode.SCHEMA_VIOLATION, 422


# `format` is an assertion here, not an annotation: `"due": "tomorrow"` against
# `{"format": "date"}` is refused. The formats apps use most are checked by Docstore's
# own rules below (none depends on an optional package being installed); jsonschema's
# built-in checks cover the rest (ipv4, ipv6, time, hostname, json-pointer, ...).
FORMATS = FormatChecker()
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@(?:[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\u0080-\U0010ffff-]{0,61}[A-Za-z0-9\u0080-\U0010ffff])?\.)+[A-Za-z\u0080-\U0010ffff]{2,63}"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_URI_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"{}|\\^`]")


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    """RFC 3339 full-date: YYYY-MM-DD, a real day."""
    return not isinstance(value, str) or (
        _DATE.fullmatch(value) is not None and bool(date.fromisoformat(value))
    )


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time: with a time zone (Z or an offset), a real instant."""
    if not isinstance(value, str):
        return True
    if _DATE_TIME.fullmatch(value) is None:
        return False
    # Python before 3.11 reads neither 'z' nor more than 6 fraction digits.
    whole, _, rest = value.upper().replace("Z", "+00:00").partition(".")
    if rest:
        digits = re.match(r"[0-9]+", rest)
        assert digits is not None
        whole += "." + digits.group()[:6].ljust(6, "0") + rest[digits.end() :]
    return bool(datetime.fromisoformat(whole))


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    """An address as users type them: local@domain.tld, at most 254 characters, no
    spaces. A regular expression, not a mail library: a 1 MiB document may hold 100k of
    them, and each check must stay a few hundred nanoseconds."""
    return not isinstance(value, str) or (len(value) <= 254 and _EMAIL.fullmatch(value) is not None)


@FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986): a scheme, then no spaces or characters it excludes."""
    if not isinstance(value, str):
        return True
    scheme, sep, _ = value.partition(":")
    if not sep or _SCHEME.fullmatch(scheme) is None or _URI_FORBIDDEN.search(value):
        return False
    urlsplit(value)  # a malformed authority (e.g. an unclosed IPv6 bracket) raises
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    """The hyphenated 8-4-4-4-12 form."""
    return not isinstance(value, str) or (
        _UUID.fullmatch(value) is not None and bool(uuid.UUID(value))
    )


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
    validator = compile_validator(schema)
    try:
        # Resolve every local reference once, so a dangling one fails now, not per write.
        list(validator.iter_errors({}))
    except Unresolvable as exc:
        raise ValidationFailed(
            f"The schema has a reference that does not resolve: {exc}",
            errors=[FieldError(loc=["body", "schema"], msg=str(exc), type="schema")],
        ) from None
    return validator


def compile_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """The validator documents are checked with (formats included), for a checked schema."""
    return Draft202012Validator(schema, format_checker=FORMATS)


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

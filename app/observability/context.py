"""Per-request context visible to logs and error bodies."""

from __future__ import annotations

from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    _request_id.set(value)


# The problem codes a request answered with, for its access-log line. A list the
# middleware owns, so a code noted in a copied context still reaches it.
_problem_codes: ContextVar[list[str] | None] = ContextVar("problem_codes", default=None)


def collect_problem_codes() -> list[str]:
    """Start collecting this request's problem codes; returns the list they land in."""
    codes: list[str] = []
    _problem_codes.set(codes)
    return codes


def note_problem_code(code: str) -> None:
    codes = _problem_codes.get()
    if codes is not None:
        codes.append(code)


# What a request's handling learned for its audit record (the account that signed in,
# the address it tried): a dict the middleware owns, as the problem codes above.
_audit_notes: ContextVar[dict[str, str] | None] = ContextVar("audit_notes", default=None)


def collect_audit_notes() -> dict[str, str]:
    notes: dict[str, str] = {}
    _audit_notes.set(notes)
    return notes


def note_audit(**fields: str | None) -> None:
    """Tell the request's audit record (if it has one) who and what it is about."""
    notes = _audit_notes.get()
    if notes is not None:
        notes.update({k: v for k, v in fields.items() if v is not None})

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

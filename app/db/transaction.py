"""The transaction a request's database work runs in, if any (POST /v1/batch).

Repositories pass `current()` as the driver's `session=`: outside a batch it is None and
nothing changes; inside one, every read and write of the batch joins its transaction
without each service method taking a session argument.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_session: ContextVar[Any] = ContextVar("docstore_transaction_session", default=None)


def current() -> Any:
    """The AsyncClientSession of the running transaction, or None."""
    return _session.get()


def bind(session: Any) -> Any:
    """Make `session` current; returns the token for `unbind`."""
    return _session.set(session)


def unbind(token: Any) -> None:
    _session.reset(token)

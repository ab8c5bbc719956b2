"""The transaction a request's database work runs in, if any (POST /v1/batch).

Repositories pass `current()` as the driver's `session=`: outside a batch it is None and
nothing changes; inside one, every read and write of the batch joins its transaction
without each service method taking a session argument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

AfterCommit = list[Callable[[], Awaitable[Any]]]

_session: ContextVar[Any] = ContextVar("docstore_transaction_session", default=None)
_after_commit: ContextVar[AfterCommit | None] = ContextVar(
    "docstore_transaction_after_commit", default=None
)


def current() -> Any:
    """The AsyncClientSession of the running transaction, or None."""
    return _session.get()


def bind(session: Any, after_commit: AfterCommit) -> tuple[Any, Any]:
    """Make `session` current, collecting into `after_commit` what must wait until it has
    committed (the caller runs those then, and drops them if it retries or aborts);
    returns the tokens for `unbind`."""
    return _session.set(session), _after_commit.set(after_commit)


def unbind(tokens: tuple[Any, Any]) -> None:
    _session.reset(tokens[0])
    _after_commit.reset(tokens[1])


async def when_committed(action: Callable[[], Awaitable[Any]]) -> None:
    """Run `action` now, or once the running transaction has committed (work outside
    the database that an aborted transaction must not have done: deleting files)."""
    pending = _after_commit.get()
    if pending is None:
        await action()
    else:
        pending.append(action)

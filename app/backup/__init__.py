"""Backups: what `scripts.export` writes and `scripts.restore` loads back.

The code here reads and writes the export directory and drives the services; the
scripts around it parse arguments, draw progress bars and print. So nothing here prints:
progress goes to a `Bars` the caller passes in, remarks to a `Note`, and a problem with
the input is a `BackupError` whose message says what to do next. It blocks on local
files (no threads): it runs from operator scripts, never while the server answers requests.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol


class BackupError(Exception):
    """A problem with the input or the target (what went wrong, where, what to do)."""


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


Bars = Callable[[int | None, str], AbstractContextManager[Progress]]
"""`bars(total, label)` opens a progress bar (total in records or bytes, None if unknown)."""

Note = Callable[[str], None]
"""Something worth telling the operator that is neither progress nor a failure."""


def no_bars(total: int | None, label: str) -> AbstractContextManager[Progress]:
    return nullcontext(_Silent())


def no_notes(message: str) -> None:
    pass

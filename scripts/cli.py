"""What every operator script shares: settings, the container, progress, clean errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from app.accounts.auth_schemas import Email
from app.backup import BackupError
from app.config import Settings, get_settings
from app.container import Container, open_container
from app.errors import AppError

T = TypeVar("T")


class ScriptError(Exception):
    """A failure to report as one line (what went wrong, where, what to do), exit 1."""


def progress(total: int | None, what: str) -> tqdm:
    # On stderr, so stdout stays clean for summaries (and pipes).
    return tqdm(
        total=total, desc=what, unit=" rec", file=sys.stderr, dynamic_ncols=True, disable=None
    )


def note(message: str) -> None:
    """A remark for the operator (a warning, where an import resumes), on stderr."""
    print(message, file=sys.stderr)


def script_settings() -> Settings:
    """The server's settings, minus the read cache: a script's requests are few, and its
    writes reach running servers through their change streams all the same."""
    return get_settings().model_copy(update={"read_cache": False})


def run(main: Callable[[Container], Awaitable[T]]) -> T:
    """Open the app's container (same settings and database as the server) and run."""

    async def runner() -> T:
        async with open_container(script_settings(), background=False) as container:
            return await main(container)

    return asyncio.run(runner())


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def guarded(entry: Callable[[], int]) -> int:
    """Run a script's entry point, turning expected failures into one-line errors."""
    try:
        return entry()
    except (ScriptError, BackupError, AppError) as exc:
        return fail(exc.detail if isinstance(exc, AppError) else str(exc))
    except KeyboardInterrupt:
        return fail("interrupted; running the command again resumes or re-checks safely")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 user`, `2 users`, `0 users`."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def email_argument(raw: str) -> str | None:
    """`raw` normalised as the API does it, or None after saying it is not an address."""
    try:
        email: str = TypeAdapter(Email).validate_python(raw)
    except ValidationError:
        print(f"error: {raw!r} is not an email address", file=sys.stderr)
        return None
    return email

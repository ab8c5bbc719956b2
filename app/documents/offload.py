"""Big document changes worked out in other processes, so one request cannot stall others.

Applying a merge patch, a JSON Patch or update operators to a big document, and checking
the result (limits, the collection's JSON Schema), is pure-Python CPU work: bounded by
the work budget (budget.py), yet up to a few hundred milliseconds. In a thread it still
holds the interpreter lock, and the event loop gets it back only every few milliseconds,
for each step of each other request (`make bench` measured /healthz p99 at 139 ms during
60k-value updates with threads). In a worker process the loop keeps its interpreter.

What crosses the process boundary is plain data: the document's data, the change as a
module-level function with its arguments (`functools.partial`), the limits and the
schema. Errors come back as the same `AppError`s (they pickle). Each server process has
its own pool, started on first use, its workers niced below request handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from jsonschema import Draft202012Validator

from app.collections.validation import compile_validator, validate_data
from app.documents.search import Indexer
from app.documents.validation import DataLimits, check_data
from app.errors import AppError

T = TypeVar("T")
Transform = Callable[[dict[str, Any]], Any]
WORKER_NICENESS = 5
_VALIDATORS: dict[str, Draft202012Validator] = {}  # per worker process, by schema text
_MAX_VALIDATORS = 64


def checked(
    data: dict[str, Any],
    transform: Transform | None,
    limits: DataLimits,
    schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """`transform(data)` (or `data`) if it may be stored: the limits and `schema` hold.
    The same checks as DocumentService.check_data, for a worker process."""
    result = data if transform is None else transform(data)
    check_data(result, limits)
    if schema is not None:
        key = json.dumps(schema, sort_keys=True)
        validator = _VALIDATORS.get(key)
        if validator is None:
            if len(_VALIDATORS) >= _MAX_VALIDATORS:
                _VALIDATORS.clear()
            validator = _VALIDATORS[key] = compile_validator(schema)
        validate_data(validator, result)
    assert isinstance(result, dict)
    return result


def checked_each(
    items: list[Any], limits: DataLimits, schema: dict[str, Any] | None
) -> list[dict[str, Any] | AppError]:
    """Each item `checked`, or the error that refuses it (a bulk create's items)."""
    outcomes: list[dict[str, Any] | AppError] = []
    for item in items:
        try:
            outcomes.append(checked(item, None, limits, schema))
        except AppError as exc:
            outcomes.append(exc)
    return outcomes


def terms_each(indexer: Indexer, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each item's search terms (a big bulk create's: up to a megabyte of text to stem)."""
    return [indexer.terms(item) for item in items]


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Unix, or not allowed
        os.nice(WORKER_NICENESS)


class WorkPool:
    """A process pool for CPU-heavy steps, started on first use and closed at shutdown.

    `spawn` rather than `fork`: the server process has driver and executor threads, and a
    forked child would inherit their locks in whatever state they were in.
    """

    def __init__(self, processes: int) -> None:
        self.processes = processes or max(1, (os.cpu_count() or 2) - 1)
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the work pool is closed (the server is shutting down)")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the next request gets a fresh pool.
            if self._pool is pool:
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    def close(self) -> None:
        """Stop the workers once their current task is done; queued tasks are cancelled."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

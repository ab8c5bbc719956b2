"""Operator scripts run as operators run them, against the test database."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import threading
from typing import Any

from app.config import Settings, get_settings
from tests.support.apps import ROOT


def script(settings: Settings, *args: str, wait: bool = True) -> Any:
    """`python -m <args>` against the test database: in this process (a script is a
    `main(argv) -> int`; no interpreter to start), or as a child process when `wait` is
    False (a test that kills it half-way)."""
    env = {
        "MONGODB_URL": str(settings.mongodb_url),
        "MONGODB_DB": settings.mongodb_db,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "64",
        "ARGON2_PARALLELISM": "1",
    }
    if not wait:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    return in_process(args[0], list(args[1:]), env)


def in_process(module: str, argv: list[str], env: dict[str, str]) -> Any:
    """Run `module.main(argv)` with `env` set, its output captured, as `subprocess.run`
    reports it. In a thread: scripts run their own event loop (asyncio.run), and the
    test's loop is blocked meanwhile, as it was by subprocess.run."""
    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    codes: list[int] = []

    def run() -> None:
        try:
            codes.append(main(argv))
        except SystemExit as exc:  # argparse's usage errors, sys.exit("message")
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            codes.append(exc.code if isinstance(exc.code, int) else int(exc.code is not None))

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()  # a process reads its settings once; each run is a process
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            worker = threading.Thread(target=run)
            worker.start()
            worker.join(300)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
    assert codes, f"{module} {argv} did not finish within 300 s"
    return subprocess.CompletedProcess([module, *argv], codes[0], out.getvalue(), err.getvalue())

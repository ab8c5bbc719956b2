"""`python -m app` in a child forked from a process that imported the app once.

A server's start is mostly imports (2.5 to 3 s of a core: FastAPI, pydantic models,
every route's validators); the suite starts about two dozen. Each test process has one
fork server (multiprocessing's "forkserver"), which imports PRELOAD when it starts;
each server is forked from it and runs `python -m app`'s own main() with the
environment it is given, as gunicorn's --preload does. Nothing here imports the test
support (a forked child runs only this module and the app).

The preloaded modules read no environment at import, except prometheus_client's
PROMETHEUS_MULTIPROC_DIR (its metrics are made at import): a server that needs that
must be a `python -m app` of its own (tests.support.servers refuses it).
"""

from __future__ import annotations

import os
import sys

PRELOAD = [
    "app.__main__",
    "app.main",
    "app.observability.logging",
    "uvicorn",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
]


def serve(environ: dict[str, str], cwd: str, log: str) -> None:
    """The child: `python -m app` in `cwd` with exactly `environ`, its output to `log`
    (stdout to nowhere, as the tests' servers had it)."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    err = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    sys.argv = [sys.executable, "-m", "app"]
    from app.__main__ import main

    main()

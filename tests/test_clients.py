"""Typed clients from the live contract, proven end to end (issue 11).

A live server (uvicorn, real database) declares a collection with a non-trivial schema;
`scripts.clients` (what `make clients` runs) fetches its live contract and generates the
TypeScript types and the Python client. Then:
- TypeScript: tests/clients/app.ts compiles with `tsc --strict` against the generated
  types and runs on Node against the server; tests/clients/wrong.ts must not compile.
- Python: tests/clients/python_app.py passes `mypy --strict` against the generated
  package and runs against the server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.accounts import PASSWORD
from tests.support.apps import ROOT, make_settings
from tests.support.browser import BROWSER_ARGS, CHROMIUM
from tests.support.node import NODE, NODE_TOOLS, TSC
from tests.support.schemas import NOTES_SCHEMA, TASKS_SCHEMA
from tests.support.scripts import script
from tests.support.servers import api_server, free_port

PROGRAMS = ROOT / "tests" / "clients"
ARRIVAL_GUARD_SECONDS = 90

pytestmark = pytest.mark.skipif(
    NODE is None,
    reason="Node.js is not installed (apt-get install nodejs npm; .ci/run installs it)",
)


@dataclass
class Generated:
    base_url: str
    out: Path
    # Where its server keeps data, and how it was started: a second server may join.
    database_url: str
    database: str
    env: dict[str, str]


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def generated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    if not TSC.exists():
        pytest.fail(
            "clients/node_modules is missing: run `npm ci --prefix clients` (make test does)"
        )
    settings = make_settings(database_url)
    env = {
        "JWT_SECRET": settings.jwt_secret,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "64",
    }
    with api_server(database_url, settings.mongodb_db, **env) as (base_url, _):
        admin_email = "admin@clients.test"
        made = script(
            settings, "scripts.create_admin", "--email", admin_email, "--password", PASSWORD
        )
        assert made.returncode == 0, made.stderr
        with httpx.Client(base_url=base_url, timeout=30) as http:
            login = http.post("/v1/auth/login", json={"email": admin_email, "password": PASSWORD})
            token = login.json()["access_token"]
            for name, schema in (("tasks", TASKS_SCHEMA), ("notes", NOTES_SCHEMA)):
                declared = http.post(
                    "/v1/collections",
                    json={"name": name, "schema": schema},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert declared.status_code == 201, declared.text
        out = tmp_path_factory.mktemp("clients")
        printed = run(
            [
                sys.executable,
                "-m",
                "scripts.clients",
                "--url",
                base_url,
                "--token",
                token,
                "--out",
                str(out),
            ],
            cwd=ROOT,
        )
        assert "schema.d.ts" in printed
        contract = json.loads((out / "openapi.json").read_text())
        validate(contract)  # OpenAPI 3.1, by openapi-spec-validator
        assert {"TasksData", "NotesData"} <= set(contract["components"]["schemas"])
        yield Generated(
            base_url=base_url,
            out=out,
            database_url=database_url,
            database=settings.mongodb_db,
            env=env,
        )


def test_the_typescript_client_is_typed_and_works(generated: Generated) -> None:
    assert NODE is not None
    work = generated.out / "typescript"
    for name in ("app.ts", "wrong.ts", "tsconfig.json"):
        shutil.copy(PROGRAMS / name, work / name)
    (work / "node_modules").symlink_to(NODE_TOOLS, target_is_directory=True)
    # app.ts compiles (strict, no any, no casts); in wrong.ts, a wrong field type is a
    # compile-time error, not a runtime surprise. One tsc run for both (each costs
    # seconds): it still emits app.js.
    config = json.loads((work / "tsconfig.json").read_text())
    config["files"] = ["app.ts", "wrong.ts"]
    (work / "tsconfig.json").write_text(json.dumps(config))
    refused = compile_with_errors(work)
    # Exactly the marked lines fail: a wrong field type, an unknown field of a closed
    # schema, and update operators on paths they cannot apply to.
    failed = failing_lines(refused, "wrong.ts")
    marked = marked_lines(work / "wrong.ts")
    assert len(marked) == 9
    assert failed == marked, refused

    output = run([NODE, "dist/app.js", generated.base_url, "ts@clients.test", PASSWORD], cwd=work)
    result = json.loads(output)
    assert result["title"] == "Write the client"
    assert result["status"] == "todo"
    assert result["assignee"] == "Ada"
    assert result["patchedStatus"] == "doing"
    assert result["patchedVersion"] == 2
    assert result["staleStatus"] == 412  # If-Match named the version before the patch
    assert result["priority"] == 2  # meta was removed by the patch: inc starts at 0
    assert result["checklist"] == ["types", "operators"]
    assert result["colour"] == "red"
    assert result["pages"] == 3
    assert result["fileRoundTrip"] is True and result["fileSize"] == 10  # bytes as sent
    assert sorted(result["titles"]) == sorted(
        ["Write the client", "open schema", "task 0", "task 1", "task 2", "task 3"]
    )


SDK = ROOT / "sdk" / "typescript" / "src"


def compile_with_errors(work: Path) -> str:
    """Run tsc on `work`'s tsconfig.json, whose only errors must be in wrong.ts; its
    output. (tsc emits the other files' JavaScript all the same.)"""
    result = subprocess.run(
        [str(TSC), "--project", "tsconfig.json"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0, "wrong.ts compiled"
    errors = [line for line in result.stdout.splitlines() if "error TS" in line]
    assert errors and all(line.startswith("wrong.ts(") for line in errors), result.stdout
    return result.stdout


def failing_lines(tsc_output: str, filename: str) -> set[int]:
    """The lines of `filename` tsc reported an error on."""
    return {
        int(line.split("(", 1)[1].split(",", 1)[0])
        for line in tsc_output.splitlines()
        if line.startswith(f"{filename}(") and "error TS" in line
    }


def marked_lines(path: Path) -> set[int]:
    return {
        number
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "// error:" in line
    }


@pytest.fixture(scope="module")
def sdk_build(generated: Generated, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The programs of tests/sdk/ compiled (strict) with the SDK and the generated types;
    wrong.ts in the same run (each costs seconds), what tsc said in tsc-output.txt."""
    work = tmp_path_factory.mktemp("sdk") / "app"
    shutil.copytree(SDK, work / "sdk")
    # Only the generated types (the client test compiles its own programs next to them).
    shutil.copy(generated.out / "typescript" / "schema.d.ts", work / "schema.d.ts")
    for name in ("app.ts", "realtime.ts", "browser.ts", "sse.ts", "untyped.ts", "wrong.ts"):
        shutil.copy(ROOT / "tests" / "sdk" / name, work / name)
    config = json.loads((PROGRAMS / "tsconfig.json").read_text())
    config["compilerOptions"]["lib"] = ["ES2022", "DOM", "DOM.Iterable"]
    # untyped.ts: the SDK compiles without the contract's types too.
    config["files"] = ["app.ts", "realtime.ts", "browser.ts", "sse.ts", "untyped.ts", "wrong.ts"]
    # ES modules, as the SDK ships: the same output runs on Node and in the browser.
    (work / "package.json").write_text('{"type": "module"}')
    (work / "tsconfig.json").write_text(json.dumps(config))
    (work / "node_modules").symlink_to(NODE_TOOLS, target_is_directory=True)
    (work / "tsc-output.txt").write_text(compile_with_errors(work))
    return work


def test_the_sdk_reads_event_streams_however_they_are_cut(sdk_build: Path) -> None:
    """A chunk may end anywhere: between a CR and its LF, inside a UTF-8 character."""
    assert NODE is not None
    result = json.loads(run([NODE, "dist/sse.js"], cwd=sdk_build))
    assert result == {
        "whole": 'ready#1:{} | created#2:{"id":"a","title":"é"} | deleted#3:{"id":"a"}',
        "differing": [],
        "byteByByte": True,
    }


def test_misusing_the_sdk_does_not_compile(sdk_build: Path) -> None:
    refused = (sdk_build / "tsc-output.txt").read_text()
    failed = failing_lines(refused, "wrong.ts")
    marked = marked_lines(sdk_build / "wrong.ts")
    assert len(marked) == 6
    assert failed == marked, refused


def test_the_sdk_is_typed_by_the_contract_refreshes_once_and_works(
    generated: Generated, sdk_build: Path
) -> None:
    """Sign-in, typed CRUD with a conflict, pages, ten calls with a refused token that
    refresh once, errors, sign-out."""
    assert NODE is not None
    work = sdk_build
    output = run([NODE, "dist/app.js", generated.base_url, "sdk@clients.test", PASSWORD], cwd=work)
    result = json.loads(output)
    assert result == {
        "title": "Ship the SDK",
        "status": "todo",
        "doing": "doing",
        "conflict": "precondition_failed",
        "priority": 3,
        "items": ["types", "docs"],
        "titles": ["Ship the SDK"] + [f"extra {i}" for i in range(5)],
        "done": 5,
        "bulk": 5,
        "moved": 5,
        "batch": 1,
        "refreshes": 1,
        "sameTask": True,
        "missing": "404 document_not_found",
        "afterSignOut": "401 not_authenticated",
        "events": ["SIGNED_IN", "TOKEN_REFRESHED", "SIGNED_OUT"],
    }


def test_sdk_realtime_survives_a_server_restart_and_files_round_trip(
    generated: Generated, sdk_build: Path
) -> None:
    """A subscription through the SDK loses nothing across a restart of its server (it
    resumes with Last-Event-ID); a file goes up with progress and comes back byte-exact,
    also through a signed link."""
    assert NODE is not None
    work = sdk_build
    email = "live@clients.test"
    with httpx.Client(base_url=generated.base_url, timeout=30) as http:
        made = http.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Live"}
        )
        assert made.status_code == 201, made.text
        token = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).json()[
            "access_token"
        ]
    port = free_port()
    env = {**generated.env, "PORT": str(port)}
    with api_server(generated.database_url, generated.database, **env) as (url, _):
        node = subprocess.Popen(
            [NODE, "dist/realtime.js", url, email, PASSWORD],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert node.stdout is not None
            assert node.stdout.readline().strip() == "open", node.stderr and node.stderr.read()
        except BaseException:
            node.kill()
            raise
    # The server is down; it comes back on the same port, and a note is made meanwhile
    # (through the other server, on the same database).
    with httpx.Client(base_url=generated.base_url, timeout=30) as http:
        made = http.post(
            "/v1/collections/notes/documents",
            json={"title": "during the restart"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
    with api_server(generated.database_url, generated.database, **env):
        try:
            out, err = node.communicate(timeout=120)
        finally:
            node.kill()
    assert node.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {
        "seen": ["created before the restart", "created during the restart"],
        "reconnected": True,
        "resets": 0,
        "size": 256 * 1024,
        "listed": [["data.bin", 256 * 1024, 64]],
        "sameBytes": True,
        "linkBytes": True,
        "progressEnd": 256 * 1024,
        "earlyReady": "rejected: closed",
    }


@contextmanager
def static_site(root: Path) -> Iterator[str]:
    """`root` served on loopback (as http://localhost:PORT: a secure context)."""
    handler = functools.partial(QuietFiles, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietFiles(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
async def test_the_sdk_works_in_a_browser_across_a_server_restart(
    generated: Generated, sdk_build: Path
) -> None:
    """The SDK as ES modules in headless Chromium, against the API on another origin:
    sign-in kept in localStorage, refresh with short-lived tokens, typed CRUD, a file
    byte-exact, and a subscription that loses nothing while the server restarts."""
    from playwright.async_api import async_playwright

    site = sdk_build / "dist"
    (site / "index.html").write_text("<!doctype html><title>SDK</title>")
    email = "browser@clients.test"
    with static_site(site) as origin:
        env = {
            **generated.env,
            "CORS_ORIGINS": origin,
            "ACCESS_TOKEN_TTL_SECONDS": "10",
            "PORT": str(free_port()),
        }
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{origin}/index.html")
                await page.evaluate("async () => { window.app = await import('./browser.js'); }")
                with api_server(generated.database_url, generated.database, **env) as (url, _):
                    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                        made = await http.post(
                            "/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": "Browser"},
                        )
                        assert made.status_code == 201, made.text
                        login = await http.post(
                            "/v1/auth/login", json={"email": email, "password": PASSWORD}
                        )
                    started = await asyncio.wait_for(  # a guard against a hang
                        page.evaluate(
                            "([url, email, password]) => window.app.start(url, email, password)",
                            [url, email, PASSWORD],
                        ),
                        ARRIVAL_GUARD_SECONDS,
                    )
                # Down: a note is made through the other server meanwhile.
                async with httpx.AsyncClient(base_url=generated.base_url, timeout=30) as http:
                    token = login.json()["access_token"]
                    during = await http.post(
                        "/v1/collections/notes/documents",
                        json={"title": "during the restart"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert during.status_code == 201, during.text
                with api_server(generated.database_url, generated.database, **env):
                    # A guard against a hang (a lost event would wait forever), not a
                    # measurement.
                    await asyncio.wait_for(
                        page.evaluate("() => window.app.arrival('during the restart')"),
                        ARRIVAL_GUARD_SECONDS,
                    )
                    finished = await page.evaluate("() => window.app.finish()")
            finally:
                await browser.close()
    assert started == {
        "stored": True,
        "renamed": "renamed in the browser",
        "sameBytes": True,
        "progressEnd": 100_000,
    }
    assert finished == {
        "titles": ["from the browser", "during the restart"],
        "refreshed": True,
        "signedOut": True,
    }


def test_the_python_client_is_typed_and_works(generated: Generated) -> None:
    package = generated.out / "python"
    script = package / "python_app.py"
    shutil.copy(PROGRAMS / "python_app.py", script)
    mypy = Path(sys.executable).with_name("mypy")
    run(
        [str(mypy), "--strict", "--no-incremental", "python_app.py"],
        cwd=package,
        env={**os.environ, "MYPYPATH": str(package)},
    )
    output = run(
        [sys.executable, "python_app.py", generated.base_url, "py@clients.test", PASSWORD],
        cwd=package,
        env={**os.environ, "PYTHONPATH": str(package)},
    )
    result = json.loads(output)
    assert result == {
        "title": "From Python",
        "status": "todo",
        "patched_status": "doing",
        "patched_version": 2,
        "stale_status": 412,
        "pages": 1,
        "titles": ["From Python"],
    }

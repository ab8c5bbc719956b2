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

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.accounts import PASSWORD
from tests.support.apps import make_settings
from tests.support.schemas import NOTES_SCHEMA, TASKS_SCHEMA
from tests.support.servers import api_server

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "clients"
NODE_TOOLS = ROOT / "clients" / "node_modules"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None,
    reason="Node.js is not installed (apt-get install nodejs npm; .ci/run installs it)",
)


@dataclass
class Generated:
    base_url: str
    out: Path


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def generated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    if not (NODE_TOOLS / ".bin" / "tsc").exists():
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
        run(
            [
                sys.executable,
                "-m",
                "scripts.create_admin",
                "--email",
                admin_email,
                "--password",
                PASSWORD,
            ],
            cwd=ROOT,
            env={**os.environ, "MONGODB_URL": database_url, "MONGODB_DB": settings.mongodb_db},
        )
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
        yield Generated(base_url=base_url, out=out)


def test_the_typescript_client_is_typed_and_works(generated: Generated) -> None:
    assert NODE is not None
    work = generated.out / "typescript"
    for name in ("app.ts", "wrong.ts", "tsconfig.json"):
        shutil.copy(PROGRAMS / name, work / name)
    (work / "node_modules").symlink_to(NODE_TOOLS, target_is_directory=True)
    tsc = str(NODE_TOOLS / ".bin" / "tsc")
    run([tsc, "--project", "tsconfig.json"], cwd=work)  # strict, no any, no casts in app.ts

    # A wrong field type is a compile-time error, not a runtime surprise.
    refused = subprocess.run(
        [
            tsc,
            "--noEmit",
            "--strict",
            "--module",
            "NodeNext",
            "--moduleResolution",
            "NodeNext",
            "--lib",
            "ES2022,DOM",
            "--types",
            "node",
            "wrong.ts",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    # Exactly the marked lines fail: a wrong field type, an unknown field of a closed
    # schema, and update operators on paths they cannot apply to.
    failed = {
        int(line.split("(", 1)[1].split(",", 1)[0])
        for line in refused.stdout.splitlines()
        if line.startswith("wrong.ts(") and "error TS" in line
    }
    marked = {
        number
        for number, line in enumerate((work / "wrong.ts").read_text().splitlines(), start=1)
        if "// error:" in line
    }
    assert len(marked) == 9
    assert failed == marked, refused.stdout

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

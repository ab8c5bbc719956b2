"""Generate typed clients from a running server's live contract (`make clients`).

    DOCSTORE_URL=http://127.0.0.1:8000 DOCSTORE_TOKEN=... make clients OUT=../my-app/api
    python -m scripts.clients --url URL [--token TOKEN] --out DIR

Writes into DIR:
    openapi.json            the live contract (GET /v1/schema/openapi.json; with a token,
                            every collection you may read, otherwise the public ones)
    typescript/schema.d.ts  openapi-typescript types; use them with openapi-fetch
    python/                 an openapi-python-client package (docstore_client)

The TypeScript generator is the pinned one in clients/ (`npm ci --prefix clients`, done by
the Makefile); the Python one comes from the dev lock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_TYPESCRIPT = ROOT / "clients" / "node_modules" / ".bin" / "openapi-typescript"
# openapi-typescript through its API, with binary bodies typed as bytes (see the file).
TYPESCRIPT_GENERATOR = ROOT / "clients" / "generate.mjs"
PYTHON_GENERATOR = Path(sys.executable).with_name("openapi-python-client")


class ClientError(Exception):
    """Something to tell the user, with what to do next."""


def fetch_contract(url: str, token: str | None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    target = url.rstrip("/") + "/v1/schema/openapi.json"
    try:
        response = httpx.get(target, headers=headers, timeout=30)
    except httpx.TransportError as exc:
        raise ClientError(
            f"cannot reach {target} ({exc}); start the server (`make run`) or set DOCSTORE_URL"
        ) from None
    if response.status_code == 401:
        raise ClientError(
            "the server refused DOCSTORE_TOKEN (expired or revoked?): sign in again and "
            "export a fresh access token"
        )
    if response.status_code != 200:
        raise ClientError(f"{target} answered {response.status_code}: {response.text[:300]}")
    contract: dict[str, object] = response.json()
    return contract


def run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our own tools, no shell
    if result.returncode != 0:
        raise ClientError(f"{what} failed:\n{result.stdout}{result.stderr}")


# openapi-python-client (0.29) turns a request body with two media types into
# `isinstance(body, list[...])`, a TypeError at run time (its issues #1004 and #1276
# concern the same code). PATCH takes merge patch and JSON Patch; the Python client is
# generated without the JSON Patch media type (send those with httpx), the TypeScript one
# keeps both.
# A file upload is declared as application/octet-stream and */* (any type is stored as
# sent): the Python client keeps the first.
PYTHON_SKIPS_MEDIA_TYPES = ("application/json-patch+json", "*/*")


def for_python_generator(contract: dict[str, Any]) -> dict[str, Any]:
    """The contract less what openapi-python-client cannot generate correctly."""
    copy: dict[str, Any] = json.loads(json.dumps(contract))
    for methods in copy.get("paths", {}).values():
        for operation in methods.values():
            body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
            content = body.get("content", {})
            if len(content) > 1:
                for media_type in PYTHON_SKIPS_MEDIA_TYPES:
                    content.pop(media_type, None)
    return copy


def generate(contract_file: Path, out: Path) -> tuple[Path, Path]:
    """TypeScript types and a Python package from a contract file; their paths."""
    if not OPENAPI_TYPESCRIPT.exists():
        raise ClientError(
            "openapi-typescript is not installed: run `npm ci --prefix clients` (Node 20+)"
        )
    typescript = out / "typescript" / "schema.d.ts"
    typescript.parent.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    if node is None:
        raise ClientError("node is not on PATH: install Node 20+ (Debian: apt install nodejs)")
    run(
        [node, str(TYPESCRIPT_GENERATOR), str(contract_file.resolve()), str(typescript)],
        "openapi-typescript",
    )
    python = out / "python"
    if python.exists():
        shutil.rmtree(python)
    config = out / ".openapi-python-client.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")
    python_contract = out / ".openapi-for-python.json"
    contract = json.loads(contract_file.read_text(encoding="utf-8"))
    python_contract.write_text(json.dumps(for_python_generator(contract)), encoding="utf-8")
    run(
        [
            str(PYTHON_GENERATOR),
            "generate",
            "--path",
            str(python_contract),
            "--output-path",
            str(python),
            "--meta",
            "setup",
            "--config",
            str(config),
        ],
        "openapi-python-client",
    )
    config.unlink()
    python_contract.unlink()
    return typescript, python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("DOCSTORE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("DOCSTORE_TOKEN") or None)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        print(f"fetching the live contract from {args.url} ...", flush=True)
        contract = fetch_contract(args.url, args.token)
        args.out.mkdir(parents=True, exist_ok=True)
        contract_file = args.out / "openapi.json"
        contract_file.write_text(json.dumps(contract, indent=2), encoding="utf-8")
        print("generating the TypeScript types and the Python client ...", flush=True)
        typescript, python = generate(contract_file, args.out)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {contract_file}\n      {typescript}\n      {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

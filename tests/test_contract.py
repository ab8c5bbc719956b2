"""The committed contract (openapi.json) matches the app, and a client generated from it
works end to end."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.accounts.models import Role
from scripts.clients import for_python_generator
from scripts.openapi import CONTRACT, current_contract, render
from tests.support.accounts import PASSWORD, signed_in


def test_openapi_json_is_committed_and_up_to_date() -> None:
    assert CONTRACT.exists(), "run `make openapi` and commit openapi.json"
    assert CONTRACT.read_text(encoding="utf-8") == render(current_contract()), (
        "openapi.json differs from the app: run `make openapi` and commit it"
    )


def test_every_operation_is_fit_for_client_generation() -> None:
    spec = current_contract()
    ids = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            assert op.get("operationId") and op.get("tags") and op.get("summary"), where
            ids.append(op["operationId"])
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], where
            if path.startswith("/v1/"):
                errors = [s for s in op["responses"] if int(s) >= 400]
                assert errors, f"{where} documents no error response"
    assert len(ids) == len(set(ids))
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    contract = out / "openapi.json"
    contract.write_text(json.dumps(for_python_generator(json.loads(CONTRACT.read_text()))))
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(contract),
            "--meta",
            "none",
            "--output-path",
            str(out / "docstore_client"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("docstore_client")
    finally:
        sys.path.remove(str(out))


def api(name: str) -> Any:
    return importlib.import_module(f"docstore_client.api.{name}")


def model(name: str) -> Any:
    return getattr(importlib.import_module("docstore_client.models"), name)


async def test_a_generated_client_registers_logs_in_and_pages_documents(
    app: FastAPI, generated_client: ModuleType
) -> None:
    transport = httpx.ASGITransport(app=app)
    base = "http://docstore.test"
    anonymous = generated_client.Client(base_url=base).set_async_httpx_client(
        httpx.AsyncClient(transport=transport, base_url=base)
    )
    async with httpx.AsyncClient(transport=transport, base_url=base) as raw:
        admin = await signed_in(app, raw, role=Role.ADMIN)

    register = api("auth.auth_register")
    created = await register.asyncio(
        client=anonymous,
        body=model("RegisterRequest")(email="typed@example.com", password=PASSWORD, name="Typed"),
    )
    assert created.email == "typed@example.com"
    duplicate = await register.asyncio_detailed(
        client=anonymous,
        body=model("RegisterRequest")(email="typed@example.com", password=PASSWORD, name="Typed"),
    )
    assert duplicate.status_code == 409
    assert duplicate.parsed.code.value == "email_taken"

    tokens = await api("auth.auth_login").asyncio(
        client=anonymous, body=model("LoginRequest")(email="typed@example.com", password=PASSWORD)
    )
    assert tokens.token_type == "bearer"

    def authed(token: str) -> Any:
        return generated_client.AuthenticatedClient(
            base_url=base, token=token
        ).set_async_httpx_client(
            httpx.AsyncClient(
                transport=transport, base_url=base, headers={"Authorization": f"Bearer {token}"}
            )
        )

    as_admin, as_user = authed(admin.access_token), authed(tokens.access_token)
    declared = await api("collections.collections_create").asyncio(
        client=as_admin,
        body=model("CollectionIn").from_dict({"name": "typed_notes"}),
    )
    assert declared.name == "typed_notes"

    create = api("documents.documents_create")
    for i in range(5):
        doc = await create.asyncio(
            "typed_notes",
            client=as_user,
            body=model("DocumentsCreateData").from_dict({"title": f"note {i}", "n": i}),
        )
        assert doc.version == 1

    seen: list[int] = []
    cursor: Any = generated_client.types.UNSET
    while True:
        page = await api("documents.documents_list").asyncio(
            "typed_notes", client=as_user, sort="-data.n", limit=2, cursor=cursor
        )
        seen += [item.data["n"] for item in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [4, 3, 2, 1, 0]

"""Signed-in users as tests see them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from app.accounts.auth_service import ClientInfo
from app.accounts.models import Role

PASSWORD = "correct horse battery"


@dataclass
class Account:
    """A signed-in user as tests see it."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


# The `make_account` fixture: an account with this email/role, signed in.
MakeAccount = Callable[..., Awaitable[Account]]


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200, me.text
    return Account(
        id=me.json()["id"],
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


async def signed_in(
    app: FastAPI,
    client: httpx.AsyncClient,
    *,
    role: Role = Role.USER,
    email: str | None = None,
    name: str = "Test User",
) -> Account:
    """An account created through the service of `app`, with a session started as a
    password sign-in starts one (tests of signing in itself use `sign_in`, the route)."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    auth = app.state.container.auth
    user = await auth.create_user(email=email, password=PASSWORD, name=name, role=role)
    # As the test client's requests come (tests.support.apps.http_client).
    tokens = await auth.start_session(user, ClientInfo("203.0.113.7", "python-httpx"))
    return Account(str(user.id), email, PASSWORD, tokens.access_token, tokens.refresh_token)

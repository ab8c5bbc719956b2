"""argon2id hashing: off the event loop, rehashed on login when parameters change."""

from __future__ import annotations

import asyncio
import os
import threading

import httpx
import pytest
from fastapi import FastAPI

from app.accounts.passwords import HASH_THREAD_NICENESS
from app.container import Container
from tests.support.accounts import PASSWORD, Account
from tests.support.apps import http_client, make_settings, running_app


async def test_requests_are_served_while_a_password_hash_runs(
    app: FastAPI,
    client: httpx.AsyncClient,
    container: Container,
    user: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hashing = threading.Event()
    release = threading.Event()
    real_verify = container.hasher.verify_sync

    def held_verify(password_hash: str, password: str) -> bool:
        hashing.set()
        release.wait(timeout=30)
        return real_verify(password_hash, password)

    monkeypatch.setattr(container.hasher, "verify_sync", held_verify)
    try:
        login = asyncio.create_task(
            client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
        )
        assert await asyncio.to_thread(hashing.wait, 30), "the login never started hashing"
        # The hash is still running in its thread; the event loop must serve this anyway.
        me = await client.get("/v1/users/me", headers=user.headers)
        assert me.status_code == 200
        assert not login.done()
    finally:
        release.set()
    assert (await login).status_code == 200


async def test_login_rehashes_when_the_parameters_change(database_url: str) -> None:
    weak = make_settings(database_url, argon2_time_cost=1)
    async with running_app(weak, drop_database=False) as app:
        await app.state.container.auth.create_user(
            email="old@example.com", password=PASSWORD, name="Old", role="user"
        )
        before = (await app.state.container.users.get_by_email("old@example.com")).password_hash
    assert "t=1" in before

    stronger = weak.model_copy(update={"argon2_time_cost": 2})
    async with running_app(stronger) as app, http_client(app) as client:
        response = await client.post(
            "/v1/auth/login", json={"email": "old@example.com", "password": PASSWORD}
        )
        assert response.status_code == 200
        after = (await app.state.container.users.get_by_email("old@example.com")).password_hash
        assert after.startswith("$argon2id$") and "t=2" in after
        # The new hash still accepts the same password.
        again = await client.post(
            "/v1/auth/login", json={"email": "old@example.com", "password": PASSWORD}
        )
        assert again.status_code == 200


async def test_hashing_runs_below_the_priority_of_request_handling(
    container: Container, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login storm hashes in niced threads, so other requests preempt it (make bench)."""
    niceness: list[int] = []
    real_verify = container.hasher.verify_sync

    def observed_verify(password_hash: str, password: str) -> bool:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_verify(password_hash, password)

    monkeypatch.setattr(container.hasher, "verify_sync", observed_verify)
    user_record = await container.users.get_by_email(user.email)
    assert user_record is not None
    assert await container.hasher.verify(user_record.password_hash, PASSWORD)
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert niceness == [min(19, ours + HASH_THREAD_NICENESS)]

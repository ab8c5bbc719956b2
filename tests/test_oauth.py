"""Social sign-in against a real OpenID provider on loopback (issue 22): the web redirect
flow (PKCE, state, nonce, a one-time exchange code), the native ID-token flow, and
linking and unlinking identities."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from app.config import OAuthProviderConfig
from tests.support.accounts import PASSWORD, Account, sign_in, signed_in
from tests.support.apps import http_client, make_settings, running_app
from tests.support.github import running_github
from tests.support.oidc import Provider, nonce_digest, running_provider
from tests.support.problems import assert_problem

FRONTEND = "https://app.example/auth/done"
WEB_CLIENT, NATIVE_CLIENT = "docstore-web", "docstore-ios"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


@pytest.fixture(scope="module")
def github() -> Iterator[str]:
    with running_github() as url:
        yield url


@pytest.fixture
async def app(database_url: str, provider: Provider, github: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url,
        public_url="https://app.example",
        oauth_providers={
            "corp": OAuthProviderConfig(
                issuer=provider.issuer,
                client_id=WEB_CLIENT,
                client_secret="web-secret",
                native_client_ids=[NATIVE_CLIENT],
                display_name="Corp ID",
            ),
            "github": OAuthProviderConfig(
                preset="github",
                client_id="gh-client",
                client_secret="gh-secret",
                authorization_endpoint=f"{github}/login/oauth/authorize",
                token_endpoint=f"{github}/login/oauth/access_token",
                userinfo_endpoint=f"{github}/user",
            ),
        },
    )
    async with running_app(settings) as running:
        yield running


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


def person(provider: Provider, *, verified: bool = True, email: str | None = None) -> str:
    sub = "sub-" + secrets.token_hex(6)
    provider.set_person(sub, email=email or f"{sub}@example.com", verified=verified)
    return sub


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def native_sign_in(api: httpx.AsyncClient, provider: Provider, sub: str) -> httpx.Response:
    """What an app does with the platform SDK: an ID token for a fresh nonce, sent."""
    nonce = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce)
    return await api.post("/v1/auth/oauth/corp/id-token", json={"id_token": token, "nonce": nonce})


async def web_sign_in(
    api: httpx.AsyncClient, provider: Provider, sub: str, *, challenge: str | None = None
) -> dict[str, str]:
    """Browser steps: authorize → the provider's form → the API's callback; the query
    the frontend is sent back with."""
    params = {
        "redirect_uri": FRONTEND,
        "state": "frontend-state",
        "code_challenge": challenge or pkce()[1],
        "code_challenge_method": "S256",
    }
    started = await api.get("/v1/auth/oauth/corp/authorize", params=params)
    assert started.status_code == 302, started.text
    to_provider = started.headers["location"]
    sent = query(to_provider)
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] and sent["state"]
    assert sent["client_id"] == WEB_CLIENT
    back = provider.authorize_as(to_provider, sub)
    assert back.startswith("http://docstore.test/v1/auth/oauth/corp/callback?")
    done = await api.get(back.removeprefix("http://docstore.test"))
    assert done.status_code == 303, done.text
    location = done.headers["location"]
    assert location.startswith(FRONTEND + "?")
    assert "access_token" not in location and "refresh_token" not in location
    return query(location)


async def test_web_flow_creates_an_account_and_signs_in_with_a_one_time_code(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    sub = person(provider)
    verifier, challenge = pkce()
    back = await web_sign_in(api, provider, sub, challenge=challenge)
    assert back["state"] == "frontend-state"
    # The code needs the frontend's PKCE verifier...
    wrong = await api.post(
        "/v1/auth/oauth/exchange", json={"code": back["code"], "code_verifier": "x" * 43}
    )
    assert_problem(wrong, 400, "invalid_token")
    # ...and a wrong try used it up: a new sign-in gives a new code.
    back = await web_sign_in(api, provider, sub, challenge=challenge)
    tokens = await api.post(
        "/v1/auth/oauth/exchange", json={"code": back["code"], "code_verifier": verifier}
    )
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    me = (await api.get("/v1/users/me", headers=headers)).json()
    assert me["email"] == f"{sub}@example.com" and me["email_verified"] is True
    sessions = (await api.get("/v1/users/me/sessions", headers=headers)).json()["items"]
    current = next(s for s in sessions if s["current"])
    assert (current["method"], current["provider"]) == ("oauth", "corp")
    identities = (await api.get("/v1/users/me/identities", headers=headers)).json()["items"]
    assert [(i["provider"], i["subject"]) for i in identities] == [("corp", sub)]
    # The code works once.
    again = await api.post(
        "/v1/auth/oauth/exchange", json={"code": back["code"], "code_verifier": verifier}
    )
    assert_problem(again, 400, "invalid_token")


async def test_a_bad_state_or_another_browser_cannot_finish_a_sign_in(
    api: httpx.AsyncClient, app: FastAPI, provider: Provider
) -> None:
    sub = person(provider)
    started = await api.get(
        "/v1/auth/oauth/corp/authorize",
        params={"redirect_uri": FRONTEND, "code_challenge": pkce()[1]},
    )
    back = provider.authorize_as(started.headers["location"], sub)
    path = back.removeprefix("http://docstore.test")
    # Another browser (no cookie from the start) cannot use the provider's answer.
    async with http_client(app) as other_browser:
        stolen = await other_browser.get(path)
    assert_problem(stolen, 400, "oauth_state_invalid")
    # Nor can a made-up state, and the state the other browser tried is spent.
    forged = path.replace("state=", "state=forged")
    assert_problem(await api.get(forged), 400, "oauth_state_invalid")
    assert_problem(await api.get(path), 400, "oauth_state_invalid")


async def test_a_redirect_uri_off_the_allow_list_is_refused(api: httpx.AsyncClient) -> None:
    challenge = pkce()[1]
    for url in (
        "https://evil.example/cb",
        "https://app.example.evil.example/cb",
        # An answer planted in the URL would reach the frontend beside (or as) the real one.
        f"{FRONTEND}?code=planted",
        f"{FRONTEND}?error=access_denied",
    ):
        refused = await api.get(
            "/v1/auth/oauth/corp/authorize",
            params={"redirect_uri": url, "code_challenge": challenge},
        )
        problem = assert_problem(refused, 422, "validation_failed")
        assert problem["errors"][0]["loc"] == ["query", "redirect_uri"]
    # Signing in takes the frontend's PKCE challenge: its code is useless elsewhere.
    bare = await api.get("/v1/auth/oauth/corp/authorize", params={"redirect_uri": FRONTEND})
    problem = assert_problem(bare, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["query", "code_challenge"]
    unknown = await api.get(
        "/v1/auth/oauth/nope/authorize",
        params={"redirect_uri": FRONTEND, "code_challenge": pkce()[1]},
    )
    assert_problem(unknown, 404, "provider_not_found")


async def test_cancelling_at_the_provider_returns_an_error_to_the_frontend(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    started = await api.get(
        "/v1/auth/oauth/corp/authorize",
        params={"redirect_uri": FRONTEND, "state": "s1", "code_challenge": pkce()[1]},
    )
    denied = provider.http.post(started.headers["location"], data={"action": "deny"})
    # The mock leaves the state out of its error redirect; real providers send it back.
    state = query(started.headers["location"])["state"]
    location = denied.headers["location"] + f"&state={state}"
    back = await api.get(location.removeprefix("http://docstore.test"))
    assert back.status_code == 303
    assert query(back.headers["location"]) | {"error_description": ""} == {
        "error": "access_denied",
        "error_description": "",
        "state": "s1",
    }


async def test_native_flow_signs_in_with_an_id_token_and_its_nonce_once(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    sub = person(provider)
    nonce = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce)
    body = {"id_token": token, "nonce": nonce}
    signed = await api.post("/v1/auth/oauth/corp/id-token", json=body)
    assert signed.status_code == 200, signed.text
    assert signed.json()["token_type"] == "bearer"
    replayed = await api.post(
        "/v1/auth/oauth/corp/id-token", json={"id_token": token, "nonce": nonce}
    )
    assert_problem(replayed, 401, "id_token_invalid")
    # Apple's and Google's SDKs put the nonce's SHA-256 in the token: the raw one matches.
    other = secrets.token_urlsafe(16)
    hashed = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce_digest(other))
    ok = await api.post("/v1/auth/oauth/corp/id-token", json={"id_token": hashed, "nonce": other})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "case",
    ["wrong_audience", "expired", "wrong_nonce", "missing_nonce", "wrong_issuer", "forged"],
)
async def test_native_flow_refuses_tokens_not_meant_for_this_app(
    api: httpx.AsyncClient, provider: Provider, case: str
) -> None:
    sub = person(provider)
    nonce = secrets.token_urlsafe(16)
    body: dict[str, str] = {"nonce": nonce}
    now = int(time.time())
    good = {"sub": sub, "aud": NATIVE_CLIENT, "nonce": nonce}
    if case == "wrong_audience":
        body["id_token"] = provider.id_token_from_flow(sub, client_id="someone-else", nonce=nonce)
    elif case == "expired":
        body["id_token"] = provider.mint(**good, iat=now - 900, exp=now - 600)
    elif case == "wrong_nonce":
        body["id_token"] = provider.mint(**good | {"nonce": "another"})
    elif case == "missing_nonce":
        body = {"id_token": provider.mint(**good)}
    elif case == "wrong_issuer":
        body["id_token"] = provider.mint(**good, iss="https://evil.example")
    else:
        token = provider.mint(**good)
        head, payload, signature = token.split(".")
        body["id_token"] = f"{head}.{payload}.{signature[:-6]}AAAAAA"
    refused = await api.post("/v1/auth/oauth/corp/id-token", json=body)
    if case == "missing_nonce":
        problem = assert_problem(refused, 422, "validation_failed")
        assert problem["errors"][0]["loc"] == ["body", "nonce"]
    else:
        assert_problem(refused, 401, "id_token_invalid")
    # Nothing was created.
    assert_problem(
        await api.post("/v1/auth/login", json={"email": f"{sub}@example.com", "password": "x"}),
        401,
        "invalid_credentials",
    )


async def test_an_unverified_provider_email_never_signs_in_to_an_existing_account(
    api: httpx.AsyncClient, app: FastAPI, provider: Provider
) -> None:
    victim = await signed_in(app, api)
    sub = person(provider, verified=False, email=victim.email)
    refused = await native_sign_in(api, provider, sub)
    # Refused, with the same answer as for an address nobody has: nothing to learn.
    assert_problem(refused, 403, "email_not_verified")
    back = await web_sign_in(api, provider, sub)
    assert back["error"] == "email_not_verified" and "code" not in back
    identities = await api.get("/v1/users/me/identities", headers=victim.headers)
    assert identities.json()["items"] == []
    nobody = await native_sign_in(api, provider, person(provider, verified=False))
    assert_problem(nobody, 403, "email_not_verified")


async def test_a_code_without_the_frontends_verifier_is_useless(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    """Login CSRF: an attacker's code pushed into a victim's browser cannot be exchanged
    there, since the victim's frontend has no verifier for it."""
    back = await web_sign_in(api, provider, person(provider))
    pushed = await api.post("/v1/auth/oauth/exchange", json={"code": back["code"]})
    assert_problem(pushed, 400, "invalid_token")


async def test_a_hashed_nonce_signs_in_once_whichever_form_is_sent(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    sub = person(provider)
    raw = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce_digest(raw))
    first = await api.post("/v1/auth/oauth/corp/id-token", json={"id_token": token, "nonce": raw})
    assert first.status_code == 200, first.text
    again = await api.post(
        "/v1/auth/oauth/corp/id-token", json={"id_token": token, "nonce": nonce_digest(raw)}
    )
    assert_problem(again, 401, "id_token_invalid")


async def test_malformed_and_misaddressed_tokens_are_refused_not_errors(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    sub = person(provider)
    nonce = secrets.token_urlsafe(16)
    good = provider.mint(sub=sub, aud=NATIVE_CLIENT, nonce=nonce)
    _, payload, signature = good.split(".")
    odd_header = base64.urlsafe_b64encode(b'{"alg":"RS256","crit":[1]}').rstrip(b"=").decode()
    # Issued to another client that also named this app (azp says whose it is).
    shared = provider.mint(sub=sub, aud=["other-app", NATIVE_CLIENT], azp="other-app", nonce=nonce)
    for token in (f"{odd_header}.{payload}.{signature}", "a.b.c", "....", shared):
        refused = await api.post(
            "/v1/auth/oauth/corp/id-token", json={"id_token": token, "nonce": nonce}
        )
        assert_problem(refused, 401, "id_token_invalid")


async def test_an_account_without_a_password_needs_a_recent_sign_in_for_changes(
    api: httpx.AsyncClient, app: FastAPI, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = person(provider)
    signed = await native_sign_in(api, provider, sub)
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    container = app.state.container
    later = container.auth.clock() + timedelta(minutes=11)
    monkeypatch.setattr(container.auth, "clock", lambda: later)
    body = {"current_password": "anything at all", "new_password": "a new passphrase"}
    stale = await api.post("/v1/users/me/password", json=body, headers=headers)
    assert_problem(stale, 403, "reauthentication_required")
    monkeypatch.undo()
    # A fresh sign-in stands in for the password it does not have.
    nonce = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce)
    fresh = await api.post("/v1/auth/oauth/corp/id-token", json={"id_token": token, "nonce": nonce})
    headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    changed = await api.post("/v1/users/me/password", json=body, headers=headers)
    assert changed.status_code == 200, changed.text
    login = await api.post(
        "/v1/auth/login", json={"email": f"{sub}@example.com", "password": "a new passphrase"}
    )
    assert login.status_code == 200, login.text


async def test_a_verified_email_links_only_to_a_verified_account(
    api: httpx.AsyncClient, app: FastAPI, provider: Provider
) -> None:
    email = f"ada-{secrets.token_hex(4)}@example.com"
    await app.state.container.auth.create_user(
        email=email, password=PASSWORD, name="Ada", role="user", email_verified=True
    )
    owner = await sign_in(api, email)
    sub = person(provider, email=email)
    signed = await native_sign_in(api, provider, sub)
    assert signed.status_code == 200, signed.text
    me = await api.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {signed.json()['access_token']}"}
    )
    assert me.json()["id"] == owner.id
    # An account whose own address was never confirmed (perhaps pre-registered by someone
    # else) is not linked, even to a verified provider email.
    unconfirmed = await signed_in(app, api)
    refused = await native_sign_in(api, provider, person(provider, email=unconfirmed.email))
    assert_problem(refused, 409, "identity_not_linked")


async def link_by_id_token(
    api: httpx.AsyncClient, provider: Provider, account: Account, sub: str
) -> httpx.Response:
    nonce = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce)
    return await api.post(
        "/v1/users/me/identities/corp/id-token",
        json={"id_token": token, "nonce": nonce, "current_password": account.password},
        headers=account.headers,
    )


async def test_linking_needs_the_password_and_an_identity_links_to_one_account(
    api: httpx.AsyncClient, app: FastAPI, provider: Provider
) -> None:
    account = await signed_in(app, api)
    sub = person(provider, verified=False)
    nonce = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(sub, client_id=NATIVE_CLIENT, nonce=nonce)
    no_password = await api.post(
        "/v1/users/me/identities/corp/id-token",
        json={"id_token": token, "nonce": nonce},
        headers=account.headers,
    )
    problem = assert_problem(no_password, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["body", "current_password"]
    linked = await link_by_id_token(api, provider, account, sub)
    assert linked.status_code == 201, linked.text
    assert linked.json()["provider"] == "corp" and linked.json()["subject"] == sub
    # Now that identity signs in to this account (its email was unverified: linking
    # while signed in is how such an identity joins an account).
    signed = await native_sign_in(api, provider, sub)
    me = await api.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {signed.json()['access_token']}"}
    )
    assert me.json()["id"] == account.id
    other = await signed_in(app, api)
    taken = await link_by_id_token(api, provider, other, sub)
    assert_problem(taken, 409, "identity_in_use")


async def test_the_web_link_is_redeemed_only_by_the_account_that_started_it(
    api: httpx.AsyncClient, app: FastAPI, provider: Provider
) -> None:
    account = await signed_in(app, api)
    sub = person(provider)
    started = await api.post(
        "/v1/users/me/identities/corp/authorize",
        json={"redirect_uri": FRONTEND, "current_password": account.password},
        headers=account.headers,
    )
    assert started.status_code == 200, started.text
    opened = await api.get(started.json()["url"].removeprefix("http://docstore.test"))
    assert opened.status_code == 302, opened.text
    # The ticket binds to the first browser that opens it.
    assert_problem(
        await api.get(started.json()["url"].removeprefix("http://docstore.test")),
        400,
        "oauth_state_invalid",
    )
    back = provider.authorize_as(opened.headers["location"], sub)
    done = await api.get(back.removeprefix("http://docstore.test"))
    code = query(done.headers["location"])["code"]
    someone_else = await signed_in(app, api)
    stolen = await api.post(
        "/v1/users/me/identities/corp/exchange", json={"code": code}, headers=someone_else.headers
    )
    assert_problem(stolen, 400, "invalid_token")
    # The stolen try spent the code: start again, and redeem it as the account.
    started = await api.post(
        "/v1/users/me/identities/corp/authorize",
        json={"redirect_uri": FRONTEND, "current_password": account.password},
        headers=account.headers,
    )
    opened = await api.get(started.json()["url"].removeprefix("http://docstore.test"))
    back = provider.authorize_as(opened.headers["location"], sub)
    done = await api.get(back.removeprefix("http://docstore.test"))
    code = query(done.headers["location"])["code"]
    linked = await api.post(
        "/v1/users/me/identities/corp/exchange", json={"code": code}, headers=account.headers
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["subject"] == sub


async def test_unlinking_the_last_way_to_sign_in_is_refused(
    api: httpx.AsyncClient, provider: Provider
) -> None:
    sub = person(provider)
    signed = await native_sign_in(api, provider, sub)
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    # A provider-made account has no password: its identity is its only way in.
    mine = (await api.get("/v1/users/me/identities", headers=headers)).json()["items"]
    refused = await api.delete(f"/v1/users/me/identities/{mine[0]['id']}", headers=headers)
    assert_problem(refused, 409, "last_sign_in_method")
    assert len((await api.get("/v1/users/me/identities", headers=headers)).json()["items"]) == 1
    # With a second provider identity linked, the first can go.
    second = person(provider)
    nonce = secrets.token_urlsafe(16)
    token = provider.id_token_from_flow(second, client_id=NATIVE_CLIENT, nonce=nonce)
    linked = await api.post(
        "/v1/users/me/identities/corp/id-token",
        json={"id_token": token, "nonce": nonce},
        headers=headers,
    )
    assert linked.status_code == 201, linked.text
    gone = await api.delete(f"/v1/users/me/identities/{mine[0]['id']}", headers=headers)
    assert gone.status_code == 204
    missing = await api.delete(f"/v1/users/me/identities/{mine[0]['id']}", headers=headers)
    assert_problem(missing, 404, "identity_not_found")


async def test_the_provider_list_names_what_a_sign_in_screen_shows(
    api: httpx.AsyncClient,
) -> None:
    listed = await api.get("/v1/auth/oauth/providers")
    assert listed.json() == {
        "items": [
            {"name": "corp", "title": "Corp ID", "id_token": True},
            {"name": "github", "title": "GitHub", "id_token": False},
        ]
    }


async def test_github_signs_in_with_its_verified_primary_email(
    api: httpx.AsyncClient, github: str
) -> None:
    """GitHub is OAuth2 without OpenID: the identity comes from its user API."""
    verifier, challenge = pkce()
    started = await api.get(
        "/v1/auth/oauth/github/authorize",
        params={"redirect_uri": FRONTEND, "code_challenge": challenge},
    )
    assert started.status_code == 302, started.text
    sent = query(started.headers["location"])
    assert sent["scope"] == "read:user user:email" and "nonce" not in sent
    async with httpx.AsyncClient() as browser:
        at_github = await browser.get(started.headers["location"])
    done = await api.get(at_github.headers["location"].removeprefix("http://docstore.test"))
    back = query(done.headers["location"])
    tokens = await api.post(
        "/v1/auth/oauth/exchange", json={"code": back["code"], "code_verifier": verifier}
    )
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    me = (await api.get("/v1/users/me", headers=headers)).json()
    assert (me["email"], me["email_verified"], me["name"]) == (
        "octo@example.com",
        True,
        "Octo Cat",
    )
    identities = (await api.get("/v1/users/me/identities", headers=headers)).json()["items"]
    assert [(i["provider"], i["subject"]) for i in identities] == [("github", "4242")]
    # It issues no ID tokens: the native route says so.
    refused = await api.post(
        "/v1/auth/oauth/github/id-token", json={"id_token": "a.b.c", "nonce": "n"}
    )
    assert_problem(refused, 401, "id_token_invalid")


async def test_starting_sign_ins_is_rate_limited_per_address(
    database_url: str, provider: Provider
) -> None:
    """Each start stores a pending flow: an anonymous client cannot pile them up."""
    settings = make_settings(
        database_url,
        public_url="https://app.example",
        rate_limit_login_per_ip=2,
        oauth_providers={"corp": OAuthProviderConfig(issuer=provider.issuer, client_id="web")},
    )
    async with running_app(settings) as app, http_client(app) as client:
        params = {"redirect_uri": FRONTEND, "code_challenge": pkce()[1]}
        for _ in range(2):
            started = await client.get("/v1/auth/oauth/corp/authorize", params=params)
            assert started.status_code == 302, started.text
        refused = await client.get("/v1/auth/oauth/corp/authorize", params=params)
        assert_problem(refused, 429, "rate_limited")
        assert await app.state.container.db["oauth_flows"].count_documents({}) == 2


def microsoft(tenant: str, *, host: str = "login.microsoftonline.com") -> str:
    """A Microsoft issuer URL naming `tenant`."""
    return f"https://{host}/{tenant}/v2.0"


ONE_TENANT = "0d2b6f1c-1111-2222-3333-444455556666"
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"  # Microsoft's personal accounts


@pytest.mark.parametrize(
    ("config", "published", "accepted"),
    [
        ({"issuer": "https://id.example"}, "https://id.example", True),
        ({"issuer": "https://id.example/"}, "https://id.example", True),
        ({"issuer": "https://id.example"}, "https://evil.example", False),
        ({"issuer": "https://id.example/tenant-a"}, "https://id.example/tenant-b", False),
        # Microsoft's multi-tenant endpoints publish a template ID tokens fill in...
        ({"preset": "microsoft"}, microsoft("{tenantid}"), True),
        # ...but an app of one tenant takes that tenant's issuer only (in any case).
        ({"preset": "microsoft", "tenant": ONE_TENANT}, microsoft("{tenantid}"), False),
        ({"preset": "microsoft", "tenant": ONE_TENANT}, microsoft(ONE_TENANT.upper()), True),
        ({"preset": "microsoft", "tenant": ONE_TENANT}, microsoft(CONSUMERS), False),
        # Microsoft names other tenants by their id: personal accounts, a domain name.
        ({"preset": "microsoft", "tenant": "consumers"}, microsoft(CONSUMERS), True),
        ({"preset": "microsoft", "tenant": "contoso.onmicrosoft.com"}, microsoft(ONE_TENANT), True),
        (
            {"preset": "microsoft", "tenant": "consumers"},
            microsoft(CONSUMERS, host="login.evil.example"),
            False,
        ),
    ],
)
async def test_discovery_must_name_the_configured_issuer(
    config: dict[str, str], published: str, accepted: bool
) -> None:
    """OpenID Connect Discovery 4.3: a discovery document naming another issuer is not
    the configured provider's; sign-ins with it are refused (503), not trusted."""
    from app.accounts.oauth_providers import Provider as SignInProvider
    from app.accounts.oauth_providers import ProviderUnavailable

    def discovery(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/.well-known/openid-configuration")
        base = "https://endpoints.example"
        return httpx.Response(
            200,
            json={
                "issuer": published,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/keys",
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(discovery)) as http:
        provider = SignInProvider("corp", OAuthProviderConfig(client_id="c", **config), http)
        if accepted:
            assert (await provider.metadata()).issuer == published
        else:
            with pytest.raises(ProviderUnavailable, match="names the issuer"):
                await provider.metadata()


@pytest.mark.parametrize(
    ("preset", "claims", "verified"),
    [
        ("microsoft", {"xms_edov": True}, True),
        ("microsoft", {"xms_edov": False}, False),
        ("microsoft", {}, False),  # Entra's default: no claim says the address is verified
        ("microsoft", {"xms_edov": "true"}, False),  # a boolean claim, as Entra sends it
        ("google", {"xms_edov": True}, False),  # Microsoft's claim, from Microsoft only
        ("google", {"email_verified": True}, True),
    ],
)
async def test_entra_addresses_are_verified_by_the_domain_owner_claim(
    preset: str, claims: dict[str, object], verified: bool
) -> None:
    from app.accounts.oauth_providers import Provider as SignInProvider

    async with httpx.AsyncClient() as http:
        provider = SignInProvider(preset, OAuthProviderConfig(preset=preset, client_id="c"), http)
        found = provider.identity_of({"sub": "s1", "email": "Ada@Corp.example", **claims})
    assert (found.email, found.email_verified) == ("ada@corp.example", verified)

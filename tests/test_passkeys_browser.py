"""Passkeys in a real browser (issue 22): headless Chromium with a virtual authenticator
(Chrome DevTools Protocol `WebAuthn.addVirtualAuthenticator`, via Playwright) registers a
passkey with the real server, signs in with it, and answers a two-step sign-in with it.

WebAuthn needs a secure context on a domain: the page is the API's own origin, on
`http://localhost:<port>` (an IP address is refused as a relying party id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest

from app.config import Settings
from tests.support.accounts import PASSWORD
from tests.support.browser import BROWSER_ARGS, CHROMIUM
from tests.support.problems import assert_problem
from tests.support.servers import api_server, free_port

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)

# The browser side, as an app would write it (Chromium 129+ parses WebAuthn JSON). A
# ceremony with no authenticator would wait forever: the signal bounds it.
CEREMONIES = """
window.passkeyCreate = async (options) => {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  const made = await navigator.credentials.create({publicKey, signal: AbortSignal.timeout(20000)});
  return made.toJSON();
};
window.passkeyGet = async (options) => {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const got = await navigator.credentials.get({publicKey, signal: AbortSignal.timeout(20000)});
  return got.toJSON();
};
"""


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    port = free_port()
    origin = f"http://localhost:{port}"
    with api_server(
        str(settings.mongodb_url), settings.mongodb_db, PORT=str(port), PUBLIC_URL=origin
    ):
        yield origin


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_a_passkey_registers_signs_in_and_answers_a_second_factor(server: str) -> None:
    from playwright.async_api import async_playwright

    email = "passkey-person@example.com"
    async with httpx.AsyncClient(base_url=server, timeout=30) as api:
        made = await api.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Pat"}
        )
        assert made.status_code == 201, made.text
        login = await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        me = bearer(login.json())
        account_id = (await api.get("/v1/users/me", headers=me)).json()["id"]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{server}/readyz")
                await page.add_script_tag(content=CEREMONIES)
                cdp = await page.context.new_cdp_session(page)
                await cdp.send("WebAuthn.enable", {"enableUI": False})
                await cdp.send(
                    "WebAuthn.addVirtualAuthenticator",
                    {
                        "options": {
                            "protocol": "ctap2",
                            "transport": "internal",
                            "hasResidentKey": True,
                            "hasUserVerification": True,
                            "isUserVerified": True,
                        }
                    },
                )

                async def ceremony(kind: str, options: dict[str, Any]) -> dict[str, Any]:
                    answer = await asyncio.wait_for(
                        page.evaluate(f"o => {kind}(o)", options), timeout=30
                    )
                    assert isinstance(answer, dict)
                    return answer

                # Register: re-authenticate, create the credential in the browser, verify.
                options = await api.post(
                    "/v1/users/me/passkey-options",
                    json={"current_password": PASSWORD},
                    headers=me,
                )
                assert options.status_code == 200, options.text
                created = await ceremony("passkeyCreate", options.json()["options"])
                registered = await api.post(
                    "/v1/users/me/passkeys",
                    json={
                        "challenge_id": options.json()["challenge_id"],
                        "credential": created,
                        "name": "Laptop",
                    },
                    headers=me,
                )
                assert registered.status_code == 201, registered.text
                listed = (await api.get("/v1/users/me/passkeys", headers=me)).json()["items"]
                assert [p["name"] for p in listed] == ["Laptop"]

                # Sign in with it, usernameless: the passkey names the account.
                options = await api.post("/v1/auth/passkey/options")
                got = await ceremony("passkeyGet", options.json()["options"])
                body = {"challenge_id": options.json()["challenge_id"], "credential": got}
                signed = await api.post("/v1/auth/passkey", json=body)
                assert signed.status_code == 200, signed.text
                mine = (await api.get("/v1/users/me", headers=bearer(signed.json()))).json()
                assert mine["id"] == account_id
                sessions = await api.get("/v1/users/me/sessions", headers=bearer(signed.json()))
                current = next(s for s in sessions.json()["items"] if s["current"])
                assert current["method"] == "passkey"
                # The same answer again: its challenge is spent.
                assert_problem(
                    await api.post("/v1/auth/passkey", json=body), 401, "passkey_invalid"
                )

                # With TOTP on, a password sign-in can be finished with the passkey.
                started = await api.post(
                    "/v1/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=me
                )
                totp = pyotp.TOTP(started.json()["secret"])
                confirmed = await api.post(
                    "/v1/users/me/mfa/totp/confirm", json={"code": totp.now()}, headers=me
                )
                assert confirmed.status_code == 200, confirmed.text
                challenge = await api.post(
                    "/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                assert challenge.json()["methods"] == ["totp", "recovery_code", "passkey"]
                mfa_token = challenge.json()["mfa_token"]
                options = await api.post(
                    "/v1/auth/mfa/passkey-options", json={"mfa_token": mfa_token}
                )
                assert options.status_code == 200, options.text
                got = await ceremony("passkeyGet", options.json()["options"])
                verified = await api.post(
                    "/v1/auth/mfa/verify",
                    json={
                        "mfa_token": mfa_token,
                        "challenge_id": options.json()["challenge_id"],
                        "credential": got,
                    },
                )
                assert verified.status_code == 200, verified.text
                sessions = await api.get("/v1/users/me/sessions", headers=bearer(verified.json()))
                current = next(s for s in sessions.json()["items"] if s["current"])
                assert current["method"] == "password+passkey"
            finally:
                await browser.close()

        # The account has a password, so its one passkey may go.
        now = bearer(verified.json())
        removed = await api.delete(f"/v1/users/me/passkeys/{listed[0]['id']}", headers=now)
        assert removed.status_code == 204, removed.text
        assert (await api.get("/v1/users/me/passkeys", headers=now)).json()["items"] == []

"""The admin console at /admin (issue 24): served under a strict policy, built from its
sources, and driven in headless Chromium against a real server, as an admin would use it.

The browser test writes the README's screenshots (docs/console/*.png) as it goes.
"""

from __future__ import annotations

import io
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pyotp
import pytest
import segno

from app.config import Settings
from tests.support.accounts import PASSWORD
from tests.support.apps import ROOT
from tests.support.browser import BROWSER_ARGS, CHROMIUM
from tests.support.node import NODE, NODE_TOOLS, TSC
from tests.support.scripts import script
from tests.support.servers import api_server

BUNDLE = ROOT / "app" / "http" / "console_assets" / "console.js"
SCREENSHOTS = ROOT / "docs" / "console"
AXE = NODE_TOOLS / "axe-core" / "axe.min.js"


# -- served as a static page under a strict policy -----------------------------------------


async def test_the_console_is_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/admin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    # Only this origin's assets: nothing from a CDN, so it works offline.
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/admin/assets/console.js", "/admin/assets/console.css"):
        assert asset in page.text
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["content-security-policy"] == policy, asset
    script = await client.get("/admin/assets/console.js")
    assert "javascript" in script.headers["content-type"]
    slash = await client.get("/admin/")
    assert slash.status_code == 308 and slash.headers["location"] == "/admin"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (apt-get install nodejs npm)")
def test_the_committed_bundle_is_built_from_the_sources(tmp_path: Path) -> None:
    """As with openapi.json: `make console` after changing console/src, the SDK or the
    contract, and commit app/http/console_assets/console.js."""
    if not TSC.exists():
        pytest.fail("clients/node_modules is missing: run `make node-tools` (make test does)")

    def run(*argv: str) -> None:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"

    assert NODE is not None
    run(NODE, "clients/generate.mjs", "openapi.json", "console/src/contract.d.ts")
    run(str(TSC), "-p", "console/tsconfig.json")
    run(NODE, "clients/build-console.mjs", str(tmp_path / "console.js"))
    assert (tmp_path / "console.js").read_bytes() == BUNDLE.read_bytes(), (
        "app/http/console_assets/console.js is stale: run `make console` and commit it"
    )


# -- in a browser --------------------------------------------------------------------------

pytest_browser = pytest.mark.skipif(
    CHROMIUM is None or not AXE.exists(),
    reason="Chromium and the Node tools are needed (apt-get install chromium; make node-tools)",
)


@dataclass
class Site:
    url: str
    admin_email: str
    recovery_codes: list[str]
    admin: dict[str, str]  # the admin's headers, for changes made "elsewhere"
    user_email: str
    user_id: str
    user: dict[str, str]


def bearer(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def site(settings: Settings) -> Iterator[Site]:
    env = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "64"}
    with api_server(str(settings.mongodb_url), settings.mongodb_db, **env) as (url, _):
        tag = uuid.uuid4().hex[:8]  # each test's accounts (the database outlives a test)
        admin_email = f"ops-{tag}@console.test"
        made = script(
            settings, "scripts.create_admin", "--email", admin_email, "--password", PASSWORD
        )
        assert made.returncode == 0, made.stderr
        with httpx.Client(base_url=url, timeout=30) as http:
            login = {"email": admin_email, "password": PASSWORD}
            admin = bearer(http.post("/v1/auth/login", json=login))
            # Two-step sign-in on: the console asks for the second factor.
            started = http.post(
                "/v1/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=admin
            )
            code = pyotp.TOTP(started.json()["secret"]).now()
            confirmed = http.post(
                "/v1/users/me/mfa/totp/confirm", json={"code": code}, headers=admin
            )
            assert confirmed.status_code == 200, confirmed.text
            recovery_codes = confirmed.json()["recovery_codes"]
            person = {"email": f"grace-{tag}@console.test", "password": PASSWORD, "name": "Grace"}
            assert http.post("/v1/auth/register", json=person).status_code == 201
            user = bearer(http.post("/v1/auth/login", json=login | {"email": person["email"]}))
            user_id = http.get("/v1/users/me", headers=user).json()["id"]
        yield Site(url, admin_email, recovery_codes, admin, person["email"], user_id, user)


class Browser:
    """One page of headless Chromium on the console, recording what a reviewer checks:
    requests that leave the server's origin, policy violations, script errors."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.outside: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request: Any) -> None:
        url = urlparse(request.url)
        if url.scheme in ("data", "blob"):
            return
        if f"{url.scheme}://{url.netloc}" != self.origin:
            self.outside.append(request.url)

    async def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    async def accessible(self, where: str) -> None:
        """axe-core finds no serious or critical violation on the page as it is now."""
        if not await self.page.evaluate("typeof axe !== 'undefined'"):
            # Through DevTools, which the page's policy does not govern (the page itself
            # may run no script but its own).
            await self.page.evaluate(AXE.read_text(encoding="utf-8"))
        found = await self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)})))"
        )
        bad = [v for v in found if v["impact"] in ("serious", "critical")]
        assert not bad, f"accessibility problems on {where}: {bad}"

    async def csp_violations(self) -> list[str]:
        return list(await self.page.evaluate("window.__violations || []"))


WATCH_POLICY = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def png() -> bytes:
    out = io.BytesIO()
    segno.make("docstore").save(out, kind="png", scale=4)
    return out.getvalue()


@pytest_browser
async def test_an_admin_runs_the_data_and_the_accounts_from_the_console(site: Site) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        api = httpx.AsyncClient(base_url=site.url, timeout=30)  # changes made elsewhere
        try:
            # (In the same run: a second server and browser cost most of a test's time.)
            await non_admin_is_turned_away(chromium, site)
            context = await chromium.new_context(viewport={"width": 1280, "height": 800})
            await context.add_init_script(WATCH_POLICY)
            page = await context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            browser = Browser(page, site.url)
            await page.goto(f"{site.url}/admin")

            # Sign in with the keyboard only, then the second factor (a recovery code).
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await browser.accessible("the sign-in page")
            await browser.screenshot("sign-in")
            await page.get_by_label("Email").focus()
            await page.keyboard.type(site.admin_email)
            await page.keyboard.press("Tab")
            await page.keyboard.type("a wrong password")
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("alert")).to_contain_text("password")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
            await page.get_by_label("Code from your authenticator app").fill(site.recovery_codes[0])
            await page.get_by_label("This is a recovery code").check()
            await page.get_by_role("button", name="Verify").click()
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            await expect(page.get_by_text("Latency p95")).to_be_visible()
            await expect(page.get_by_text("Webhooks and history")).to_be_visible()
            await browser.accessible("the overview")
            await browser.screenshot("overview")
            # The skip link moves the focus to the page, and stays on it.
            await page.locator(".skip").focus()
            await page.keyboard.press("Enter")
            await expect(page.locator("#main")).to_be_focused()
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

            # Declare a collection with a schema.
            await page.get_by_role("link", name="Collections").click()
            await page.get_by_label("Name").fill("todos")
            await page.get_by_label("Description").fill("Things to do")
            await page.get_by_label("Who may read").select_option("authenticated")
            await page.get_by_label("JSON Schema (optional)").fill(
                '{"type": "object", "properties": {"title": {"type": "string"}}}'
            )
            await page.get_by_role("button", name="Declare").click()
            await expect(page.get_by_role("heading", name="todos")).to_be_visible()
            declared = (await api.get("/v1/collections/todos", headers=site.user)).json()
            assert declared["access"]["read"] == "authenticated"

            # Add a document, edit it, and meet a change made elsewhere (If-Match).
            await page.get_by_role("link", name="New document").click()
            await page.get_by_label("Data (JSON)").fill('{"title": "Buy milk"}')
            await page.get_by_role("button", name="Create").click()
            await expect(page).to_have_url(re.compile(r"#/collections/todos/documents/"))
            doc_id = page.url.rsplit("/", 1)[-1]
            await expect(page.get_by_role("heading", name=f"Document {doc_id}")).to_be_visible()
            docs = f"/v1/collections/todos/documents/{doc_id}"
            editor = page.get_by_label("Data (JSON)")
            await editor.fill('{"title": "Buy oat milk"}')
            await page.get_by_role("button", name="Save", exact=True).click()
            await expect(page.get_by_role("status")).to_have_text("Saved: version 2")

            await editor.fill('{"title": 5}')
            await page.get_by_role("button", name="Save", exact=True).click()
            await expect(page.get_by_role("alert")).to_contain_text("data.title")

            changed = await api.put(docs, json={"title": "Buy soy milk"}, headers=site.admin)
            assert changed.status_code == 200, changed.text
            file_put = await api.put(
                f"{docs}/files/label.png",
                content=png(),
                headers=site.admin | {"Content-Type": "image/png"},
            )
            assert file_put.status_code == 201, file_put.text
            await editor.fill('{"title": "Buy rice milk"}')
            await page.get_by_role("button", name="Save", exact=True).click()
            conflict = page.get_by_role("alert").filter(has_text="Someone changed this document")
            await expect(conflict).to_contain_text("version 3")
            await browser.screenshot("document-conflict")
            await expect(conflict).to_contain_text("Buy soy milk")  # theirs, shown
            await expect(editor).to_have_value('{"title": "Buy rice milk"}')  # mine, kept
            await page.get_by_role("button", name="Use their version").click()
            await expect(editor).to_have_value('{\n  "title": "Buy soy milk"\n}')
            # Again, and this time keep mine (what the editor holds now).
            await editor.fill('{"title": "Buy almond milk"}')
            changed = await api.put(docs, json={"title": "Buy goat milk"}, headers=site.admin)
            assert changed.status_code == 200, changed.text
            await page.get_by_role("button", name="Save", exact=True).click()
            await expect(conflict).to_contain_text("Buy goat milk")
            await editor.fill('{"title": "Buy hemp milk"}')
            await page.get_by_role("button", name="Overwrite with mine").click()
            await expect(page.get_by_role("status")).to_have_text("Saved: version 5")
            kept = (await api.get(docs, headers=site.admin)).json()
            assert kept["data"] == {"title": "Buy hemp milk"} and kept["version"] == 5

            # The file attached elsewhere: listed, previewed as an image.
            await page.get_by_role("button", name="Reload").click()
            await page.get_by_role("button", name="Preview label.png").click()
            await expect(page.get_by_role("img", name="Preview of label.png")).to_be_visible()
            await browser.accessible("a document")

            # Delete it (the confirmation is accepted).
            await page.get_by_role("button", name="Delete document").click()
            await expect(page.get_by_role("heading", name="todos")).to_be_visible()
            assert (await api.get(docs, headers=site.admin)).status_code == 404

            # Watch a change arrive live.
            await page.get_by_role("link", name="Live").click()
            await expect(page.get_by_text("Watching: changes appear here")).to_be_visible()
            made = await api.post(
                "/v1/collections/todos/documents", json={"title": "Call Ada"}, headers=site.user
            )
            assert made.status_code == 201, made.text
            arrived = page.locator("ol.events li").filter(has_text=made.json()["id"])
            await expect(arrived).to_contain_text("created")
            await expect(arrived).to_contain_text("Call Ada")
            await browser.accessible("the live view")
            await browser.screenshot("live")

            # The schema dry run reports stored documents a new schema would reject.
            await page.get_by_role("link", name="Settings").click()
            await page.get_by_label("JSON Schema").fill('{"type": "object", "required": ["due"]}')
            await page.get_by_role("button", name="Check schema against stored documents").click()
            await expect(
                page.get_by_text("1 of 1 stored documents would be rejected")
            ).to_be_visible()
            await browser.accessible("the collection settings")
            await browser.screenshot("schema-check")
            # Saving it asks again, then saves on the second press.
            await page.get_by_role("button", name="Save", exact=True).click()
            await expect(page.get_by_role("alert")).to_contain_text("would reject")
            schema = (await api.get("/v1/collections/todos", headers=site.admin)).json()["schema"]
            assert schema["properties"]["title"] == {"type": "string"}  # not saved yet
            await page.get_by_role("button", name="Save anyway").click()
            await expect(page.get_by_role("link", name="New document")).to_be_visible()
            schema = (await api.get("/v1/collections/todos", headers=site.admin)).json()["schema"]
            assert schema == {"type": "object", "required": ["due"]}

            # Disable a user; their session stops working at once.
            await page.get_by_role("link", name="Users").click()
            await page.get_by_label("Email or name").fill("grace")
            await page.get_by_role("button", name="Search").click()
            await page.get_by_role("link", name=site.user_email).click()
            await expect(page.get_by_role("heading", name=site.user_email)).to_be_visible()
            await browser.accessible("a user")
            await page.get_by_role("button", name="Disable account").click()
            await expect(page.get_by_role("status")).to_have_text(
                "Account disabled: its sessions have ended"
            )
            await expect(page.get_by_role("button", name="Enable account")).to_be_visible()
            await browser.screenshot("user")
            assert (await api.get("/v1/users/me", headers=site.user)).status_code == 401
            assert (await api.get(f"/v1/users/{site.user_id}", headers=site.admin)).json()[
                "disabled"
            ]

            # The mail outbox (grace's verification mail is in it).
            await page.get_by_role("link", name="Mail").click()
            await expect(page.get_by_role("cell", name=site.user_email)).to_be_visible()
            await browser.accessible("the mail outbox")

            # On a phone: the same pages fit the screen.
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.get_by_role("link", name="Collections").click()
            await expect(page.get_by_role("link", name="todos")).to_be_visible()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
            await browser.screenshot("phone")

            assert not browser.outside, f"requests left the server: {browser.outside}"
            assert not await browser.csp_violations()
            assert not browser.errors, browser.errors
            # Trusted Types: no string becomes markup on this page, whoever writes it.
            refused = await page.evaluate(
                "(() => { try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>');"
                " return 'inserted' } catch (e) { return e.name } })()"
            )
            assert refused == "TypeError"
        finally:
            await api.aclose()
            await chromium.close()


async def non_admin_is_turned_away(chromium: Any, site: Site) -> None:
    """A signed-in user who is not an admin is signed out again, the session not kept."""
    from playwright.async_api import expect

    context = await chromium.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{site.url}/admin")
        await page.get_by_label("Email").fill(site.user_email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_text("The console is for admins")).to_be_visible()
        assert await page.evaluate("sessionStorage.length + localStorage.length") == 0
        await expect(page.get_by_role("navigation", name="Sections")).to_be_empty()
    finally:
        await context.close()

"""Swagger UI and ReDoc render in a real browser with no internet: every asset is local."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from app.config import Settings
from tests.support.browser import BROWSER_ARGS, CHROMIUM
from tests.support.servers import api_server

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The real server (uvicorn) on a loopback port."""
    with api_server(str(settings.mongodb_url), settings.mongodb_db) as (url, _):
        yield url


async def test_swagger_ui_and_redoc_render_offline(server: str) -> None:
    from playwright.async_api import async_playwright

    outside: list[str] = []

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = await browser.new_page()

            async def only_loopback(route, request):  # type: ignore[no-untyped-def]
                if urlparse(request.url).hostname in ("127.0.0.1", "localhost"):
                    await route.continue_()
                else:  # what a machine without internet would see
                    outside.append(request.url)
                    await route.abort()

            await page.route("**/*", only_loopback)
            await page.goto(f"{server}/docs")
            await page.wait_for_selector("#operations-auth-auth_login", timeout=30_000)
            assert await page.locator(".opblock").count() >= 25
            assert await page.locator(".authorize").count() == 1

            await page.goto(f"{server}/redoc")
            heading = page.locator("h2", has_text="Sign in with email and password")
            await heading.first.wait_for(timeout=30_000)
        finally:
            await browser.close()
    assert outside == [], f"the docs tried to reach the internet: {outside}"

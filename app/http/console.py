"""Serve the admin console: one page and its assets, under a strict Content-Security-Policy.

The console is a static single-page app (console/src, bundled by `make console` into
app/http/console_assets/console.js, committed, so `make run` needs no Node). It talks to
this API through the TypeScript SDK, as any app would: same origin, no private endpoints.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, RedirectResponse, Response

STATIC = Path(__file__).parent / "console_assets"
ASSETS_URL = "/admin/assets"

# Scripts, styles, fonts and API calls from this origin only; no inline script or style,
# no eval; images from here or blob: (file previews); never framed (clickjacking); forms
# post nowhere (every action is a fetch). Trusted Types with no policy: no DOM sink that
# parses HTML or loads script from a string (innerHTML, document.write...) runs at all,
# so text from the API can never become markup (the console builds nodes, textContent).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@lru_cache(maxsize=1)
def _page() -> bytes:
    return (STATIC / "index.html").read_bytes()


class _Assets(StaticFiles):
    """The bundle and stylesheet, with the page's policy (a script opened directly)."""

    async def get_response(self, path: str, scope):  # type: ignore[no-untyped-def]
        response: Response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_console(app: FastAPI) -> None:
    app.mount(ASSETS_URL, _Assets(directory=STATIC), name="console-assets")

    @app.get("/admin", include_in_schema=False)
    async def console_page() -> HTMLResponse:
        return HTMLResponse(_page(), headers=PAGE_HEADERS)

    @app.get("/admin/", include_in_schema=False)
    async def console_slash() -> RedirectResponse:
        return RedirectResponse("/admin", status_code=308)

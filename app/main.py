"""The application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.accounts.auth_router import router as auth_router
from app.accounts.oauth_router import identities_router
from app.accounts.oauth_router import router as oauth_router
from app.accounts.passkey_router import auth_router as passkey_auth_router
from app.accounts.passkey_router import options_router as passkey_options_router
from app.accounts.passkey_router import router as passkeys_router
from app.accounts.user_router import router as users_router
from app.audit.router import router as audit_router
from app.collections.router import router as collections_router
from app.config import Settings, get_settings
from app.contract.router import ContractCache
from app.contract.router import router as contract_router
from app.documents.batch_router import router as batch_router
from app.documents.history_router import router as history_router
from app.documents.router import router as documents_router
from app.files.router import router as files_router
from app.http.admin import router as admin_router
from app.http.console import install_console
from app.http.docs import install_docs
from app.http.fast_get import DocumentGetFastPath
from app.http.health import router as ops_router
from app.http.middleware import RequestContextMiddleware
from app.http.openapi import build_openapi
from app.http.problems import install_error_handlers
from app.lifespan import lifespan
from app.realtime.router import router as realtime_router
from app.teams.router import router as teams_router
from app.webhooks.router import router as webhooks_router

ROUTERS = (
    documents_router,
    batch_router,
    realtime_router,
    files_router,
    collections_router,
    auth_router,
    oauth_router,
    identities_router,
    passkeys_router,
    passkey_options_router,
    passkey_auth_router,
    users_router,
    teams_router,
    contract_router,
    admin_router,
    webhooks_router,
    audit_router,
    history_router,
    ops_router,
)

API_DESCRIPTION = """
User accounts plus a queryable JSON document store on MongoDB.

Every error is `application/problem+json` with a stable `code`; every response
carries `X-Request-ID`. Sign in with `POST /v1/auth/login` (or the Authorize button)
and send `Authorization: Bearer <access_token>`.
"""


def create_app(settings: Settings | None = None, *, fast_paths: bool = True) -> FastAPI:
    """The app. `fast_paths=False` leaves every request to FastAPI's routes (tests compare
    the two; see app/documents/fast_get.py)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Docstore",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs with local assets
        redoc_url=None,
        # A trailing slash gets a relative redirect from the 404 handler (app.errors),
        # not Starlette's, which builds its Location from the client's Host header.
        redirect_slashes=False,
    )
    install_docs(app)
    install_console(app)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.live_contracts = ContractCache()
    install_error_handlers(app)
    if fast_paths:
        # Innermost of ours: CORS and the request context wrap it like any route.
        app.add_middleware(DocumentGetFastPath)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    # Added last, so it wraps everything (CORS and error handling included).
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        file_max_bytes=settings.file_max_bytes,
    )
    # Routes are matched in order, one by one: the busiest first. No two routers' paths
    # overlap, so the order changes nothing else. The routes are the routers' own, built
    # once at import and shared by every app: `include_router` (FastAPI 0.16x) would wrap
    # each router and build all its routes' validators again for every app, on its first
    # request (0.4 s an app here), and check the router for changes on every request.
    for router in ROUTERS:
        app.router.routes.extend(router.routes)
    return app

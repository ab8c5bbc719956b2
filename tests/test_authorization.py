"""Authorization matrix: every route x {anonymous, user, other user, admin}.

The routes come from the app's route table, so a route added without a rule here fails
`test_every_route_has_a_rule`. Each route gets one world (accounts and data), in which
every caller has targets of its own (its own document of `user`, session, API key,
victim, refresh token), so no cell sees what another changed; only the parts its route
aims at are built (`parts_of`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.accounts.auth_service import ClientInfo
from app.accounts.models import Role
from app.clock import utc_now
from app.config import Settings
from app.container import Container
from app.main import create_app
from app.webhooks.schemas import WebhookIn
from tests.support.accounts import PASSWORD, Account, MakeAccount
from tests.support.apps import shared_settings

ANON, USER, OTHER, ADMIN = "anonymous", "user", "other user", "admin"
PRINCIPALS = (ANON, OTHER, USER, ADMIN)

OK = "ok"  # served: 2xx/3xx
# What each principal gets, by rule.
RULES: dict[str, dict[str, int | str]] = {
    "public": {ANON: OK, USER: OK, OTHER: OK, ADMIN: OK},
    "signed_in": {ANON: 401, USER: OK, OTHER: OK, ADMIN: OK},
    "admin": {ANON: 401, USER: 403, OTHER: 403, ADMIN: OK},
    # Documents of an owner-read/owner-write collection, where `user` owns the document.
    "collection": {ANON: 401, USER: OK, OTHER: OK, ADMIN: OK},
    "own_document": {ANON: 401, USER: OK, OTHER: 404, ADMIN: OK},
    # `user`'s own session or API key: nobody else's business, admins included.
    "own_credential": {ANON: 401, USER: OK, OTHER: 404, ADMIN: 404},
    # A mailed token decides, not the caller: a bogus one is 400 for everyone.
    "mailed_token": {ANON: 400, USER: 400, OTHER: 400, ADMIN: 400},
    # The same, for signed-in callers only (a team invitation joins the caller).
    "signed_in_token": {ANON: 401, USER: 400, OTHER: 400, ADMIN: 400},
    # Routes that act on the caller's own second factor, which nobody has turned on.
    "own_mfa_off": {ANON: 401, USER: 409, OTHER: 409, ADMIN: 409},
    # A sign-in challenge decides, not the caller: a bogus one is 401 for everyone.
    "mfa_token": {ANON: 401, USER: 401, OTHER: 401, ADMIN: 401},
    # Social sign-in with no provider configured here: every provider name is unknown.
    "no_provider": {ANON: 404, USER: 404, OTHER: 404, ADMIN: 404},
    # The same behind sign-in (linking a provider; an identity or passkey nobody has).
    "own_identity": {ANON: 401, USER: 404, OTHER: 404, ADMIN: 404},
    # A passkey answer decides, not the caller: one that signs no live challenge is 401.
    "passkey_challenge": {ANON: 401, USER: 401, OTHER: 401, ADMIN: 401},
    # A team `user` owns: invisible to non-members, site admins included.
    "own_team": {ANON: 401, USER: OK, OTHER: 404, ADMIN: 404},
    # Restoring from a trash that holds nothing: 404 once signed in.
    "empty_trash": {ANON: 401, USER: 404, OTHER: 404, ADMIN: 404},
    # Admins only, aimed at nothing there: 404 for them.
    "admin_missing": {ANON: 401, USER: 403, OTHER: 403, ADMIN: 404},
}


@dataclass
class World:
    """What each caller's request aims at, by caller: all of it belongs to `user` (but
    the victims, other accounts)."""

    accounts: dict[str, Account]
    victim_id: dict[str, str]
    doc_id: dict[str, str]
    session_id: dict[str, str]  # `user`'s; the caller `user`'s is its current one
    key_id: dict[str, str]  # API keys of `user`
    refresh_token: dict[str, str]  # anonymous callers present one of `user`'s
    team_id: dict[str, str]  # teams `user` owns
    member_id: dict[str, str]  # a member of that team (not `user`)
    invitation_id: dict[str, str]  # a pending invitation to that team
    user_id: str = ""  # `user`'s account id
    mail_id: str = ""  # a mail message that gave up (part "mail")
    # A webhook per caller, each with a message that gave up (part "webhooks").
    webhook_id: dict[str, str] = field(default_factory=dict)
    delivery_id: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Event streams end right after they open, so a 200 stream is a finished response."""
    return shared_settings(database_url, realtime_max_stream_seconds=0.01)


Request = tuple[str, dict[str, Any]]  # path, httpx keyword arguments
# Well-formed passkey answers that sign nothing the server asked for.
_CREDENTIAL = {"id": "AAAA", "rawId": "AAAA", "type": "public-key"}
REGISTRATION = _CREDENTIAL | {"response": {"clientDataJSON": "e30", "attestationObject": "oA"}}
ASSERTION = _CREDENTIAL | {
    "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"}
}
Builder = Callable[[World, str], Request]


def refresh_of(world: World, who: str) -> dict[str, Any]:
    return {"json": {"refresh_token": world.refresh_token[who]}}


DOCS = "/v1/collections/notes/documents"


def team_of(world: World, who: str, tail: str = "") -> str:
    return f"/v1/teams/{world.team_id[who]}{tail}"


ROUTES: dict[str, tuple[str, Builder]] = {
    "ops_health": ("public", lambda w, p: ("/healthz", {})),
    "ops_ready": ("public", lambda w, p: ("/readyz", {})),
    "ops_metrics": ("public", lambda w, p: ("/metrics", {})),
    "auth_register": (
        "public",
        lambda w, p: (
            "/v1/auth/register",
            {
                "json": {
                    "email": f"new-{p.replace(' ', '-')}@example.com",
                    "password": PASSWORD,
                    "name": "N",
                }
            },
        ),
    ),
    "auth_login": (
        "public",
        lambda w, p: (
            "/v1/auth/login",
            {"json": {"email": w.accounts[USER].email, "password": PASSWORD}},
        ),
    ),
    "auth_token": (
        "public",
        lambda w, p: (
            "/v1/auth/token",
            {
                "data": {
                    "grant_type": "password",
                    "username": w.accounts[USER].email,
                    "password": PASSWORD,
                }
            },
        ),
    ),
    "auth_refresh": ("public", lambda w, p: ("/v1/auth/refresh", refresh_of(w, p))),
    "auth_logout": ("public", lambda w, p: ("/v1/auth/logout", refresh_of(w, p))),
    "auth_logout_all": ("signed_in", lambda w, p: ("/v1/auth/logout-all", {})),
    "users_get_me": ("signed_in", lambda w, p: ("/v1/users/me", {})),
    "users_update_me": ("signed_in", lambda w, p: ("/v1/users/me", {"json": {"name": "Me"}})),
    "users_change_password": (
        "signed_in",
        lambda w, p: (
            "/v1/users/me/password",
            {"json": {"current_password": PASSWORD, "new_password": "another long passphrase"}},
        ),
    ),
    "users_delete_me": (
        "signed_in",
        lambda w, p: ("/v1/users/me", {"json": {"current_password": PASSWORD}}),
    ),
    "auth_verify_email_request": ("signed_in", lambda w, p: ("/v1/auth/verify-email/request", {})),
    "auth_verify_email": (
        "mailed_token",
        lambda w, p: ("/v1/auth/verify-email", {"json": {"token": "not-a-token"}}),
    ),
    "auth_password_reset_request": (
        "public",
        lambda w, p: (
            "/v1/auth/password-reset/request",
            {"json": {"email": f"x-{p.replace(' ', '-')}@example.com"}},  # limits are per address
        ),
    ),
    "auth_password_reset": (
        "mailed_token",
        lambda w, p: (
            "/v1/auth/password-reset",
            {"json": {"token": "not-a-token", "new_password": "a new long passphrase"}},
        ),
    ),
    "users_list_sessions": ("signed_in", lambda w, p: ("/v1/users/me/sessions", {})),
    "users_revoke_session": (
        "own_credential",
        lambda w, p: (f"/v1/users/me/sessions/{w.session_id[p]}", {}),
    ),
    "users_create_api_key": (
        "signed_in",
        lambda w, p: (
            "/v1/users/me/api-keys",
            {"json": {"name": "ci", "current_password": PASSWORD}},
        ),
    ),
    "users_list_api_keys": ("signed_in", lambda w, p: ("/v1/users/me/api-keys", {})),
    "users_revoke_api_key": (
        "own_credential",
        lambda w, p: (f"/v1/users/me/api-keys/{w.key_id[p]}", {}),
    ),
    "users_mfa_status": ("signed_in", lambda w, p: ("/v1/users/me/mfa", {})),
    "users_mfa_totp_start": (
        "signed_in",
        lambda w, p: ("/v1/users/me/mfa/totp", {"json": {"current_password": PASSWORD}}),
    ),
    "users_mfa_totp_confirm": (
        "own_mfa_off",
        lambda w, p: ("/v1/users/me/mfa/totp/confirm", {"json": {"code": "123456"}}),
    ),
    "users_mfa_totp_disable": (
        "own_mfa_off",
        lambda w, p: ("/v1/users/me/mfa/totp", {"json": {"current_password": PASSWORD}}),
    ),
    "users_mfa_recovery_codes": (
        "own_mfa_off",
        lambda w, p: (
            "/v1/users/me/mfa/recovery-codes",
            {"json": {"current_password": PASSWORD}},
        ),
    ),
    "auth_magic_link_request": (
        "public",
        lambda w, p: (
            "/v1/auth/magic-link/request",
            {"json": {"email": f"m-{p.replace(' ', '-')}@example.com"}},
        ),
    ),
    "auth_magic_link": (
        "mailed_token",
        lambda w, p: ("/v1/auth/magic-link", {"json": {"token": "not-a-token"}}),
    ),
    "auth_mfa_verify": (
        "mfa_token",
        lambda w, p: (
            "/v1/auth/mfa/verify",
            {"json": {"mfa_token": "mfa_not-a-token", "code": "123456"}},
        ),
    ),
    "auth_oauth_providers": ("public", lambda w, p: ("/v1/auth/oauth/providers", {})),
    "auth_oauth_authorize": (
        "no_provider",
        lambda w, p: (
            "/v1/auth/oauth/corp/authorize",
            {
                "params": {
                    "redirect_uri": "http://localhost:5173/done",
                    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                }
            },
        ),
    ),
    "auth_oauth_callback": (
        "mailed_token",
        lambda w, p: ("/v1/auth/oauth/corp/callback", {"params": {"state": "s", "code": "c"}}),
    ),
    "auth_oauth_callback_form": (
        "mailed_token",
        lambda w, p: ("/v1/auth/oauth/corp/callback", {"data": {"state": "s", "code": "c"}}),
    ),
    "auth_oauth_exchange": (
        "mailed_token",
        lambda w, p: ("/v1/auth/oauth/exchange", {"json": {"code": "not-a-code"}}),
    ),
    "auth_oauth_id_token": (
        "no_provider",
        lambda w, p: ("/v1/auth/oauth/corp/id-token", {"json": {"id_token": "a.b.c"}}),
    ),
    "users_list_identities": ("signed_in", lambda w, p: ("/v1/users/me/identities", {})),
    "users_link_identity_id_token": (
        "own_identity",
        lambda w, p: (
            "/v1/users/me/identities/corp/id-token",
            {"json": {"id_token": "a.b.c", "current_password": PASSWORD}},
        ),
    ),
    "users_link_identity_start": (
        "own_identity",
        lambda w, p: (
            "/v1/users/me/identities/corp/authorize",
            {"json": {"redirect_uri": "http://localhost:5173/done"}},
        ),
    ),
    "users_link_identity_exchange": (
        "signed_in_token",
        lambda w, p: ("/v1/users/me/identities/corp/exchange", {"json": {"code": "not-a-code"}}),
    ),
    "users_unlink_identity": (
        "own_identity",
        lambda w, p: ("/v1/users/me/identities/6650c2aa0000000000000001", {}),
    ),
    "users_passkey_options": (
        "signed_in",
        lambda w, p: ("/v1/users/me/passkey-options", {"json": {"current_password": PASSWORD}}),
    ),
    "users_passkey_register": (
        "passkey_challenge",
        lambda w, p: (
            "/v1/users/me/passkeys",
            {"json": {"challenge_id": "nope", "credential": REGISTRATION}},
        ),
    ),
    "users_passkey_list": ("signed_in", lambda w, p: ("/v1/users/me/passkeys", {})),
    "users_passkey_remove": (
        "own_identity",
        lambda w, p: ("/v1/users/me/passkeys/6650c2aa0000000000000001", {}),
    ),
    "auth_passkey_options": ("public", lambda w, p: ("/v1/auth/passkey/options", {})),
    "auth_passkey": (
        "passkey_challenge",
        lambda w, p: (
            "/v1/auth/passkey",
            {"json": {"challenge_id": "nope", "credential": ASSERTION}},
        ),
    ),
    "auth_mfa_passkey_options": (
        "mfa_token",
        lambda w, p: ("/v1/auth/mfa/passkey-options", {"json": {"mfa_token": "mfa_nope"}}),
    ),
    "users_list": ("admin", lambda w, p: ("/v1/users", {})),
    "users_get": ("admin", lambda w, p: (f"/v1/users/{w.victim_id[p]}", {})),
    "users_update": (
        "admin",
        lambda w, p: (f"/v1/users/{w.victim_id[p]}", {"json": {"name": "V"}}),
    ),
    "users_delete": ("admin", lambda w, p: (f"/v1/users/{w.victim_id[p]}", {})),
    # Another account's sessions and keys: `user`'s, from an admin (the console).
    "users_list_sessions_of": ("admin", lambda w, p: (f"/v1/users/{w.user_id}/sessions", {})),
    "users_revoke_session_of": (
        "admin",
        lambda w, p: (f"/v1/users/{w.user_id}/sessions/{w.session_id[p]}", {}),
    ),
    "users_logout_all": ("admin", lambda w, p: (f"/v1/users/{w.victim_id[p]}/logout-all", {})),
    "users_list_api_keys_of": ("admin", lambda w, p: (f"/v1/users/{w.user_id}/api-keys", {})),
    "users_revoke_api_key_of": (
        "admin",
        lambda w, p: (f"/v1/users/{w.user_id}/api-keys/{w.key_id[p]}", {}),
    ),
    "admin_stats": ("admin", lambda w, p: ("/v1/admin/stats", {})),
    "admin_mail_list": ("admin", lambda w, p: ("/v1/admin/mail", {})),
    "admin_mail_retry": ("admin", lambda w, p: (f"/v1/admin/mail/{w.mail_id}/retry", {})),
    "collections_schema_check": (
        "admin",
        lambda w, p: ("/v1/collections/notes/schema-check", {"json": {"schema": {}}}),
    ),
    "collections_create": ("admin", lambda w, p: ("/v1/collections", {"json": {"name": "more"}})),
    "collections_list": ("admin", lambda w, p: ("/v1/collections", {})),
    "collections_get": ("signed_in", lambda w, p: ("/v1/collections/notes", {})),
    # Signed-in callers get every collection's types; anonymous ones the public ones.
    "schema_openapi": ("public", lambda w, p: ("/v1/schema/openapi.json", {})),
    "collections_update": (
        "admin",
        lambda w, p: ("/v1/collections/notes", {"json": {"description": "d"}}),
    ),
    "collections_delete": ("admin", lambda w, p: ("/v1/collections/notes", {})),
    "documents_create": ("collection", lambda w, p: (DOCS, {"json": {"t": 1}})),
    "documents_bulk_create": (
        "collection",
        lambda w, p: (f"{DOCS}/bulk", {"json": {"documents": [{"t": 1}]}}),
    ),
    "documents_list": ("collection", lambda w, p: (DOCS, {})),
    "batch_run": (
        "collection",
        lambda w, p: (
            "/v1/batch",
            {"json": {"operations": [{"op": "create", "collection": "notes", "data": {"t": 1}}]}},
        ),
    ),
    "documents_bulk_update": (
        "collection",
        lambda w, p: (f"{DOCS}/bulk-update", {"json": {"filter": {}, "update": {"inc": {"t": 1}}}}),
    ),
    "documents_bulk_delete": (
        "collection",
        lambda w, p: (f"{DOCS}/bulk-delete", {"json": {"filter": {}, "dry_run": True}}),
    ),
    "documents_count": ("collection", lambda w, p: (f"{DOCS}/count", {})),
    "documents_aggregate": (
        "collection",
        lambda w, p: (f"{DOCS}/aggregate", {"json": {"metrics": [{"name": "n", "op": "count"}]}}),
    ),
    # A stream the caller may open (it ends at once here: REALTIME_MAX_STREAM_SECONDS).
    "documents_events": ("collection", lambda w, p: ("/v1/collections/notes/events", {})),
    "realtime_ticket": ("signed_in", lambda w, p: ("/v1/realtime/tickets", {})),
    "documents_get": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}", {})),
    "documents_put": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}", {"json": {"t": 2}})),
    "documents_patch": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}", {"json": {"t": 3}})),
    "documents_delete": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}", {})),
    "documents_files_list": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}/files", {})),
    "documents_files_put": (
        "own_document",
        lambda w, p: (f"{DOCS}/{w.doc_id[p]}/files/new.txt", {"content": b"x"}),
    ),
    "documents_files_get": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}/files/a.txt", {})),
    "documents_files_delete": (
        "own_document",
        lambda w, p: (f"{DOCS}/{w.doc_id[p]}/files/a.txt", {}),
    ),
    "documents_files_link": (
        "own_document",
        lambda w, p: (f"{DOCS}/{w.doc_id[p]}/files/a.txt/link", {"json": {"expires_in": 60}}),
    ),
    "documents_update": (
        "own_document",
        lambda w, p: (f"{DOCS}/{w.doc_id[p]}/update", {"json": {"inc": {"t": 1}}}),
    ),
    "documents_shares_list": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}/shares", {})),
    "documents_shares_add": (
        "own_document",
        lambda w, p: (
            f"{DOCS}/{w.doc_id[p]}/shares",
            {"json": {"user": w.victim_id[p], "access": "write"}},
        ),
    ),
    "documents_shares_remove": (
        "own_document",
        lambda w, p: (f"{DOCS}/{w.doc_id[p]}/shares/users/{w.victim_id[p]}", {}),
    ),
    "documents_versions": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}/versions", {})),
    "documents_version": ("own_document", lambda w, p: (f"{DOCS}/{w.doc_id[p]}/versions/1", {})),
    "documents_restore_version": (
        "own_document",
        lambda w, p: (f"{DOCS}/{w.doc_id[p]}/versions/1/restore", {}),
    ),
    "trash_list": ("collection", lambda w, p: ("/v1/collections/notes/trash", {})),
    "trash_restore": ("empty_trash", lambda w, p: ("/v1/collections/notes/trash/x/restore", {})),
    "trash_purge": ("admin_missing", lambda w, p: ("/v1/collections/notes/trash/x", {})),
    "webhooks_list": ("admin", lambda w, p: ("/v1/webhooks", {})),
    "webhooks_create": (
        "admin",
        lambda w, p: (
            "/v1/webhooks",
            {"json": {"url": "https://hooks.example.com/in", "events": ["user.created"]}},
        ),
    ),
    "webhooks_get": ("admin", lambda w, p: (f"/v1/webhooks/{w.webhook_id[p]}", {})),
    "webhooks_update": (
        "admin",
        lambda w, p: (f"/v1/webhooks/{w.webhook_id[p]}", {"json": {"enabled": False}}),
    ),
    "webhooks_delete": ("admin", lambda w, p: (f"/v1/webhooks/{w.webhook_id[p]}", {})),
    "webhooks_rotate_secret": (
        "admin",
        lambda w, p: (f"/v1/webhooks/{w.webhook_id[p]}/secret", {}),
    ),
    "webhooks_deliveries": (
        "admin",
        lambda w, p: (f"/v1/webhooks/{w.webhook_id[p]}/deliveries", {}),
    ),
    "webhooks_delivery": (
        "admin",
        lambda w, p: (f"/v1/webhooks/{w.webhook_id[p]}/deliveries/{w.delivery_id[p]}", {}),
    ),
    "webhooks_redeliver": (
        "admin",
        lambda w, p: (
            f"/v1/webhooks/{w.webhook_id[p]}/deliveries/{w.delivery_id[p]}/redeliver",
            {},
        ),
    ),
    "admin_audit_list": ("admin", lambda w, p: ("/v1/admin/audit", {})),
    "admin_audit_export": ("admin", lambda w, p: ("/v1/admin/audit/export", {})),
    "teams_create": ("signed_in", lambda w, p: ("/v1/teams", {"json": {"name": "T"}})),
    "teams_list": ("signed_in", lambda w, p: ("/v1/teams", {})),
    "teams_accept_invitation": (
        "signed_in_token",
        lambda w, p: ("/v1/teams/invitations/accept", {"json": {"token": "not-a-token"}}),
    ),
    "teams_get": ("own_team", lambda w, p: (team_of(w, p), {})),
    "teams_update": ("own_team", lambda w, p: (team_of(w, p), {"json": {"name": "N"}})),
    "teams_delete": ("own_team", lambda w, p: (team_of(w, p), {})),
    "teams_list_members": ("own_team", lambda w, p: (team_of(w, p, "/members"), {})),
    "teams_update_member": (
        "own_team",
        lambda w, p: (team_of(w, p, f"/members/{w.member_id[p]}"), {"json": {"role": "editor"}}),
    ),
    "teams_remove_member": (
        "own_team",
        lambda w, p: (team_of(w, p, f"/members/{w.member_id[p]}"), {}),
    ),
    "teams_transfer": (
        "own_team",
        lambda w, p: (team_of(w, p, "/transfer"), {"json": {"user_id": w.member_id[p]}}),
    ),
    "teams_invite": (
        "own_team",
        lambda w, p: (
            team_of(w, p, "/invitations"),
            {"json": {"email": f"x-{p.replace(' ', '-')}@example.com"}},
        ),
    ),
    "teams_list_invitations": ("own_team", lambda w, p: (team_of(w, p, "/invitations"), {})),
    "teams_revoke_invitation": (
        "own_team",
        lambda w, p: (team_of(w, p, f"/invitations/{w.invitation_id[p]}"), {}),
    ),
}


def api_routes() -> dict[str, str]:
    """operationId -> HTTP method of every route the app serves (its OpenAPI is built from
    the route table, included routers and all)."""
    spec = create_app().openapi()
    return {
        operation["operationId"]: method.upper()
        for methods in spec["paths"].values()
        for method, operation in methods.items()
    }


METHODS = api_routes()


def test_every_route_has_a_rule() -> None:
    routes = METHODS
    missing = sorted(set(routes) - set(ROUTES))
    assert not missing, f"routes without an authorization rule in this matrix: {missing}"
    assert not sorted(set(ROUTES) - set(routes)), "rules for routes that no longer exist"


def parts_of(operation: str) -> set[str]:
    """The parts of the world a route's requests aim at: only those are built (signing
    in, mailing an invitation and storing a file cost the embedded database most of a
    test's time)."""
    if operation in ("documents_version", "documents_restore_version"):
        # Version 1 is kept once the change pump has read the update after it.
        return {"documents", "history"}
    if operation.startswith("documents_files_"):
        return {"documents", "files"}
    if operation.startswith("documents_shares_"):
        return {"documents", "shares"}
    if operation.startswith("documents_"):
        return {"documents"}
    if operation.startswith("teams_"):
        return {"teams"}
    if operation.startswith(("users_", "auth_")):
        return {"accounts"}
    if operation == "admin_mail_retry":
        return {"mail"}
    if operation.startswith("webhooks_"):
        return {"webhooks"}
    return set()


async def make_world(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
    container: Container,
    parts: set[str] | None = None,
) -> World:
    parts = {"documents", "teams", "accounts"} if parts is None else parts
    accounts = {
        USER: await make_account(),
        OTHER: await make_account(),
        ADMIN: await make_account(role=Role.ADMIN),
    }
    user = accounts[USER]
    admin = accounts[ADMIN].headers
    notes = {"name": "notes", "history": True}
    assert (await client.post("/v1/collections", json=notes, headers=admin)).is_success
    world = World(
        accounts=accounts,
        victim_id={},
        doc_id={},
        session_id={},
        key_id={},
        refresh_token={who: accounts[who].refresh_token for who in PRINCIPALS if who != ANON},
        team_id={},
        member_id={},
        invitation_id={},
        user_id=user.id,
    )
    if "mail" in parts:
        failed = await container.lifecycle.outbox.collection.insert_one(
            {"kind": "verify_email", "to": "x@example.com", "params": {}, "status": "failed"}
            | {"attempts": 12, "created_at": utc_now(), "due_at": utc_now()}
        )
        world.mail_id = str(failed.inserted_id)

    async def bystander() -> str:
        """Another account, not signed in (a victim, a team member, a grantee)."""
        made = await container.auth.create_user(
            email=f"by-{uuid.uuid4().hex[:10]}@example.com",
            password=PASSWORD,
            name="Bystander",
            role=Role.USER,
        )
        return str(made.id)

    if "accounts" in parts:
        # `user`'s spare sessions and API keys are made by the services, as `make_account`
        # makes accounts (the cells' requests are what this matrix is about; making them
        # through the routes cost most of each accounts route's test).
        person = await container.auth.users.get(user.id)
        assert person is not None
        spare = {
            who: await container.auth.start_session(person, ClientInfo("203.0.113.7", "httpx"))
            for who in (ANON, OTHER, ADMIN)
        }
        world.refresh_token[ANON] = spare[ANON].refresh_token
        mine = await client.get("/v1/users/me/sessions", headers=user.headers)
        sessions = mine.json()["items"]
        current = next(s["id"] for s in sessions if s["current"])
        others = iter(s["id"] for s in sessions if not s["current"])
        world.session_id = {who: current if who == USER else next(others) for who in PRINCIPALS}
    owner = await container.auth.users.get_principal(user.id)
    assert owner is not None
    for who in PRINCIPALS:
        if parts & {"accounts", "documents"}:
            world.victim_id[who] = await bystander()
        if "accounts" in parts:
            key, _ = await container.auth.create_api_key(user.id, name=who, expires_at=None)
            world.key_id[who] = key.id
        if "documents" in parts:
            doc = await client.post(DOCS, json={"t": 0}, headers=user.headers)
            world.doc_id[who] = doc.json()["id"]
        if "shares" in parts:
            shared = await client.post(
                f"{DOCS}/{world.doc_id[who]}/shares",
                json={"user": world.victim_id[who], "access": "read"},
                headers=user.headers,
            )
            assert shared.status_code == 201, shared.text
        if "files" in parts:
            attached = await client.put(
                f"{DOCS}/{world.doc_id[who]}/files/a.txt", content=b"a", headers=user.headers
            )
            assert attached.status_code == 201, attached.text
        if "webhooks" in parts:
            hook, _ = await container.webhooks.create(
                WebhookIn(url="https://hooks.example.com/in", events=["user.created"])
            )
            world.webhook_id[who] = str(hook["_id"])
            now = utc_now()
            gave_up = await container.webhooks.repository.deliveries.insert_one(
                {"webhook": hook["_id"], "event": who, "type": "user.created", "body": b"{}"}
                | {"status": "failed", "attempts": 1, "created_at": now, "due_at": now}
                | {"lease_until": now, "log": []}
            )
            world.delivery_id[who] = str(gave_up.inserted_id)
        if "teams" in parts:
            team = (await container.teams.create(owner, f"Team of {who}")).team.id
            world.team_id[who] = team
            world.member_id[who] = await bystander()
            await container.teams.repository.add_member(
                team, world.member_id[who], "member", now=utc_now()
            )
            invited = await container.teams.invite(
                owner, team, f"inv-{len(world.team_id)}@ex.com", "member"
            )
            world.invitation_id[who] = invited.id
    if "history" in parts:
        await container.pump.settled()
    return world


@pytest.mark.parametrize("operation", sorted(ROUTES))
async def test_authorization_matrix(
    operation: str, client: httpx.AsyncClient, make_account: MakeAccount, container: Container
) -> None:
    rule, build = ROUTES[operation]
    method = METHODS[operation]
    world = await make_world(client, make_account, container, parts_of(operation))
    wrong = []
    for principal in PRINCIPALS:  # refused callers first, `user` and `admin` last
        path, kwargs = build(world, principal)
        if principal != ANON:
            kwargs["headers"] = world.accounts[principal].headers
        response = await client.request(method, path, **kwargs)
        expected = RULES[rule][principal]
        served = response.status_code < 400 if expected == OK else response.status_code == expected
        if not served:
            wrong.append((principal, expected, response.status_code, response.text[:300]))
    assert not wrong, (operation, wrong)


# -- documents: the whole read x write x method x caller grid ------------------------------

READ_RULES = ("public", "authenticated", "owner")
WRITE_RULES = ("owner", "authenticated", "admin")
DOC_METHODS = ("GET", "PUT", "PATCH", "DELETE")
OWNER = "owner"
CALLERS = (ANON, OWNER, OTHER, ADMIN)


def expected_status(read: str, write: str, method: str, caller: str) -> int | str:
    """What the contract promises (product.md §4-5): a document the caller may not read
    is 404 on every method; a write the caller may not make is 401/403."""
    signed_in = caller != ANON
    can_read = read == "public" or (
        signed_in and (read == "authenticated" or caller in (OWNER, ADMIN))
    )
    if method == "GET":
        if can_read:
            return OK
        return 401 if not signed_in else 404
    if not signed_in:
        return 401
    if write == "admin" and caller != ADMIN:
        return 403  # "only admins write here" says nothing about the document
    if not can_read:
        return 404
    if write == "owner" and caller not in (OWNER, ADMIN):
        return 403
    return OK


@pytest.mark.parametrize("write", WRITE_RULES)
@pytest.mark.parametrize("read", READ_RULES)
async def test_document_access_grid(
    read: str,
    write: str,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    accounts = {
        OWNER: await make_account(),
        OTHER: await make_account(),
        ADMIN: await make_account(role=Role.ADMIN),
    }
    admin = accounts[ADMIN].headers
    spec = {"name": "grid", "access": {"read": read, "write": write}}
    assert (await client.post("/v1/collections", json=spec, headers=admin)).is_success
    docs = "/v1/collections/grid/documents"
    # The owner of each document: the owner account, or an admin where only admins write.
    author = accounts[ADMIN if write == "admin" else OWNER].headers
    for method in DOC_METHODS:
        for caller in CALLERS:
            created = await client.post(docs, json={"n": 0}, headers=author)
            assert created.status_code == 201, created.text
            doc_id = created.json()["id"]
            headers = accounts[caller].headers if caller != ANON else {}
            body = {"n": 1} if method in ("PUT", "PATCH") else None
            response = await client.request(method, f"{docs}/{doc_id}", headers=headers, json=body)
            # Where only admins write, the "owner" account owns nothing: just another user.
            seen_as = OTHER if write == "admin" and caller == OWNER else caller
            expected = expected_status(read, write, method, seen_as)
            cell = (read, write, method, caller, response.status_code, response.text)
            if expected == OK:
                assert response.status_code < 400, cell
            else:
                assert response.status_code == expected, cell
                # Refused means untouched.
                stored = await client.get(f"{docs}/{doc_id}", headers=admin)
                assert stored.status_code == 200, cell
                assert stored.json()["version"] == 1 and stored.json()["data"] == {"n": 0}, cell

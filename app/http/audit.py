"""Which requests the audit log records, and how (app/audit/log.py keeps them).

Recorded at the edge, once the response is sent, from what the request was (its
operation), who made it (the authenticated caller, or the account a sign-in named, told
by the service through `note_audit`) and how it ended (2xx/3xx success, else failure):
one table, so a new security-relevant route is audited by adding a row here, and
tests/test_audit.py checks that every admin write route has one.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Scope

from app.audit.log import AuditLog
from app.clock import utc_now

log = logging.getLogger("docstore.audit")

AUDITED: dict[str, str] = {
    "auth_login": "sign_in",
    "auth_token": "sign_in",
    "auth_mfa_verify": "sign_in_second_factor",
    "auth_passkey": "sign_in_passkey",
    "auth_magic_link": "sign_in_magic_link",
    "auth_oauth_exchange": "sign_in_provider",
    "auth_oauth_id_token": "sign_in_provider",
    "auth_password_reset": "password_reset",
    "users_change_password": "password_changed",
    "auth_logout_all": "signed_out_everywhere",
    "users_mfa_totp_confirm": "mfa_enabled",
    "users_mfa_totp_disable": "mfa_disabled",
    "users_mfa_recovery_codes": "mfa_recovery_codes_renewed",
    "users_passkey_register": "passkey_added",
    "users_passkey_remove": "passkey_removed",
    "users_link_identity_exchange": "identity_linked",
    "users_link_identity_id_token": "identity_linked",
    "users_unlink_identity": "identity_unlinked",
    "users_create_api_key": "api_key_created",
    "users_revoke_api_key": "api_key_revoked",
    "users_delete_me": "account_deleted",
    "users_update": "account_changed_by_admin",
    "users_delete": "account_deleted_by_admin",
    "users_logout_all": "sessions_revoked_by_admin",
    "users_revoke_session_of": "session_revoked_by_admin",
    "users_revoke_api_key_of": "api_key_revoked_by_admin",
    "collections_create": "collection_created",
    "collections_update": "collection_changed",
    "collections_delete": "collection_deleted",
    "webhooks_create": "webhook_created",
    "webhooks_update": "webhook_changed",
    "webhooks_delete": "webhook_deleted",
    "webhooks_rotate_secret": "webhook_secret_rotated",
    "webhooks_redeliver": "webhook_redelivered",
    "admin_mail_retry": "mail_retried",
    "trash_purge": "trash_purged",
    "admin_audit_export": "audit_exported",
}


SIGN_INS = frozenset(a for a in AUDITED.values() if a.startswith("sign_in"))


def audited_action(scope: Scope) -> str | None:
    route = scope.get("route")
    operation = getattr(route, "operation_id", None)
    return AUDITED.get(operation) if operation else None


async def record(
    scope: Scope, action: str, status: int, notes: dict[str, str], request_id: str
) -> None:
    """Write the request's audit record; a failure to write is logged, never raised (the
    response has gone)."""
    app = scope.get("app")
    container = getattr(getattr(app, "state", None), "container", None)
    audit: AuditLog | None = getattr(container, "audit", None)
    if audit is None:
        return
    state: dict[str, Any] = scope.get("state", {})
    if status == 401 and action not in SIGN_INS:
        return  # nobody signed in knocked on an admin door: the access log has it
    params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
    client = scope.get("client")
    named = notes.pop("user", None)
    actor = state.get("user_id") or (named if status < 400 else None)
    if named is not None and actor is None:
        notes["account"] = named  # the account a failed sign-in named: not its actor
    details = {**params, **{k: v for k, v in notes.items() if k != "subject"}}
    try:
        await audit.record(
            action,
            at=utc_now(),
            outcome="success" if status < 400 else "failure",
            status=status,
            actor_id=actor,
            via=state.get("via"),
            address=client[0] if client else None,
            request_id=request_id,
            route=f"{scope['method']} {getattr(scope.get('route'), 'path', '')}",
            subject=notes.get("subject") or next(iter(params.values()), None),
            details=details,
        )
    except Exception:
        log.exception("could not write an audit record", extra={"action": action})

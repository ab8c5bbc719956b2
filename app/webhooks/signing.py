"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks.

Each request carries `webhook-id` (the message id, the same on every retry),
`webhook-timestamp` (Unix seconds when this attempt was signed) and `webhook-signature`:
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, once per secret in force, separated by
spaces. While a rotated secret's grace period runs, both the new and the old secret sign,
so receivers switch over whenever they like.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secrets_in_force: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_in_force
    )


def headers(
    secrets_in_force: list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets_in_force, msg_id, timestamp, body),
    }

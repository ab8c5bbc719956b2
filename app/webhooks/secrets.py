"""A webhook's signing secrets: sealed at rest, the previous one honoured for a while."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.accounts.mfa import SecretBox


class Secrets:
    def __init__(self, *key_materials: str) -> None:
        self.box = SecretBox(*key_materials, info=b"docstore webhook secrets")

    def seal(self, secret: str, webhook_id: str) -> str:
        return self.box.seal(secret, webhook_id)

    def in_force(self, webhook: dict[str, Any], *, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous one while its
        grace period runs. A secret no key opens any more (JWT_SECRET changed) is left
        out; with none left the attempt fails without sending: rotate the secret."""
        webhook_id = str(webhook["_id"])
        found = [self.box.open(webhook["secret"], webhook_id)]
        until = webhook.get("previous_until")
        if webhook.get("previous_secret") and until is not None and until > now:
            found.append(self.box.open(webhook["previous_secret"], webhook_id))
        return [s for s in found if s]

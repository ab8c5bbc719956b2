"""Sharing one document with users and teams, for reading or for writing.

Shares live on the document (`shared.read`, `shared.write`: user and team ids; a writer
is in both lists), where rules read them (`@user in shared.read`) and indexes can cover
them. Sharing is a change to the document: its version moves and open streams hear of
it, so a stream of someone it was just shared with sees the document appear.

Who manages a document's shares: its owner, the owner and admins of its team, and site
admins. Anyone who may read the document may list them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from app.accounts.principal import Principal
from app.documents import access
from app.documents.core import MAX_WRITE_ATTEMPTS, WriteConflict
from app.documents.crud import DocumentCrud
from app.documents.models import StoredDocument
from app.errors import AppError, ErrorCode, Forbidden, NotFound

GranteeKind = Literal["user", "team"]
Level = Literal["read", "write"]
TEAM_PREFIX = "team_"  # team ids are "team_<random>"; user ids never are
TEAM_MANAGERS = frozenset({"owner", "admin"})


class TooManyShares(AppError):
    code, status = ErrorCode.SHARE_LIMIT_REACHED, 409


@dataclass(frozen=True, slots=True)
class Share:
    kind: GranteeKind
    id: str
    access: Level


def shares_of(doc: StoredDocument) -> list[Share]:
    writers = set(doc.writers)
    return [
        Share(
            "team" if grantee.startswith(TEAM_PREFIX) else "user",
            grantee,
            "write" if grantee in writers else "read",
        )
        for grantee in doc.readers
    ]


def share_not_found(doc_id: str, grantee: str) -> NotFound:
    return NotFound(
        f"Document {doc_id} is not shared with {grantee}", code=ErrorCode.SHARE_NOT_FOUND
    )


class DocumentSharing(DocumentCrud):
    # Whether an account exists (set by the container: documents know no user store).
    account_exists: Callable[[str], Awaitable[bool]] | None = None

    async def _shared(
        self, name: str, doc_id: str, caller: Principal | None
    ) -> tuple[access.Gate, StoredDocument]:
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        doc = await self._repository(spec).get(doc_id, scope=gate.read_scope())
        if doc is None:
            raise access.document_not_found(name, doc_id)
        return gate, doc

    async def shares(self, name: str, doc_id: str, caller: Principal | None) -> list[Share]:
        _, doc = await self._shared(name, doc_id, caller)
        return shares_of(doc)

    async def _check_manager(self, gate: access.Gate, doc: StoredDocument) -> Principal:
        principal = gate.principal
        if principal is None:
            raise access.sign_in_first()
        if principal.is_admin or doc.owner == principal.id:
            return principal
        if doc.team is not None and self.team_roles is not None:
            role = (await self.team_roles(principal.id)).get(doc.team)
            if role in TEAM_MANAGERS:
                return principal
        raise Forbidden(
            f"Only the owner of {gate.spec.id}/{doc.id}, its team's owner and admins, and "
            "site admins share it"
        )

    async def _check_grantee(self, caller: Principal, kind: GranteeKind, grantee: str) -> None:
        if kind == "team":
            roles = await self.team_roles(caller.id) if self.team_roles is not None else {}
            if grantee not in roles:
                raise NotFound(
                    f"You are not a member of team {grantee}", code=ErrorCode.TEAM_NOT_FOUND
                )
            return
        if grantee.startswith(TEAM_PREFIX) or (
            self.account_exists is not None and not await self.account_exists(grantee)
        ):
            raise NotFound(f"User {grantee} does not exist", code=ErrorCode.USER_NOT_FOUND)

    async def share(
        self,
        name: str,
        doc_id: str,
        caller: Principal | None,
        kind: GranteeKind,
        grantee: str,
        level: Level,
    ) -> tuple[Share, bool]:
        """Share the document with a user or a team (or change their level); (the share,
        whether it is new)."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            gate, doc = await self._shared(name, doc_id, caller)
            principal = await self._check_manager(gate, doc)
            await self._check_grantee(principal, kind, grantee)
            new = grantee not in doc.readers
            readers = doc.readers + ((grantee,) if new else ())
            writers = tuple(w for w in doc.writers if w != grantee)
            if level == "write":
                writers += (grantee,)
            if len(readers) > self.settings.document_max_shares:
                raise TooManyShares(
                    f"Document {doc_id} is shared with {self.settings.document_max_shares} "
                    "users and teams, the most allowed (DOCUMENT_MAX_SHARES); share with a "
                    "team instead"
                )
            if (readers, writers) == (doc.readers, doc.writers):
                return Share(kind, grantee, level), False
            repo = self._repository(gate.spec)
            if await repo.set_shares(doc, readers, writers, now=self.clock()) is not None:
                return Share(kind, grantee, level), new
        raise WriteConflict(f"Document {name}/{doc_id} is changing too fast; retry")

    async def unshare(
        self, name: str, doc_id: str, caller: Principal | None, kind: GranteeKind, grantee: str
    ) -> None:
        for _ in range(MAX_WRITE_ATTEMPTS):
            gate, doc = await self._shared(name, doc_id, caller)
            if not any(s.id == grantee and s.kind == kind for s in shares_of(doc)):
                raise share_not_found(doc_id, grantee)
            principal = gate.principal
            # Anyone may leave what was shared with them; managing others' shares takes
            # the right to share.
            if principal is None or principal.id != grantee:
                await self._check_manager(gate, doc)
            readers = tuple(r for r in doc.readers if r != grantee)
            writers = tuple(w for w in doc.writers if w != grantee)
            repo = self._repository(gate.spec)
            if await repo.set_shares(doc, readers, writers, now=self.clock()) is not None:
                return
        raise WriteConflict(f"Document {name}/{doc_id} is changing too fast; retry")

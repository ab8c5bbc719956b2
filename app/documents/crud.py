"""One document at a time: create, get, replace, merge patch, JSON Patch, operators, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, Literal, NoReturn

from app.accounts.principal import Principal
from app.collections.models import CollectionSpec
from app.db import transaction
from app.documents import access
from app.documents.core import (
    MAX_UPDATE_ATTEMPTS,
    MAX_WRITE_ATTEMPTS,
    RESERVED_IDS,
    WRITE_JITTER,
    PreconditionFailed,
    PreconditionRequired,
    Preconditions,
    WriteConflict,
    envelope,
    new_document_id,
    new_write_id,
    write_landed,
)
from app.documents.idempotency import Replay, request_fingerprint
from app.documents.integrity import DocumentIntegrity
from app.documents.json_patch import apply_json_patch, parse_json_patch
from app.documents.merge_patch import merge_patch
from app.documents.models import StoredDocument
from app.documents.offload import Transform
from app.documents.operators import apply_update, parse_update
from app.documents.repository import DocumentExistsError, DocumentRepository
from app.errors import FieldError, Forbidden, ValidationFailed
from app.observability.metrics import WRITE_RETRIES


class DocumentCrud(DocumentIntegrity):
    def _require_precondition(self, pre: Preconditions, *, creating_allowed: bool) -> None:
        if not self.settings.require_if_match or pre.if_match is not None:
            return
        if creating_allowed and pre.if_none_match_any:
            return
        raise PreconditionRequired(
            "This server requires If-Match (the document's ETag) on changes; GET the document first"
        )

    async def _explain_failed_write(
        self,
        spec: CollectionSpec,
        repo: DocumentRepository,
        caller: Principal | None,
        doc_id: str,
        pre: Preconditions,
        action: Literal["update", "delete"],
    ) -> NoReturn:
        """A conditional write matched nothing: say why, exposing nothing unreadable."""
        existing = await repo.get(doc_id)
        gate = await self.gate(spec, caller)
        if existing is None or not gate.can_read(existing):
            raise access.document_not_found(spec.id, doc_id)
        if not gate.can_change(action, existing):
            raise Forbidden(f"You may read {spec.id}/{doc_id} but not {action} it")
        if not pre.matches(existing.version):
            raise PreconditionFailed(
                f"Document {spec.id}/{doc_id} is at version {existing.version}, "
                f"not {_shown(pre.if_match)}"
            )
        raise PreconditionFailed(
            f"Document {spec.id}/{doc_id} changed while this request ran; retry"
        )

    # -- single documents ------------------------------------------------------------------

    async def create(
        self,
        name: str,
        data: Any,
        caller: Principal | None,
        *,
        idempotency_key: str | None = None,
        team: str | None = None,
    ) -> tuple[StoredDocument | None, Replay | None]:
        """A new document with a server-chosen id; or, for a repeated Idempotency-Key, the
        first response to replay."""
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        owner = gate.writer()
        data = await self._checked(spec, data)
        await self._check_team(owner, team)
        await self.check_references(gate, None, data)
        if idempotency_key is None:
            doc = self._admitted(gate, self._new(new_document_id(), owner, data, team))
            await self._insert_new(spec, doc)
            return gate.shown(doc), None

        record = self.idempotency.record_id(owner.id, name, idempotency_key)
        fingerprint = request_fingerprint({"data": data, "team": team} if team else data)
        replay = await self.idempotency.claim(record, fingerprint, now=self.clock())
        if replay is not None:
            return None, await self._replayable(spec, gate, replay)
        try:
            doc = self._admitted(gate, self._new(new_document_id(), owner, data, team))
            await self._insert_new(spec, doc)
        except BaseException:
            await self.idempotency.release(record)
            raise
        await self.idempotency.complete(record, body=envelope(name, doc))
        return gate.shown(doc), None

    async def _check_team(self, owner: Principal, team: str | None) -> None:
        """A new document's team must be one of its creator's (site admins: any)."""
        if team is None or owner.is_admin:
            return
        roles = await self.team_roles(owner.id) if self.team_roles is not None else {}
        if team not in roles:
            raise ValidationFailed(
                f"You are not a member of team {team}",
                errors=[FieldError(loc=["query", "team"], msg="not your team", type="team")],
            )

    @staticmethod
    def _admitted(gate: access.Gate, doc: StoredDocument) -> StoredDocument:
        """`doc`, once the create rule and the field rules allow it."""
        gate.check_create(doc)
        gate.check_field_writes(None, doc.data, new=doc)
        return doc

    async def _replayable(self, spec: CollectionSpec, gate: access.Gate, replay: Replay) -> Replay:
        """A first response replayed as the caller may see it now: 404 once they may no
        longer read the document, without the fields their rules now hide."""
        doc_id = replay.body.get("id") if isinstance(replay.body, dict) else None
        if not isinstance(doc_id, str):
            return replay
        current = await self._repository(spec).get(doc_id)
        if current is None or not gate.can_read(current):
            raise access.document_not_found(spec.id, doc_id)
        if not gate.hidden(current):
            return replay
        stored = StoredDocument(
            id=doc_id,
            owner=current.owner,
            version=1,
            created_at=current.created_at,
            updated_at=current.updated_at,
            data=replay.body.get("data", {}),
            team=current.team,
        )
        return Replay(body={**replay.body, "data": gate.shown(stored).data})

    async def _insert_new(self, spec: CollectionSpec, doc: StoredDocument) -> None:
        """Insert a document under a fresh random id. The id can only clash with this very
        insert, landed once already when the driver retried it after a lost answer."""
        repo = self._repository(spec)
        doc.writes = (write_id := new_write_id(),)
        try:
            await repo.insert(doc)
        except DocumentExistsError:
            if await write_landed(repo, doc.id, write_id) is None:
                raise

    async def get(self, name: str, doc_id: str, caller: Principal | None) -> StoredDocument:
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        doc = await self._repository(spec).get(doc_id, scope=gate.read_scope())
        if doc is None:
            raise access.document_not_found(name, doc_id)
        return gate.shown(doc)

    async def put(
        self,
        name: str,
        doc_id: str,
        data: Any,
        caller: Principal | None,
        pre: Preconditions,
        *,
        team: str | None = None,
    ) -> tuple[StoredDocument, bool]:
        """Replace a document's data, or create it with this id (in `team`, if given).
        Returns (doc, created)."""
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        owner = gate.writer()
        if doc_id in RESERVED_IDS:
            raise ValidationFailed(
                f"{doc_id} is reserved and cannot be a document id",
                errors=[FieldError(loc=["path", "doc_id"], msg="reserved id", type="reserved")],
            )
        self._require_precondition(pre, creating_allowed=True)
        replacement = await self._checked(spec, data)
        await self._check_team(owner, team)

        async def replace(_current: dict[str, Any]) -> dict[str, Any]:
            return replacement

        return await self._change(
            gate,
            doc_id,
            pre,
            replace,
            create=lambda: self._admitted(gate, self._new(doc_id, owner, replacement, team)),
        )

    async def patch(
        self,
        name: str,
        doc_id: str,
        patch: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> StoredDocument:
        """Apply an RFC 7396 merge patch to `data`; never loses a concurrent update."""
        return await self._modify(
            name, doc_id, caller, pre, partial(merge_patch, patch=patch), weight=patch
        )

    async def _modify(
        self,
        name: str,
        doc_id: str,
        caller: Principal | None,
        pre: Preconditions,
        transform: Transform,
        *,
        attempts: int = MAX_WRITE_ATTEMPTS,
        weight: Any = None,
    ) -> StoredDocument:
        """Change an existing document's data by `transform` (a module-level function or
        a partial of one: it may run in a worker process), validated and written
        atomically (see `_change`); `weight` is what the request brought (its size
        decides where the work runs)."""
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        gate.writer()
        self._require_precondition(pre, creating_allowed=False)
        doc, _ = await self._change(
            gate,
            doc_id,
            pre,
            lambda data: self._checked(spec, data, transform, weight=weight),
            attempts=attempts,
        )
        return doc

    async def _change(
        self,
        gate: access.Gate,
        doc_id: str,
        pre: Preconditions,
        new_data: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        *,
        create: Callable[[], StoredDocument] | None = None,
        attempts: int = MAX_WRITE_ATTEMPTS,
        write_id: int | None = None,
    ) -> tuple[StoredDocument, bool]:
        """Read, check, and write conditioned on the version read: the precondition check
        and the version bump are one database operation. Without If-Match, a write that
        lost a race re-reads and re-applies itself (no update is ever lost), after a short
        random pause that grows with each loss, so a crowd of writers spreads out."""
        spec = gate.spec
        repo = self._repository(spec)
        # This write's id, whichever attempt lands it: see DocumentRepository.update_data.
        # (A migration gives its own: one per run, so a resumed run skips what it wrote.)
        write_id = new_write_id() if write_id is None else write_id
        inserting = False  # what the last attempt tried: an insert, or an update
        for attempt in range(attempts):
            if attempt:
                WRITE_RETRIES.inc()
                await asyncio.sleep(WRITE_JITTER.uniform(0, 0.002 * min(attempt, 25)))
            current = await repo.get(doc_id)
            if current is not None and write_id in current.writes:
                # An earlier attempt did land (its answer was lost, the driver's retry
                # found the version moved on): done, not to be applied twice.
                return gate.shown(current), inserting
            if current is None and create is not None and pre.if_match is None:
                doc = create()
                await self.check_references(gate, None, doc.data)
                doc.writes = (write_id,)
                inserting = True
                try:
                    await repo.insert(doc)
                except DocumentExistsError:
                    if pre.if_none_match_any and not await write_landed(repo, doc_id, write_id):
                        raise self._exists(spec, doc_id) from None
                    continue  # created meanwhile (or by us): the next read tells
                return gate.shown(doc), True
            inserting = False
            if current is None or not gate.can_read(current):
                raise access.document_not_found(spec.id, doc_id)
            if pre.if_none_match_any:
                raise self._exists(spec, doc_id)
            if not gate.can_change("update", current):
                raise Forbidden(f"You may read {spec.id}/{doc_id} but not change it")
            if not pre.matches(current.version):
                raise PreconditionFailed(
                    f"Document {spec.id}/{doc_id} is at version {current.version}, "
                    f"not {_shown(pre.if_match)}"
                )
            # The change applies to what the caller sees; fields hidden from them stay.
            changed = await new_data(gate.shown(current).data)
            changed = gate.check_field_writes(current, changed)
            await self.check_references(gate, current.data, changed)
            # The update rule holds after the change too: a draft-only rule cannot be
            # escaped by publishing in the same write.
            if not gate.can_change("update", replace(current, data=changed)):
                raise Forbidden(f"The update rule of {spec.id} does not allow {doc_id} as changed")
            updated = await repo.update_data(current, changed, now=self.clock(), write_id=write_id)
            if updated is not None:
                return gate.shown(updated), False
            if pre.if_match is not None:
                landed = await write_landed(repo, doc_id, write_id)
                if landed is not None:
                    return gate.shown(landed), False
                raise PreconditionFailed(
                    f"Document {spec.id}/{doc_id} changed while this request ran; "
                    "GET it again for the new ETag"
                )
        raise WriteConflict(f"Document {spec.id}/{doc_id} is changing too fast; retry")

    async def json_patch(
        self,
        name: str,
        doc_id: str,
        operations: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> StoredDocument:
        """Apply an RFC 6902 JSON Patch to `data` (app/documents/json_patch.py)."""
        patch = parse_json_patch(operations)
        return await self._modify(
            name,
            doc_id,
            caller,
            pre,
            partial(apply_json_patch, patch=patch, max_bytes=self.limits.max_bytes),
            weight=operations,
        )

    async def update(
        self,
        name: str,
        doc_id: str,
        body: Any,
        caller: Principal | None,
        pre: Preconditions,
    ) -> StoredDocument:
        """Apply update operators (app/documents/operators.py) to `data`: validated like any
        write, atomic per document, retried (not lost) when another write comes first."""
        operations = parse_update(body)
        return await self._modify(
            name,
            doc_id,
            caller,
            pre,
            partial(apply_update, operations=operations, max_bytes=self.limits.max_bytes),
            attempts=MAX_UPDATE_ATTEMPTS,
            weight=body,
        )

    @staticmethod
    def _exists(spec: CollectionSpec, doc_id: str) -> PreconditionFailed:
        return PreconditionFailed(f"Document {spec.id}/{doc_id} already exists (If-None-Match: *)")

    async def delete(
        self, name: str, doc_id: str, caller: Principal | None, pre: Preconditions
    ) -> None:
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        self._require_precondition(pre, creating_allowed=False)
        conditions = access.both(gate.change_scope("delete"), pre.version_condition())
        repo = self._repository(spec)
        plan = None
        if await self.collections.referrers(spec.id):
            # Only for a document the caller may delete, as it stands: else 404/403/412.
            if await repo.get(doc_id, scope=conditions) is None:
                await self._explain_failed_write(spec, repo, caller, doc_id, pre, "delete")
            plan = await self.plan_delete(spec, [doc_id])  # 409 when a reference restricts it
        if not await repo.delete(doc_id, conditions=conditions):
            await self._explain_failed_write(spec, repo, caller, doc_id, pre, "delete")
        if plan is not None and not plan.empty:
            await self.carry_out(plan)
        # In a batch, once it has committed.
        await transaction.when_committed(lambda: self.delete_files(name, [doc_id]))


def _shown(if_match: tuple[int, ...] | Literal["*"] | None) -> str:
    if isinstance(if_match, tuple):
        return " or ".join(str(v) for v in if_match) or "any version that can exist"
    return str(if_match)

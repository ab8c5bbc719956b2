"""Many documents per request: bulk create, and update or delete by filter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from app.accounts.principal import Principal
from app.documents import access
from app.documents.access import Gate
from app.documents.core import (
    MAX_UPDATE_ATTEMPTS,
    Preconditions,
    TooManyDocuments,
    check_outcome,
    is_heavy,
    new_document_id,
)
from app.documents.crud import DocumentCrud
from app.documents.filters import compile_sort
from app.documents.models import StoredDocument
from app.documents.offload import checked_each, terms_each
from app.documents.operators import apply_update, parse_update
from app.errors import AppError, ErrorCode, FieldError, ValidationFailed


@dataclass(slots=True)
class BulkItem:
    index: int
    status: int
    id: str | None = None
    version: int | None = None
    code: ErrorCode | None = None
    detail: str | None = None
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class BulkFailure:
    id: str
    status: int
    code: ErrorCode
    detail: str


@dataclass
class BulkChange:
    matched: int
    more: bool
    modified: int = 0
    failed: list[BulkFailure] = field(default_factory=list)


class BulkDocuments(DocumentCrud):
    async def bulk_create(
        self, name: str, documents: Sequence[Any], caller: Principal | None
    ) -> list[BulkItem]:
        """Create many documents; each item succeeds or fails on its own."""
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        owner = gate.writer()
        limit = self.settings.bulk_max_documents
        if len(documents) > limit:
            raise TooManyDocuments(f"At most {limit} documents per bulk request")
        results: list[BulkItem] = []
        valid: list[StoredDocument] = []
        positions: list[int] = []
        heavy = is_heavy(documents)
        if heavy:  # many or big items: checked in a worker process
            outcomes = await self.work.run(
                checked_each, list(documents), self.limits, spec.json_schema
            )
        else:
            outcomes = [check_outcome(partial(self.check_data, spec, data)) for data in documents]
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, AppError):
                exc = outcome
                results.append(
                    BulkItem(
                        index,
                        exc.status,
                        code=exc.code,
                        detail=exc.detail,
                        errors=_relocate(exc.errors, index),
                    )
                )
                continue
            doc = self._new(new_document_id(), owner, outcome)
            try:
                self._admitted(gate, doc)
                await self.check_references(gate, None, doc.data)
            except AppError as refused:  # a create or field rule, a reference
                results.append(
                    BulkItem(index, refused.status, code=refused.code, detail=refused.detail)
                )
                continue
            valid.append(doc)
            positions.append(index)
            results.append(BulkItem(index, 201, id=doc.id, version=1))
        repo = self._repository(spec)
        terms = None
        if repo.indexer is not None and valid and heavy:
            # Stemming up to a megabyte of text would hold the event loop for a quarter
            # of a second: in a worker process, as the checks were.
            terms = await self.work.run(terms_each, repo.indexer, [d.data for d in valid])
        failures = await repo.insert_many(valid, terms)
        for position, error in failures.items():
            item = results[positions[position]]
            pattern = ", ".join((error.details or {}).get("keyPattern", {}) or ["a unique field"])
            item.status, item.id, item.version = 409, None, None
            item.code = ErrorCode.DUPLICATE_KEY
            item.detail = f"Another document already has this value for {pattern}"
        return results

    async def _changeable(
        self,
        gate: Gate,
        action: Literal["update", "delete"],
        parsed_filter: Any,
        limit: int,
    ) -> tuple[list[str], bool]:
        """Ids (creation order) of up to `limit` documents matching the filter that the
        caller may list, read and change; and whether more match."""
        scope = access.both(gate.change_scope(action), gate.filter("list"))
        query = self._compile_query(gate, parsed_filter, scope)
        rows = await self._repository(gate.spec).find_page(
            query, sort=compile_sort(""), limit=limit + 1, projection={"_id": 1}
        )
        ids = [row["_id"] for row in rows]
        return ids[:limit], len(ids) > limit

    def _bulk_limit(self, limit: int | None) -> int:
        cap = self.settings.bulk_max_documents
        if limit is not None and not 1 <= limit <= cap:
            raise ValidationFailed(
                f"limit is 1 to {cap} (BULK_MAX_DOCUMENTS)",
                errors=[FieldError(loc=["body", "limit"], msg=f"1 to {cap}", type="limit")],
            )
        return limit or cap

    async def bulk_update(
        self,
        name: str,
        filter_: Any,
        body: Any,
        caller: Principal | None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> BulkChange:
        """Apply update operators to each matching document the caller may change, each
        atomically (validated, version bumped); not all-or-nothing (that is /v1/batch)."""
        operations = parse_update(body)
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        ids, more = await self._changeable(gate, "update", filter_, self._bulk_limit(limit))
        result = BulkChange(matched=len(ids), more=more)
        if dry_run:
            return result
        transform = partial(apply_update, operations=operations, max_bytes=self.limits.max_bytes)

        async def updated(data: dict[str, Any]) -> dict[str, Any]:
            return await self._checked(spec, data, transform, weight=body)

        for doc_id in ids:
            try:
                await self._change(
                    gate, doc_id, Preconditions(), updated, attempts=MAX_UPDATE_ATTEMPTS
                )
                result.modified += 1
            except AppError as exc:
                if exc.status == 404:  # deleted meanwhile: no longer matches
                    result.matched -= 1
                    continue
                result.failed.append(BulkFailure(doc_id, exc.status, exc.code, exc.detail))
        return result

    async def bulk_delete(
        self,
        name: str,
        filter_: Any,
        caller: Principal | None,
        *,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> BulkChange:
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        ids, more = await self._changeable(gate, "delete", filter_, self._bulk_limit(limit))
        result = BulkChange(matched=len(ids), more=more)
        if not ids:
            return result
        # Only ids the caller may delete: 409 when a reference restricts one (a dry run too).
        plan = await self.plan_delete(spec, ids)
        if dry_run:
            return result
        repo = self._repository(spec)
        result.modified = await repo.delete_ids(ids, conditions=gate.change_scope("delete"))
        remaining = {doc.id for doc in await repo.get_many(ids)}
        gone = [i for i in ids if i not in remaining]
        if not plan.empty:
            # Only what the deleted ones take with them (rules may have kept some).
            await self.carry_out(
                plan if len(gone) == len(ids) else await self.plan_delete(spec, gone)
            )
        await self.delete_files(name, gone)
        return result


def _relocate(errors: list[FieldError], index: int) -> list[FieldError]:
    return [
        FieldError(loc=["documents", index, *e.loc[1:]], msg=e.msg, type=e.type) for e in errors
    ]

"""What operator scripts and account deletion do to documents, no caller to check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from app.collections.models import CollectionSpec
from app.collections.validation import check_schema
from app.documents.core import DocumentCore
from app.documents.models import StoredDocument
from app.documents.offload import checked_each
from app.documents.queries import SearchNotEnabled
from app.errors import AppError, Conflict, ErrorCode, FieldError

SCHEMA_CHECK_BATCH = 200
SCHEMA_CHECK_EXAMPLES = 20


@dataclass
class SchemaCheck:
    """What a candidate schema would make of the stored documents."""

    scanned: int = 0
    rejected: int = 0
    complete: bool = True  # False: stopped at SCHEMA_CHECK_MAX_DOCUMENTS or the time limit
    examples: list[tuple[str, list[FieldError]]] = field(default_factory=list)


class DocumentMaintenance(DocumentCore):
    _schema_checks: asyncio.Semaphore | None = None

    async def count_all(self, spec: CollectionSpec) -> int:
        return await self._repository(spec).count({})

    async def import_documents(
        self, spec: CollectionSpec, docs: list[StoredDocument]
    ) -> tuple[int, int]:
        """Insert documents exactly as given (ids, owners, versions, timestamps kept).

        Returns (inserted, already present). Ids that exist are left as they are, so a
        repeated or resumed import changes nothing twice. Each document's data must pass
        the same checks as an API write; a unique-index clash raises 409.
        """
        for doc in docs:
            self.check_data(spec, doc.data)
        return await self._repository(spec).insert_many_keep_existing(docs)

    async def delete_owned_by(self, user_id: str) -> int:
        """Delete every document `user_id` owns, in every collection (account deletion)."""
        deleted = 0
        for spec in await self.collections.list_all():
            repo = self._repository(spec)
            owned = await repo.ids_owned_by(user_id)
            deleted += await repo.delete_owned_by(user_id)
            await self.delete_files(spec.id, owned)
        return deleted

    async def check_schema(self, spec: CollectionSpec, schema: dict[str, Any]) -> SchemaCheck:
        """Which stored documents `schema` would reject (a dry run: nothing changes).

        At most SCHEMA_CHECK_MAX_DOCUMENTS, in id order, within QUERY_MAX_TIME_MS; the
        checking runs in the work pool, a batch at a time, so the event loop stays free.
        """
        check_schema(schema)  # 422 naming what is wrong with the schema itself
        # One at a time per process: each keeps a work process busy for up to its limit.
        if self._schema_checks is None:
            self._schema_checks = asyncio.Semaphore(1)
        async with self._schema_checks:
            return await self._check_schema(spec, schema)

    async def _check_schema(self, spec: CollectionSpec, schema: dict[str, Any]) -> SchemaCheck:
        report = SchemaCheck()
        limit = self.settings.schema_check_max_documents
        deadline = time.monotonic() + self.settings.query_max_time_ms / 1000
        batch: list[StoredDocument] = []

        async def check(docs: list[StoredDocument]) -> None:
            if time.monotonic() > deadline:
                report.complete = False
                return
            outcomes = await self.work.run(
                checked_each, [d.data for d in docs], self.limits, schema
            )
            report.scanned += len(docs)
            for doc, outcome in zip(docs, outcomes, strict=True):
                if isinstance(outcome, AppError):
                    report.rejected += 1
                    if len(report.examples) < SCHEMA_CHECK_EXAMPLES:
                        report.examples.append((doc.id, outcome.errors))

        async for doc in self._repository(spec).stream(batch_size=SCHEMA_CHECK_BATCH):
            if report.scanned + len(batch) >= limit or time.monotonic() > deadline:
                report.complete = False
                break
            batch.append(doc)
            if len(batch) == SCHEMA_CHECK_BATCH:
                await check(batch)
                batch = []
                if not report.complete:
                    break
        if batch:
            await check(batch)
        return report

    async def refuse_rejecting_schema(self, spec: CollectionSpec, schema: dict[str, Any]) -> None:
        """409 schema_rejects_documents when stored documents would not pass `schema`, naming
        up to 20 of them (a check stopped early by its limits refuses only on what it saw)."""
        report = await self.check_schema(spec, schema)
        if not report.rejected:
            return
        seen = "" if report.complete else f" (of the first {report.scanned} checked)"
        raise Conflict(
            f"{report.rejected} stored documents{seen} would not pass the new schema: fix "
            "them first (POST .../schema-check lists them; scripts.migrate changes them in "
            "bulk), or send force: true to change it anyway",
            code=ErrorCode.SCHEMA_REJECTS_DOCUMENTS,
            errors=[
                FieldError(loc=["documents", doc_id, *err.loc[1:]], msg=err.msg, type=err.type)
                for doc_id, errors in report.examples
                for err in errors[:1]
            ],
        )

    async def reindex_batch(
        self, spec: CollectionSpec, *, after: str | None, size: int
    ) -> tuple[str | None, int]:
        """Store full-text search's terms for the next `size` documents after id `after`
        (documents stored before `search` was declared or changed): the last id reached
        (None when none were left) and how many were indexed."""
        if spec.search is None:
            raise SearchNotEnabled(f"Collection {spec.id} declares no `search` fields")
        return await self._repository(spec).reindex(after=after, size=size)

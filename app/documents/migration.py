"""Changing every stored document of a collection (scripts.migrate), a batch at a time.

A migration is a JSON Patch or update operators applied to each document a filter matches,
in id order. Each document is changed as an API write would change it: validated against
the collection's schema and limits, written conditioned on the version read (a document
changed meanwhile is re-read and the change re-applied, never overwritten), its version
bumped, so realtime subscribers and caches see it. A document the change leaves as it was
is not written. One that cannot take the change (a failed `test`, a path that is not
there, the schema) is reported and left alone; the rest go on.

Batches return the last id they reached, so the script can save it and resume after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from app.accounts.models import Role
from app.accounts.principal import Principal
from app.collections.models import CollectionSpec
from app.documents.access import both
from app.documents.core import Preconditions, limited_query
from app.documents.crud import DocumentCrud
from app.documents.json_patch import apply_json_patch, parse_json_patch
from app.documents.offload import Transform
from app.documents.operators import apply_update, parse_update
from app.documents.rules import same_value
from app.errors import AppError

# Who a migration writes as: the operator running the script, with an admin's reach.
OPERATOR = Principal(id="migration", role=Role.ADMIN, disabled=False, token_version=0)


@dataclass
class MigrationBatch:
    changed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, what went wrong)
    last_id: str | None = None  # resume after this one; None: nothing was left


def migration_transform(kind: Literal["patch", "update"], change: Any, max_bytes: int) -> Transform:
    """The change as a function of a document's data: a JSON Patch or update operators,
    parsed now (422 naming what is wrong with it)."""
    if kind == "patch":
        return partial(apply_json_patch, patch=parse_json_patch(change), max_bytes=max_bytes)
    return partial(apply_update, operations=parse_update(change), max_bytes=max_bytes)


class DocumentMigration(DocumentCrud):
    async def migrate_batch(
        self,
        spec: CollectionSpec,
        transform: Transform,
        *,
        parsed_filter: Any,
        after: str | None,
        size: int,
        dry_run: bool = False,
        only: list[str] | None = None,
        run_id: int | None = None,
    ) -> MigrationBatch:
        """Apply `transform` to the next `size` matching documents after id `after` (of
        `only` these ids, when given: a retry of the ones that could not take it). With
        `run_id` (a random int64 the script keeps for the run), each write carries it as
        its write id: a document that already holds it took the change in this run (a
        batch cut short, then resumed) and is not changed again."""
        gate = await self.gate(spec, OPERATOR)
        query = limited_query(gate, parsed_filter, {})
        # Merged where the keys differ: SecantusDB uses the `_id` index only at the top.
        if after is not None:
            query = both(query, {"_id": {"$gt": after}})
        if only is not None:
            query = both(query, {"_id": {"$in": only}})
        rows = await self._repository(spec).find_page(
            query, sort=[("_id", 1)], limit=size, projection=None
        )
        batch = MigrationBatch()
        for row in rows:
            doc_id = row["_id"]
            batch.last_id = doc_id
            if run_id is not None and run_id in row.get("writes", ()):
                batch.changed += 1  # by this run, in a batch that did not get to report it
                continue
            try:
                changed = await self._checked(spec, row["data"], transform)
                if same_value(changed, row["data"]):  # 1 and true differ, 1 and 1.0 not
                    batch.unchanged += 1
                    continue
                if not dry_run:
                    await self._change(
                        gate,
                        doc_id,
                        Preconditions(),
                        lambda data: self._checked(spec, data, transform),
                        write_id=run_id,
                    )
                batch.changed += 1
            except AppError as exc:
                where = ", ".join(".".join(map(str, e.loc)) for e in exc.errors[:3])
                batch.failed.append((doc_id, exc.detail + (f" ({where})" if where else "")))
        return batch

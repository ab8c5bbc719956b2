"""What deleting a document does to the documents that reference it (x-on-delete).

Before a delete, the whole cascade is planned: every document a `cascade` reference
would delete with it, level by level (at most INTEGRITY_MAX_DEPTH levels and
INTEGRITY_MAX_DOCUMENTS documents, else 409), and any `restrict` reference to one of
them refuses the delete (409 reference_restricted) before anything changes. After it,
the cascade is carried out and `set_null` references are cleared (null, or the id taken
out of a list), each changed document's version bumped so apps and subscribers see it.

These are system actions, outside the caller's access rules (as a foreign key is): the
caller may delete the referenced document, and what references it follows the
declaration. A reference written after the plan was made (a race between two requests)
is not covered; in a batch, everything runs in its transaction. Account deletion leaves
references dangling (expanded, they are `not_found`); a collection named by another's
reference with x-on-delete cannot be deleted (collections/service.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from app.collections.models import CollectionSpec
from app.db import transaction
from app.documents.access import Gate, both
from app.documents.core import DocumentCore
from app.documents.relations import Ref, ids_at
from app.errors import AppError, ErrorCode, FieldError

INTEGRITY_MAX_DEPTH = 5
INTEGRITY_MAX_DOCUMENTS = 1000


class ReferenceRestricted(AppError):
    code, status = ErrorCode.REFERENCE_RESTRICTED, 409


@dataclass
class DeletePlan:
    # What the delete takes with it, by collection, in the order to delete.
    cascade: list[tuple[CollectionSpec, list[str]]] = field(default_factory=list)
    # References to clear once the documents are gone: (collection, ref, ids deleted).
    clear: list[tuple[CollectionSpec, Ref, list[str]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.cascade and not self.clear


def _matching(ref: Ref, ids: list[str]) -> dict[str, Any]:
    return {ref.path: {"$in": ids}}  # a list of ids matches when it holds any of them


class ReferenceNotFound(AppError):
    code, status = ErrorCode.REFERENCE_NOT_FOUND, 422


class DocumentIntegrity(DocumentCore):
    async def check_references(
        self, gate: Gate, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> None:
        """422 reference_not_found when a write adds, under a reference that says what
        deletes do (x-on-delete), an id the writer cannot read in its collection: else
        anyone who may write here could pin (restrict), clear (set_null) or take along
        (cascade) other people's documents. Ids the document held already are not checked
        again. Plain references (no x-on-delete) may point anywhere, and dangle."""
        refs = [r for r in await self.collections.refs_of(gate.spec) if r.on_delete]
        for ref in refs:
            new = set(ids_at(after, ref)[0])
            if before is not None:
                new -= set(ids_at(before, ref)[0])
            if not new:
                continue
            try:
                target = await self.collections.get(ref.target)
                target_gate = await self.gate(target, gate.principal)
                scope = target_gate.read_scope("read")
            except AppError:  # no such collection, or nothing the writer may read there
                found: set[str] = set()
            else:
                rows = await self._repository(target).find_page(
                    both({"_id": {"$in": sorted(new)}}, scope),
                    sort=[("_id", 1)],
                    limit=len(new),
                    projection={"_id": 1},
                )
                found = {r["_id"] for r in rows}
            missing = sorted(new - found)
            if missing:
                raise ReferenceNotFound(
                    f"data.{ref.name} names {missing[0]}, which is not a document of "
                    f"{ref.target} you may read",
                    errors=[
                        FieldError(
                            loc=["data", *ref.name.split(".")],
                            msg=f"no such document of {ref.target}: {missing[0]}",
                            type="reference",
                        )
                    ],
                )

    async def plan_delete(self, spec: CollectionSpec, ids: list[str]) -> DeletePlan:
        """What deleting `ids` of `spec` does to what references them (409 when refused)."""
        plan = DeletePlan()
        level: list[tuple[CollectionSpec, list[str]]] = [(spec, ids)]
        seen: dict[str, set[str]] = {spec.id: set(ids)}
        total = 0
        for depth in range(INTEGRITY_MAX_DEPTH + 1):
            following: list[tuple[CollectionSpec, list[str]]] = []
            for target, target_ids in level:
                for source, ref in await self.collections.referrers(target.id):
                    repo = self._repository(source)
                    query = _matching(ref, target_ids)
                    if ref.on_delete == "restrict":
                        # Documents deleted by this same cascade do not hold it back.
                        mine = seen.get(source.id, set())
                        holders = await repo.find_page(
                            query, sort=[("_id", 1)], limit=len(mine) + 1, projection={"_id": 1}
                        )
                        blocking = [h["_id"] for h in holders if h["_id"] not in mine]
                        if blocking:
                            # The collection, not the document: the caller may not read it.
                            raise ReferenceRestricted(
                                f"A document of {source.id} references it through {ref.name} "
                                "(x-on-delete: restrict): delete or change that first"
                            )
                    elif ref.on_delete == "set_null":
                        plan.clear.append((source, ref, target_ids))
                    else:  # cascade
                        done = sorted(seen.get(source.id, ()))
                        rows = await repo.find_page(
                            {"$and": [query, {"_id": {"$nin": done}}]} if done else query,
                            sort=[("_id", 1)],
                            limit=INTEGRITY_MAX_DOCUMENTS + 1,
                            projection={"_id": 1},
                        )
                        fresh = [r["_id"] for r in rows]
                        if not fresh:
                            continue
                        total += len(fresh)
                        if total > INTEGRITY_MAX_DOCUMENTS or depth == INTEGRITY_MAX_DEPTH:
                            raise ReferenceRestricted(
                                f"Deleting this would cascade to more than "
                                f"{INTEGRITY_MAX_DOCUMENTS} documents or "
                                f"{INTEGRITY_MAX_DEPTH} levels: delete them in smaller steps"
                            )
                        seen.setdefault(source.id, set()).update(fresh)
                        plan.cascade.append((source, fresh))
                        following.append((source, fresh))
            if not following:
                break
            level = following
        return plan

    async def carry_out(self, plan: DeletePlan) -> None:
        """The cascade and the cleared references of a delete that has happened."""
        now = self.clock()
        for source, ids in plan.cascade:
            await self._repository(source).delete_ids(ids, conditions={})
            # In a batch, once it has committed.
            await transaction.when_committed(partial(self.delete_files, source.id, ids))
        for source, ref, ids in plan.clear:
            repo = self._repository(source)
            bump = {"$inc": {"version": 1}, "$set": {"updated_at": now}}
            # By the stored shape, whatever the schema says now (a forced schema change
            # may have left a single id where a list is declared, or the reverse).
            as_list = {"$and": [_matching(ref, ids), {ref.path: {"$type": "array"}}]}
            await repo.update_where(as_list, {**bump, "$pull": {ref.path: {"$in": ids}}})
            as_one = {"$and": [_matching(ref, ids), {ref.path: {"$type": "string"}}]}
            await repo.update_where(as_one, {**bump, "$set": {"updated_at": now, ref.path: None}})

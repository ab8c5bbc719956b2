"""`?expand=`: referenced documents embedded in what a read returns, batched by level.

`expand=author,comments.author` names references (relations.py) from the collection read:
`author` is the document's `data.author`; `comments.author` is each comment's author. A
level is one query per referenced collection for every document at that level (never one
per document), limited to what the caller may read there: a document the caller cannot
read, or that does not exist, comes back as `document: null` with reason `not_found` (the
same answer, as a GET by id gives one 404 for both). A user reference expands to the
account's name (`data.name`; never the email), for the account itself and for admins
only; for others it is `not_found`.

Bounds (422 otherwise): EXPAND_MAX_PATHS paths, EXPAND_MAX_DEPTH references deep (a
cycle, `parent.parent...`, ends there), and at most EXPAND_MAX_DOCUMENTS documents read
per level.

A page's first level usually costs no query of its own: a single reference to a
collection is joined to the page's query (`$lookup` on `_id`, the target's read scope in
its pipeline, at most one document per row), so the page and the documents it names
arrive in one answer (`Joins`). Lists of references, accounts and deeper levels are read
by id as above.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.accounts.principal import Principal
from app.collections.models import CollectionSpec, storage_name
from app.documents import access
from app.documents.core import DocumentCore, json_envelope, row_envelope
from app.documents.models import StoredDocument
from app.documents.relations import USERS, ExpandNode, Ref, ids_at, refs_of
from app.errors import FieldError, NotFound, Unauthorized, ValidationFailed

EXPAND_MAX_PATHS = 10
EXPAND_MAX_DEPTH = 3
EXPAND_MAX_DOCUMENTS = 1000
# A joined row must fit in one BSON document (16 MiB, less room for the reply's framing):
# the page's document and each one it joins, all as large as DOCUMENT_MAX_BYTES lets them.
JOINED_ROW_MAX_BYTES = 16 * 1024 * 1024 - 64 * 1024
# What MongoDB answers when a row with what it joined is too large anyway (documents
# written around the API, past DOCUMENT_MAX_BYTES): the page is then read without joins.
ROW_TOO_LARGE_CODES = (10334, 4568)
Expanded = dict[str, Any]  # reference name -> entry, or list of entries, or None


def _refused(msg: str) -> ValidationFailed:
    return ValidationFailed(
        f"expand: {msg}", errors=[FieldError(loc=["query", "expand"], msg=msg, type="expand")]
    )


UserProfiles = Callable[[list[str]], Awaitable[Mapping[str, tuple[str, datetime, datetime]]]]


def _envelope(target: str, gate: access.Gate, row: dict[str, Any]) -> dict[str, Any]:
    """A stored row of `target` as the caller behind `gate` may see it, as JSON."""
    if gate.hides_fields:
        return json_envelope(target, gate.shown(StoredDocument.from_mongo(row)))
    return row_envelope(target, row)


@dataclass(frozen=True, slots=True)
class _Target:
    """The caller in front of a referenced collection: what they may read there."""

    spec: CollectionSpec
    gate: access.Gate
    scope: dict[str, Any]  # the read scope, a filter


@dataclass(frozen=True, slots=True)
class _Join:
    name: str  # the first-level reference (a key of the expand tree)
    target: _Target
    field: str  # where the row carries what it joined


@dataclass
class Prefetched:
    """What a page's joins found: envelopes by target and id, and the references whose
    ids they answered for (an id they did not bring back is missing or unreadable)."""

    found: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Joins:
    """`$lookup` stages for a page's query, and how to take their results off its rows."""

    tree: dict[str, ExpandNode]
    joins: tuple[_Join, ...] = ()

    @property
    def stages(self) -> list[dict[str, Any]]:
        stages: list[dict[str, Any]] = []
        for join in self.joins:
            pipeline: list[dict[str, Any]] = [{"$limit": 1}]  # an id names one document
            if join.target.scope:
                pipeline.insert(0, {"$match": join.target.scope})
            lookup = {
                "from": storage_name(join.target.spec.id),
                "localField": self.tree[join.name].ref.path,
                "foreignField": "_id",
                "pipeline": pipeline,
                "as": join.field,
            }
            stages.append({"$lookup": lookup})
        return stages

    def take(self, rows: list[dict[str, Any]]) -> Prefetched:
        """Remove the joined documents from `rows`, as envelopes by target and id."""
        out = Prefetched(names=frozenset(join.name for join in self.joins))
        for join in self.joins:
            name, gate = join.target.spec.id, join.target.gate
            found = out.found.setdefault(name, {})
            for row in rows:
                for joined in row.pop(join.field, ()):
                    found[joined["_id"]] = _envelope(name, gate, joined)
        return out


class DocumentExpansion(DocumentCore):
    # id -> (name, created_at, updated_at) of existing accounts; set by the container.
    user_profiles: UserProfiles | None = None

    async def expand_tree(self, spec: CollectionSpec, raw: str) -> dict[str, ExpandNode]:
        """The references `raw` names, resolved collection by collection (422 when one is
        not a reference, too deep, or too many)."""
        paths = [p.strip() for p in raw.split(",") if p.strip()]
        if not paths:
            raise _refused("name at least one reference")
        if len(paths) > EXPAND_MAX_PATHS:
            raise _refused(f"at most {EXPAND_MAX_PATHS} paths")
        tree: dict[str, ExpandNode] = {}
        for path in paths:
            nodes, rest, depth = tree, path.split("."), 0
            collection: CollectionSpec | None = spec
            while rest:
                if collection is None:
                    raise _refused(f"{path}: accounts have no references to expand")
                refs = refs_of(collection.json_schema)
                ref = next(
                    (
                        refs[".".join(rest[:n])]
                        for n in range(len(rest), 0, -1)
                        if ".".join(rest[:n]) in refs
                    ),
                    None,
                )
                if ref is None:
                    raise _refused(
                        f"{path}: {'.'.join(rest)} is not a reference (x-ref) of {collection.id}"
                    )
                depth += 1
                if depth > EXPAND_MAX_DEPTH:
                    raise _refused(f"{path}: more than {EXPAND_MAX_DEPTH} references deep")
                node = nodes.setdefault(ref.name, ExpandNode(ref))
                rest = rest[len(ref.name.split(".")) :]
                nodes = node.children
                if ref.target == USERS:
                    collection = None
                elif rest:
                    try:
                        collection = await self.collections.get(ref.target)
                    except NotFound:
                        raise _refused(f"{path}: collection {ref.target} does not exist") from None
        return tree

    async def joins(self, spec: CollectionSpec, caller: Principal | None, raw: str) -> Joins:
        """The page query's joins for `raw` (422 as `expand_tree`): one per single
        reference to a collection the caller may read at the first level."""
        tree = await self.expand_tree(spec, raw)
        joins: list[_Join] = []
        room = JOINED_ROW_MAX_BYTES // self.settings.document_max_bytes - 1
        for name, node in tree.items():
            if node.ref.many or node.ref.target == USERS:
                continue  # a list could join thousands per row; accounts are not documents
            if len(joins) >= room:
                break  # the rest are read by id
            target = await self._readable(node.ref.target, caller)
            if target is not None:  # (else nothing to join: `_fetch` answers without a query)
                joins.append(_Join(name, target, f"_expand{len(joins)}"))
        return Joins(tree, tuple(joins))

    async def _readable(self, target: str, caller: Principal | None) -> _Target | None:
        """The caller in front of collection `target`; None when there is nothing they
        may read there (no such collection, or an anonymous caller it shows nothing)."""
        try:
            spec = await self.collections.get(target)
        except NotFound:
            return None
        gate = await self.gate(spec, caller)
        try:
            return _Target(spec, gate, gate.read_scope("read"))
        except Unauthorized:
            return None

    async def _fetch(
        self, target: str, ids: set[str], caller: Principal | None
    ) -> dict[str, dict[str, Any]]:
        """The documents among `ids` of `target` the caller may read, as JSON envelopes."""
        if not ids:
            return {}
        if target == USERS:
            # An account's name is its owner's business: the caller's own, or any for an
            # admin. (Anyone who may write a reference could otherwise look up the name of
            # any account id.)
            if self.user_profiles is None or caller is None:
                return {}
            if not caller.is_admin:
                ids = ids & {caller.id}
            if not ids:
                return {}
            profiles = await self.user_profiles(sorted(ids))
            return {
                i: json_envelope(
                    USERS,
                    StoredDocument(i, i, 1, created, updated, {"name": name}),
                )
                for i, (name, created, updated) in profiles.items()
            }
        readable = await self._readable(target, caller)
        if readable is None:
            return {}
        # Merged, not `$and`: SecantusDB uses the `_id` index only for a top-level `_id`.
        query = access.both({"_id": {"$in": sorted(ids)}}, readable.scope)
        rows = await self._repository(readable.spec).find_page(
            query, sort=[("_id", 1)], limit=len(ids), projection=None
        )
        return {row["_id"]: _envelope(target, readable.gate, row) for row in rows}

    async def expanded_for(
        self, name: str, caller: Principal | None, docs: list[StoredDocument], raw: str
    ) -> dict[str, Expanded]:
        spec = await self.collections.get(name)
        return await self.expand(caller, docs, await self.expand_tree(spec, raw))

    async def expand(
        self,
        caller: Principal | None,
        docs: list[StoredDocument],
        tree: dict[str, ExpandNode],
        prefetched: Prefetched | None = None,
    ) -> dict[str, Expanded]:
        """Each document's `expanded`, by its id (the first level from `prefetched` as far
        as it answers)."""
        out: dict[str, Expanded] = {doc.id: {} for doc in docs}
        frontier: list[tuple[Expanded, dict[str, Any], dict[str, ExpandNode]]] = [
            (out[doc.id], doc.data, tree) for doc in docs
        ]
        while frontier:
            wanted: dict[str, set[str]] = {}
            entries = 0  # what the answer embeds at this level, repeats included
            held = [
                {name: ids_at(data, node.ref) for name, node in nodes.items()}
                for _, data, nodes in frontier
            ]
            answered: dict[str, set[str]] = {}  # ids the joins looked up, by target
            for (_, _, nodes), found_ids in zip(frontier, held, strict=True):
                for name, node in nodes.items():
                    ids = found_ids[name][0]
                    entries += len(ids)
                    wanted.setdefault(node.ref.target, set()).update(ids)
                    if prefetched is not None and name in prefetched.names:
                        answered.setdefault(node.ref.target, set()).update(ids)
            if entries > EXPAND_MAX_DOCUMENTS:
                raise _refused(
                    f"more than {EXPAND_MAX_DOCUMENTS} references to embed at one level: "
                    "page with a smaller limit"
                )
            found: dict[str, dict[str, dict[str, Any]]] = {}
            for target, asked in wanted.items():
                joined = prefetched.found.get(target, {}) if prefetched is not None else {}
                fetched = await self._fetch(target, asked - answered.get(target, set()), caller)
                found[target] = {**joined, **fetched} if fetched else joined
            prefetched = None  # the joins were the first level's
            following: list[tuple[Expanded, dict[str, Any], dict[str, ExpandNode]]] = []
            for (holder, _, nodes), found_ids in zip(frontier, held, strict=True):
                for name, node in nodes.items():
                    holder[name] = self._entries(
                        node, found_ids[name], found[node.ref.target], following
                    )
            frontier = following
        return out

    @staticmethod
    def _entries(
        node: ExpandNode,
        held: tuple[list[str], bool],
        found: dict[str, dict[str, Any]],
        following: list[tuple[Expanded, dict[str, Any], dict[str, ExpandNode]]],
    ) -> Any:
        ref: Ref = node.ref
        ids, usable = held  # ids_at(data, ref)

        def entry(doc_id: str | None) -> dict[str, Any]:
            if doc_id is None:
                return {"id": None, "collection": ref.target, "document": None, "reason": "invalid"}
            document = found.get(doc_id)
            if document is None:
                return {
                    "id": doc_id,
                    "collection": ref.target,
                    "document": None,
                    "reason": "not_found",
                }
            if node.children:
                document = dict(document)  # each holder its own (children differ by path)
                document["expanded"] = {}
                following.append((document["expanded"], document["data"], node.children))
            return {"id": doc_id, "collection": ref.target, "document": document, "reason": None}

        if ref.many:  # the ids, and one `invalid` entry if some item (or the value) was not
            return [entry(i) for i in ids] + ([] if usable else [entry(None)])
        if not usable:
            return entry(None)
        return entry(ids[0]) if ids else None

"""Reading many documents: pages with keyset cursors, counts, whole-collection streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pymongo.errors import OperationFailure

from app.accounts.principal import Principal
from app.collections.models import CollectionSpec
from app.documents import access
from app.documents.core import Page, parse_filter
from app.documents.expansion import ROW_TOO_LARGE_CODES, DocumentExpansion, Joins, Prefetched
from app.documents.filters import compile_fields, compile_sort
from app.documents.keyset import (
    after_clause,
    decode_cursor,
    encode_cursor,
    query_scope,
    sort_values,
)
from app.documents.models import StoredDocument
from app.documents.search import MAX_CANDIDATES, Indexer, score_stage
from app.errors import AppError, ErrorCode, Forbidden
from app.pagination import InvalidCursor


class SearchNotEnabled(AppError):
    code, status = ErrorCode.SEARCH_NOT_ENABLED, 400


def projected(data: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Only the `data.<path>`s listed (as a MongoDB inclusion projection keeps them)."""
    if "data" in paths:
        return data
    out: dict[str, Any] = {}
    for path in paths:
        segments = path.split(".")[1:]
        source: Any = data
        target = out
        for i, segment in enumerate(segments):
            if isinstance(source, list):
                break  # arrays of objects: kept whole, as far as they were reached
            if not isinstance(source, dict) or segment not in source:
                break
            source = source[segment]
            if i == len(segments) - 1:
                target[segment] = source
            else:
                nxt = target.setdefault(segment, {})
                if not isinstance(nxt, dict):
                    break
                target = nxt
    return out


async def _joined(
    read: Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]],
    joins: Joins | None,
) -> tuple[list[dict[str, Any]], Prefetched | None]:
    """The rows `read` brings with `joins`' stages, and what they joined; read again
    without them when MongoDB finds a joined row too large (documents written around the
    API, past DOCUMENT_MAX_BYTES): their references are then read by id."""
    if joins is not None and joins.joins:
        try:
            rows = await read(joins.stages)
        except OperationFailure as exc:
            if exc.code not in ROW_TOO_LARGE_CODES:
                raise
        else:
            return rows, joins.take(rows)
    return await read([]), None


class DocumentQueries(DocumentExpansion):
    async def list_page(
        self,
        name: str,
        caller: Principal | None,
        *,
        filter_raw: str | None,
        sort_raw: str | None,
        fields_raw: str | None,
        limit: int,
        cursor: str | None,
        search: str | None = None,
        expand: str | None = None,
    ) -> Page:
        """A page of what the caller may read; with `expand`, each item's `expanded`
        (single references of the first level joined to the page's own query)."""
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        parsed_filter = parse_filter(filter_raw) if filter_raw else None
        terms = self._search_terms(spec, gate, search) if search is not None else None
        joins = await self.joins(spec, caller, expand) if expand is not None else None
        if terms is not None and not sort_raw:
            return await self._search_page(
                spec,
                gate,
                terms,
                parsed_filter,
                fields_raw,
                limit=limit,
                cursor=cursor,
                joins=joins,
            )
        sort = compile_sort(sort_raw or "")
        query = self._compile_query(gate, parsed_filter, gate.read_scope("list"), sort)
        if terms is not None:  # a search in another order than relevance
            query = access.both(query, self._indexer(spec).match(terms))
        projection = compile_fields(fields_raw) if fields_raw else None
        # Field rules judge whole documents (a projection could drop what they read):
        # read them whole, hide, then keep the fields asked for.
        kept = None
        if projection is not None and gate.policy.fields:
            kept, projection = [p for p in projection if p.startswith("data")], None
        scope = f"{name}:{query_scope([parsed_filter, terms], sort)}"
        if cursor:
            after = after_clause(sort, decode_cursor(self.cursors, cursor, scope))
            query = {"$and": [query, after]} if query else after
        repo = self._repository(spec)

        def page_of(stages: list[dict[str, Any]]) -> Awaitable[list[dict[str, Any]]]:
            return repo.find_page(
                query, sort=sort, limit=limit + 1, projection=projection, joins=stages
            )

        # Joined only when rows come whole (a projection could drop the references).
        rows, prefetched = await _joined(page_of, joins if projection is None else None)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            if projection is not None:
                # The page may not carry every sort key; read them for the last row only.
                last = await repo.fields_of(last["_id"], [path for path, _ in sort]) or last
            next_cursor = encode_cursor(self.cursors, sort_values(last, sort), scope)
        items = [gate.shown(StoredDocument.from_mongo(row)) for row in rows]
        if kept is not None:
            for item in items:
                item.data = projected(item.data, kept)
        page = Page(items=items, next_cursor=next_cursor)
        return await self._expanded(page, caller, joins, prefetched)

    async def _expanded(
        self,
        page: Page,
        caller: Principal | None,
        joins: Joins | None,
        prefetched: Prefetched | None = None,
    ) -> Page:
        if joins is None:
            return page
        expanded = await self.expand(caller, page.items, joins.tree, prefetched)
        return Page(items=page.items, next_cursor=page.next_cursor, expanded=expanded)

    def _search_terms(self, spec: CollectionSpec, gate: access.Gate, text: str) -> list[str]:
        if spec.search is None:
            raise SearchNotEnabled(
                f"Collection {spec.id} has no full-text search: declare `search` fields "
                "(PATCH /v1/collections/{name})"
            )
        # Which documents match would tell the words of a field the caller cannot read.
        hidden = gate.unfilterable(spec.search.fields)
        if hidden is not None:
            raise Forbidden(
                f"{hidden} is readable only in some documents: it cannot be searched",
                code=ErrorCode.FIELD_FORBIDDEN,
            )
        return self._indexer(spec).query(text)

    def _indexer(self, spec: CollectionSpec) -> Indexer:
        """The collection's indexer, the one its writes use (kept with its repository)."""
        indexer = self._repository(spec).indexer
        assert indexer is not None  # spec.search is set: the repository has one
        return indexer

    async def _search_page(
        self,
        spec: CollectionSpec,
        gate: access.Gate,
        terms: list[str],
        parsed_filter: Any,
        fields_raw: str | None,
        *,
        limit: int,
        cursor: str | None,
        joins: Joins | None = None,
    ) -> Page:
        """Documents having any of `terms`, best first (search.py says how they rank)."""
        if not terms:  # only common words, or none: nothing to look for
            return Page(items=[], next_cursor=None, expanded={} if joins is not None else None)
        kept = None
        if fields_raw:  # read whole (field rules judge whole documents), then keep these
            kept = [p for p in compile_fields(fields_raw) if p.startswith("data")]
        query = self._compile_query(gate, parsed_filter, gate.read_scope("list"))
        pipeline: list[dict[str, Any]] = [
            {"$match": access.both(query, self._indexer(spec).match(terms))},
            {"$limit": MAX_CANDIDATES},
            score_stage(terms),
        ]
        scope = f"{spec.id}:search:{query_scope([parsed_filter, terms], [])}"
        if cursor:
            last = decode_cursor(self.cursors, cursor, scope)
            score, after = last.get("score"), last.get("id")
            if not isinstance(score, int | float) or not isinstance(after, str):
                raise InvalidCursor("The cursor is malformed; start from the first page")
            pipeline.append(
                {
                    "$match": {
                        "$or": [
                            {"_score": {"$lt": score}},
                            {"_score": score, "_id": {"$gt": after}},
                        ]
                    }
                }
            )
        pipeline += [
            {"$sort": {"_score": -1, "_id": 1}},
            {"$limit": limit + 1},
            {"$project": {"_search": 0, "_search_first": 0}},
        ]
        repo = self._repository(spec)
        rows, prefetched = await _joined(
            lambda stages: repo.aggregate(pipeline + stages, page=True), joins
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            values = {"score": rows[-1]["_score"], "id": rows[-1]["_id"]}
            next_cursor = encode_cursor(self.cursors, values, scope)
        items = [gate.shown(StoredDocument.from_mongo(row)) for row in rows]
        if kept is not None:
            for item in items:
                item.data = projected(item.data, kept)
        page = Page(items=items, next_cursor=next_cursor)
        return await self._expanded(page, gate.principal, joins, prefetched)

    def stream(
        self, spec: CollectionSpec, *, batch_size: int = 1000
    ) -> AsyncIterator[StoredDocument]:
        """Every document of a collection in id order, fetched in batches (exports)."""
        return self._repository(spec).stream(batch_size=batch_size)

    async def count(self, name: str, caller: Principal | None, filter_raw: str | None) -> int:
        spec = await self.collections.get(name)
        gate = await self.gate(spec, caller)
        parsed_filter = parse_filter(filter_raw) if filter_raw else None
        query = self._compile_query(gate, parsed_filter, gate.read_scope("list"))
        return await self._repository(spec).count(query)

"""POST /v1/batch: up to 100 document operations across collections, all or nothing.

The operations run in one MongoDB transaction (the driver's `with_transaction`, which
retries a TransientTransactionError and an unknown commit result). Each operation is the
same service call as its single-document route, with the same checks; the first one that
fails aborts the transaction, and the answer is that operation's problem, naming its
index. A standalone mongod has no transactions: 503 transactions_unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from app.accounts.principal import Principal
from app.db import transaction
from app.db.client import Db
from app.documents.core import Preconditions, WriteConflict
from app.documents.models import StoredDocument
from app.documents.service import DocumentService
from app.errors import AppError, ErrorCode, FieldError

log = logging.getLogger("docstore.documents")

MAX_OPERATIONS = 100
# Rounds of the whole batch after transient errors (write conflicts with other writers),
# each after a random pause that grows, so colliding batches spread out.
MAX_ROUNDS = 30
_JITTER = random.Random()  # noqa: S311 - pauses, not secrets
_NO_TRANSACTIONS = 20  # IllegalOperation: "Transaction numbers are only allowed on a replica set"


class TransactionsUnavailable(AppError):
    code, status = ErrorCode.TRANSACTIONS_UNAVAILABLE, 503


@dataclass
class Operation:
    op: str
    collection: str
    id: str | None
    body: Any
    pre: Preconditions


@dataclass
class Done:
    index: int
    status: int
    collection: str
    doc: StoredDocument | None
    id: str


class BatchFailed(Exception):
    def __init__(self, index: int, error: AppError) -> None:
        super().__init__(error.detail)
        self.index, self.error = index, error


class BatchService:
    def __init__(self, db: Db, documents: DocumentService) -> None:
        self.db = db
        self.documents = documents

    async def _one(self, index: int, op: Operation, caller: Principal | None) -> Done:
        docs = self.documents
        if op.op == "create":
            doc, _ = await docs.create(op.collection, op.body, caller)
            assert doc is not None
            return Done(index, 201, op.collection, doc, doc.id)
        assert op.id is not None
        if op.op == "replace":
            doc, created = await docs.put(op.collection, op.id, op.body, caller, op.pre)
            return Done(index, 201 if created else 200, op.collection, doc, doc.id)
        if op.op == "patch":
            doc = await docs.patch(op.collection, op.id, op.body, caller, op.pre)
        elif op.op == "update":
            doc = await docs.update(op.collection, op.id, op.body, caller, op.pre)
        else:
            await docs.delete(op.collection, op.id, caller, op.pre)
            return Done(index, 204, op.collection, None, op.id)
        return Done(index, 200, op.collection, doc, doc.id)

    async def run(self, operations: list[Operation], caller: Principal | None) -> list[Done]:
        rounds = 0
        after_commit: transaction.AfterCommit = []

        async def body(session: Any) -> list[Done]:
            nonlocal rounds
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise WriteConflict("The batch kept colliding with other writes; retry it")
            if rounds > 1:
                await asyncio.sleep(_JITTER.uniform(0, 0.005 * min(rounds, 20)))
            after_commit.clear()  # what an attempt that did not commit asked for
            token = transaction.bind(session, after_commit)
            try:
                results = []
                for index, op in enumerate(operations):
                    try:
                        results.append(await self._one(index, op, caller))
                    except AppError as exc:
                        raise BatchFailed(index, exc) from None
                return results
            finally:
                transaction.unbind(token)

        try:
            async with self.db.client.start_session() as session:
                done: list[Done] = await session.with_transaction(body)
            for action in after_commit:  # committed: the deleted documents' files go too
                try:
                    await action()
                except Exception:  # the batch stands; the others still run
                    log.exception("a batch's work after its commit failed")
            return done
        except BatchFailed as failed:
            error = failed.error
            raise AppError(
                f"Operation {failed.index} failed, so none was applied: {error.detail}",
                code=error.code,
                status=error.status,
                errors=[
                    FieldError(
                        loc=["body", "operations", failed.index],
                        msg=error.detail,
                        type=str(error.code),
                    ),
                    *(
                        FieldError(
                            loc=["body", "operations", failed.index, *e.loc[1:]]
                            if e.loc[:1] == ["body"]
                            else ["body", "operations", failed.index, *e.loc],
                            msg=e.msg,
                            type=e.type,
                        )
                        for e in error.errors
                    ),
                ],
                retry_after=error.retry_after,
            ) from None
        except OperationFailure as exc:
            if exc.code == _NO_TRANSACTIONS:
                raise TransactionsUnavailable(
                    "This database cannot run transactions (a standalone mongod): run a "
                    "replica set, as compose.yaml does"
                ) from None
            raise
        except PyMongoError:
            raise

"""A bound on the work one write may do to a document's data before it is checked.

JSON Patch `copy` can double a document per operation (20 copies of `/a` into `/a/-` in a
920-byte body: a million-fold growth), and update operators scan arrays. The size limit
on the result is checked only at the end, so the work on the way must be bounded by
itself: every value a write adds, copies, compares or scans is charged here, by its
approximate JSON size (each node costs at least `NODE_COST`, so an array of a hundred
thousand zeros is not cheap), and the write is refused with 413 as soon as the total
passes the budget. A budget of a few times the document limit lets every real patch
through and keeps the worst request to milliseconds.
"""

from __future__ import annotations

from typing import Any

from app.documents.validation import DataTooLarge
from app.errors import FieldError

# Bytes charged per value besides its text: a node is a Python object to walk and copy.
NODE_COST = 8
# The budget is this many times the document size limit.
BUDGET_FACTOR = 4


def json_cost(value: Any, limit: int) -> int:
    """The approximate JSON size of `value`, counted until it passes `limit` (so the
    cost of measuring is bounded too); a result over `limit` means "too much"."""
    total = 0
    stack = [value]
    while stack:
        node = stack.pop()
        total += NODE_COST
        if isinstance(node, str):
            total += len(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                total += len(key)
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
        if total > limit:
            break
    return total


class WorkBudget:
    """The bytes one write may still add, copy, compare or scan."""

    def __init__(self, max_document_bytes: int) -> None:
        self.total = BUDGET_FACTOR * max_document_bytes
        self.left = self.total

    def charge(self, value: Any, where: list[str | int]) -> None:
        """Count `value`'s size; 413 naming `where` once the budget is spent."""
        self.left -= json_cost(value, self.left)
        if self.left < 0:
            msg = (
                f"this change adds, copies or compares more than {self.total} bytes "
                f"({BUDGET_FACTOR}x the document limit)"
            )
            raise DataTooLarge(
                f"The change does too much work: {msg}",
                errors=[FieldError(loc=["body", *where], msg=msg, type="too_much_work")],
            )

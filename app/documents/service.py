"""Business rules of documents: access, versions and preconditions, idempotency, queries.

`DocumentService` is the one object routers, batches and scripts hold; its parts live in
modules of their own by what callers do:

- `core.py`: settings, repositories per collection, data checks, access scopes;
- `crud.py`: one document at a time (create, get, replace, patch, operators, delete);
- `sharing.py`: who else a document is shared with;
- `bulk.py`: many documents per request (bulk create, update and delete by filter);
- `queries.py`: pages, counts and streams;
- `maintenance.py`: imports and account deletion, for scripts and the account lifecycle.
"""

from __future__ import annotations

from app.documents.bulk import BulkDocuments
from app.documents.maintenance import DocumentMaintenance
from app.documents.queries import DocumentQueries
from app.documents.sharing import DocumentSharing


class DocumentService(BulkDocuments, DocumentSharing, DocumentQueries, DocumentMaintenance):
    """Everything documents do (see the module docstring for where each part lives)."""

"""Business rules of documents: access, versions and preconditions, idempotency, queries.

`DocumentService` is the one object routers, batches and scripts hold; its parts live in
modules of their own by what callers do:

- `core.py`: settings, repositories per collection, data checks, access scopes;
- `crud.py`: one document at a time (create, get, replace, patch, operators, delete);
- `sharing.py`: who else a document is shared with;
- `bulk.py`: many documents per request (bulk create, update and delete by filter);
- `queries.py`: pages, counts and streams;
- `aggregation.py`: counts, sums and averages per group;
- `expansion.py`: referenced documents embedded in reads (`?expand=`);
- `maintenance.py`: imports, account deletion and schema dry runs, for scripts, the
  account lifecycle and admins;
- `migration.py`: a change applied to every stored document (scripts.migrate);
- `versions.py`: old versions and the trash (`history: true`; recorded by history.py).
"""

from __future__ import annotations

from app.documents.aggregation import DocumentAggregation
from app.documents.bulk import BulkDocuments
from app.documents.expansion import DocumentExpansion
from app.documents.maintenance import DocumentMaintenance
from app.documents.migration import DocumentMigration
from app.documents.queries import DocumentQueries
from app.documents.sharing import DocumentSharing
from app.documents.versions import DocumentHistory


class DocumentService(
    BulkDocuments,
    DocumentMigration,
    DocumentSharing,
    DocumentQueries,
    DocumentAggregation,
    DocumentExpansion,
    DocumentMaintenance,
    DocumentHistory,
):
    """Everything documents do (see the module docstring for where each part lives)."""

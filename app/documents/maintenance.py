"""What operator scripts and account deletion do to documents, no caller to check."""

from __future__ import annotations

from app.collections.models import CollectionSpec
from app.documents.core import DocumentCore
from app.documents.models import StoredDocument


class DocumentMaintenance(DocumentCore):
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

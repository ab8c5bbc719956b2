"""Documents: CRUD, the filter language, keyset paging, merge patch, bulk, idempotency."""

"""Collections: admin-declared document collections with schemas, indexes and access rules."""

"""Database access: the client factory and the embedded development server."""

"""The admin console at /admin: static files built from console/ (see its README)."""

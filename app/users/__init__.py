"""User accounts: the caller's own profile and admin user management."""

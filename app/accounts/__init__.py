"""Accounts: who is calling (`principal`). Issue 20 moves `auth/` and `users/` here."""

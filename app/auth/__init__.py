"""Authentication: passwords, access tokens, refresh sessions and rate limits."""

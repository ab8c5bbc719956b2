"""Accounts: users, sign-in, sessions, tokens, API keys and the account lifecycle.

- `principal`: who is calling, as every other domain sees it.
- `models`: persistence models (users, refresh sessions, rate-limit counters).
- `auth_service` (register, sign in, refresh, sessions, API keys), `user_service` (profile
  and admin changes), `lifecycle` (verification and password-reset mail flows).
- `user_repository`, `session_repository`, `api_keys`, `action_tokens`, `ratelimit`: the
  doors to MongoDB.
- `passwords`, `tokens`: argon2 hashing off the event loop; access and refresh tokens.
- `auth_router`, `user_router`: the `/v1/auth` and `/v1/users` routes.
"""

"""The TLS settings of every outbound HTTP client (webhook targets, sign-in providers)."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls() -> ssl.SSLContext:
    """One context for the process, as httpx makes by default (certificates checked
    against certifi's authorities): loading that bundle costs ~35 ms, which each new client
    would otherwise pay again. A context is safe to share between clients and loops."""
    return httpx.create_ssl_context()

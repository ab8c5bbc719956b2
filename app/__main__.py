"""`python -m app`: serve the API with uvicorn on HOST:PORT (what `make run` does).

WEB_CONCURRENCY > 1 runs that many worker processes (production, with MONGODB_URL).
"""

from __future__ import annotations

import sys

from app.config import get_settings
from app.db.embedded import EmbeddedDatabaseError, running_url


def main() -> None:
    settings = get_settings()
    # The settings are checked before the app is imported (two seconds of a core): a bad
    # one stops the server at once, in one line.
    import uvicorn

    from app.main import create_app
    from app.observability.logging import configure_logging, log_config

    if settings.mongodb_url is None:
        # Said in one line before uvicorn starts, rather than as a failed startup's traceback.
        try:
            running_url(settings.data_dir, settings.mongodb_db)
        except EmbeddedDatabaseError as exc:
            sys.exit(f"docstore: {exc}")
    configure_logging(settings.log_level)
    # Workers are separate processes: each builds its own app from the factory.
    many = settings.web_concurrency > 1
    uvicorn.run(
        "app.main:create_app" if many else create_app(settings),
        factory=many,
        workers=settings.web_concurrency if many else None,
        host=settings.host,
        port=settings.port,
        log_config=log_config(settings.log_level),
        # Client addresses (rate limits, logs) come from the socket unless
        # FORWARDED_ALLOW_IPS names the proxies whose X-Forwarded-* headers to trust.
        # uvicorn alone would trust them from 127.0.0.1 by default.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
        # In-flight requests get this long to finish after SIGTERM.
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()

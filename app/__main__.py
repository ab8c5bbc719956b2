"""`python -m app`: serve the API with uvicorn on HOST:PORT (what `make run` does)."""

from __future__ import annotations

import uvicorn

from app.config import get_settings
from app.main import create_app
from app.ops.logging import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()

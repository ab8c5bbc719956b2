"""`python -m app.worker`: a process that does the background work and serves nothing.

The mail outbox, the change pump (webhook messages and document history; one process
at a time leads, the others stand by) and webhook deliveries. Run one or more beside API
processes started with BACKGROUND_JOBS=false, so sending webhooks never takes CPU from
requests; every piece is safe with any number of processes. Stops cleanly on SIGTERM or
SIGINT (a message cut off mid-send is sent again when its lease ends).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from app.config import get_settings
from app.container import open_container
from app.db.embedded import running_url
from app.observability.logging import configure_logging

log = logging.getLogger("docstore.worker")


async def run() -> None:
    settings = get_settings().model_copy(update={"background_jobs": True})
    if settings.mongodb_url is None:
        # The embedded database belongs to the API process that started it: a worker
        # uses it while it runs, never starts (or stops) one of its own.
        url = await asyncio.to_thread(running_url, settings.data_dir, settings.mongodb_db)
        if url is None:
            raise SystemExit(
                "docstore worker: no database: set MONGODB_URL, or start the API first "
                "(make run) so the worker can use its embedded database"
            )
        settings = settings.model_copy(update={"mongodb_url": url})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_container(settings, realtime=False):
        log.info("worker running: mail, change pump, webhook deliveries")
        await stop.wait()
    log.info("worker stopped")


def main() -> None:
    configure_logging(get_settings().log_level)
    asyncio.run(run())


if __name__ == "__main__":
    main()

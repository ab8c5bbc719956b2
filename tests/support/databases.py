"""Test databases of their own (EmbeddedDatabase), stopped without holding up the suite."""

from __future__ import annotations

import threading

from app.db.embedded import EmbeddedDatabase


def stop_later(server: EmbeddedDatabase) -> None:
    """Stop a test's own database, waiting for it in the background.

    SecantusDB takes about 2 s to exit after SIGTERM (it joins its accept thread with a
    2 s timeout), and nothing after the test needs it gone. SIGTERM is sent here and now,
    so the server goes even if this test process exits first.
    """
    if server.process is None:
        return
    server.process.terminate()
    threading.Thread(target=server.stop, name="stop-test-database", daemon=True).start()

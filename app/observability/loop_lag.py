"""Event-loop lag: how late the loop wakes a task that asked to sleep.

Anything that blocks the loop (CPU-bound work, a synchronous call) delays every request
in the process by as much. A monitor task sleeps `interval` at a time and records how
much later than asked it woke, as a Prometheus histogram (`docstore_event_loop_lag_seconds`),
so dashboards and `make bench` see stalls that request latencies only hint at. One task
per process, owned by the container, cancelled on shutdown.
"""

from __future__ import annotations

import asyncio

from app.observability.metrics import LOOP_LAG
from app.tasks import cancel_and_wait


class LoopLagMonitor:
    def __init__(self, *, interval: float = 0.05) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        # Set after each sample (tests wait on it rather than on time).
        self.sampled = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            LOOP_LAG.observe(max(0.0, loop.time() - asked))
            self.sampled.set()

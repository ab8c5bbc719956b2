"""Event-loop lag: how late the loop wakes a task that asked to sleep.

Anything that blocks the loop (CPU-bound work, a synchronous call) delays every request
in the process by as much. A monitor task sleeps `interval` at a time and records how
much later than asked it woke, as a Prometheus histogram (`docstore_event_loop_lag_seconds`),
so dashboards and `make bench` see stalls that request latencies only hint at. One task
per process, owned by the container, cancelled on shutdown.

Every wake of an idle process costs CPU (about 0.2 ms on a small VM: 20 a second were a
third of an idle API process's CPU), so the monitor samples every `interval` only while
requests are in flight or began within `linger`; otherwise every `idle_interval`, and at
once when a request begins (the request middleware tells `REQUESTS`). A stall of an idle
process (background work alone) is seen when it overlaps one of those slower samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from app.observability.metrics import LOOP_LAG
from app.tasks import cancel_and_wait


class Activity:
    """Requests in flight in this process, and when the last one began."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_began = 0.0
        # Set by a monitor waiting at the idle pace: the next request wakes it.
        self.parked: Callable[[], None] | None = None

    def began(self) -> None:
        self.in_flight += 1
        self.last_began = time.monotonic()
        if self.parked is not None:
            wake, self.parked = self.parked, None
            wake()

    def ended(self) -> None:
        self.in_flight -= 1

    def busy(self, linger: float) -> bool:
        return self.in_flight > 0 or time.monotonic() - self.last_began < linger


# The process's requests (RequestContextMiddleware keeps it).
REQUESTS = Activity()


class LoopLagMonitor:
    def __init__(
        self,
        *,
        interval: float = 0.05,
        idle_interval: float = 1.0,
        linger: float = 1.0,
        activity: Activity = REQUESTS,
    ) -> None:
        self.interval = interval
        self.idle_interval = idle_interval
        self.linger = linger
        self.activity = activity
        self._task: asyncio.Task[None] | None = None
        # Set after each sample (tests wait on it rather than on time).
        self.sampled = asyncio.Event()
        # Samples taken at the idle pace (tests read it).
        self.idle_samples = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        self.activity.parked = None
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:  # (a request may begin on another thread's loop in tests)
            loop.call_soon_threadsafe(woken.set)

        while True:
            busy = self.activity.busy(self.linger)
            asked = loop.time() + (self.interval if busy else self.idle_interval)
            if busy:
                await asyncio.sleep(self.interval)
            else:
                woken.clear()
                self.activity.parked = wake
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), self.idle_interval)
                        continue  # a request began: sample at its pace from now on
                finally:
                    if self.activity.parked is wake:
                        self.activity.parked = None
                self.idle_samples += 1
            LOOP_LAG.observe(max(0.0, loop.time() - asked))
            self.sampled.set()

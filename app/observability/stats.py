"""Metrics at a glance: the Prometheus registry summed into a few numbers for people.

Read from the same registry /metrics exposes (all processes' when PROMETHEUS_MULTIPROC_DIR
is set), so the console and Prometheus never disagree. Latency percentiles are estimated
from the histogram's buckets (as Prometheus' histogram_quantile does): the bucket's upper
bound, interpolated linearly inside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, multiprocess

from app.observability.metrics import REGISTRY


@dataclass
class RequestStats:
    total: int = 0
    client_errors: int = 0  # 4xx
    server_errors: int = 0  # 5xx
    by_route: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Stats:
    requests: RequestStats
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    in_progress: int
    realtime_streams: int
    database_errors: int


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative `buckets` [(upper bound, count ≤ bound)], sorted by
    bound and ending with +Inf; None when nothing was observed."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # above the last finite bucket: its bound is all we know
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def collect() -> Stats:
    requests = RequestStats()
    buckets: dict[float, float] = {}
    in_progress = streams = db_errors = 0.0
    for metric in _registry().collect():
        for sample in metric.samples:
            if sample.name == "docstore_http_requests_total":
                n = int(sample.value)
                requests.total += n
                status = sample.labels.get("status", "")
                if status.startswith("4"):
                    requests.client_errors += n
                elif status.startswith("5"):
                    requests.server_errors += n
                route = f"{sample.labels.get('method')} {sample.labels.get('route')}"
                requests.by_route[route] = requests.by_route.get(route, 0) + n
            elif sample.name == "docstore_http_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "docstore_http_requests_in_progress":
                in_progress += sample.value
            elif sample.name == "docstore_realtime_streams":
                streams += sample.value
            elif sample.name == "docstore_database_errors_total":
                db_errors += sample.value
    cumulative = sorted(buckets.items())

    def ms(q: float) -> float | None:
        seconds = quantile(q, cumulative)
        return None if seconds is None else round(seconds * 1000, 2)

    return Stats(
        requests=requests,
        latency_p50_ms=ms(0.5),
        latency_p95_ms=ms(0.95),
        latency_p99_ms=ms(0.99),
        in_progress=int(in_progress),
        realtime_streams=int(streams),
        database_errors=int(db_errors),
    )

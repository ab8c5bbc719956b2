"""Prometheus metrics: requests by route template, method and status; latency; DB errors.

Labels use the route template (`/v1/collections/{name}/documents/{doc_id}`), never the
raw path, so cardinality stays bounded. With several worker processes, set
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) so /metrics aggregates.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "docstore_http_requests_total",
    "HTTP requests handled",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "docstore_http_request_duration_seconds",
    "Time from request start to response end",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
IN_PROGRESS = Gauge(
    "docstore_http_requests_in_progress",
    "Requests being handled right now (this scrape included)",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
DATABASE_ERRORS = Counter(
    "docstore_database_errors_total",
    "Requests that failed because of the database",
    ["kind"],
    registry=REGISTRY,
)
READ_CACHE_ON = Gauge(
    "docstore_read_cache_on",
    "Processes whose read cache is on (its change stream is open); see READ_CACHE",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
CHANGE_STREAM_FAILURES = Counter(
    "docstore_change_stream_failures_total",
    "Times the read cache's change stream failed or ended (the cache is off until it reopens)",
    registry=REGISTRY,
)

WRITE_RETRIES = Counter(
    "docstore_write_retries_total",
    "Document writes that lost a race to another write and re-applied themselves",
    registry=REGISTRY,
)

LOOP_LAG = Histogram(
    "docstore_event_loop_lag_seconds",
    "How much later than asked the event loop woke a sleeping task (app/observability/loop_lag.py)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)

REALTIME_STREAMS = Gauge(
    "docstore_realtime_streams",
    "Event streams (GET .../events) open right now",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
REALTIME_EVENTS = Counter(
    "docstore_realtime_events_sent_total",
    "Events written to realtime streams, by type",
    ["type"],
    registry=REGISTRY,
)
REALTIME_ENDED = Counter(
    "docstore_realtime_streams_ended_total",
    "Realtime streams the server ended, by reason (slow_consumer: dropped for not reading)",
    ["reason"],
    registry=REGISTRY,
)
REALTIME_FEED_FAILURES = Counter(
    "docstore_realtime_feed_failures_total",
    "Times the realtime change stream failed or ended (its streams end; clients resume)",
    registry=REGISTRY,
)

FILE_BYTES = Counter(
    "docstore_file_bytes_total",
    "File bytes uploaded (in) and served (out)",
    ["direction"],
    registry=REGISTRY,
)

CLIENT_DISCONNECTS = Counter(
    "docstore_client_disconnects_total",
    "Requests whose client went away before sending the whole body (logged as status 499)",
    ["route"],
    registry=REGISTRY,
)

UNMATCHED_ROUTE = "<unmatched>"


# labels() takes a lock and builds a key on every call; the set of (method, route, status)
# is small and fixed by the routes, so each request's children are looked up once.
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    key = (method, route or UNMATCHED_ROUTE, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = (
            REQUESTS.labels(key[0], key[1], str(status)),
            LATENCY.labels(key[0], key[1]),
        )
    children[0].inc()
    children[1].observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


CHANGE_PUMP_LEADING = Gauge(
    "docstore_change_pump_leading",
    "Processes whose change pump leads (records webhook messages and document history): "
    "1 when all is well; 0 for long means no process runs background jobs",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
CHANGE_PUMP_CHECKPOINT = Gauge(
    "docstore_change_pump_checkpoint_timestamp_seconds",
    "When the leading change pump last saved its checkpoint (Unix time; at least every "
    "second or so while it runs): far behind the present means it is stuck",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
CHANGE_PUMP_GAPS = Counter(
    "docstore_change_pump_gaps_total",
    "Times the change pump could not resume where it stopped (the database had lost that "
    "history): webhooks and document history missed the changes in between",
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "docstore_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered, failed: an answer other than 2xx "
    "or no answer, blocked: a target the SSRF rules refuse)",
    ["outcome"],
    registry=REGISTRY,
)

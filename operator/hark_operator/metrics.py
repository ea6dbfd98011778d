"""Prometheus metrics of the operator, served on `HARK_METRICS_PORT` (`/metrics`)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from hark_serving.analytics.alerts import match_counter

BACKLOG = Gauge(
    "hark_operator_backlog_items",
    "Items of a job waiting or in flight (the scaling policy's input).",
    ["job"],
)
IN_FLIGHT = Gauge("hark_operator_in_flight_items", "Items being processed right now, all jobs.")
ITEMS = Counter(
    "hark_operator_items",
    "Item outcomes: succeeded, skipped (already current), failed (for good), retried.",
    ["job", "result"],
)
REPLICAS_DESIRED = Gauge(
    "hark_operator_replicas_desired", "GPU replica floor the scaling policy asks for."
)
REPLICAS_CURRENT = Gauge(
    "hark_operator_replicas_current", "GPU replica floor the scaler backend reports."
)
SCALE_EVENTS = Counter(
    "hark_operator_scale_events", "Changes of the GPU replica floor.", ["direction"]
)
RECONCILE_SECONDS = Histogram(
    "hark_operator_reconcile_seconds",
    "Time to scan a job's prefixes and queue its pending items.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def forget_job(job: str) -> None:
    """Drop the series of a job that stopped running, so their number stays bounded."""
    with contextlib.suppress(KeyError):
        BACKLOG.remove(job)
    for result in ("succeeded", "skipped", "failed", "retried"):
        with contextlib.suppress(KeyError):
            ITEMS.remove(job, result)


def count_category_matches(categories: list[str]) -> None:
    """`hark_category_matches_total{category}`: the one counter the data plane uses too."""
    counter = match_counter()
    for name in categories:
        counter.labels(category=name).inc()

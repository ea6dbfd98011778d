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

SCANS = Counter(
    "hark_operator_scans",
    "Complete listings of a job's input and output prefixes.",
    ["job"],
)
NOTIFIED_RESULTS = ("dispatched", "current", "ignored", "deferred")
NOTIFIED = Counter(
    "hark_operator_notified_keys",
    "Keys that bucket notifications named to a job, by what came of them: dispatched, "
    "current (nothing to do), ignored (not an input of the job), deferred (left to a scan).",
    ["job", "result"],
)


def forget_job(job: str) -> None:
    """Drop the series of a job that stopped running, so their number stays bounded."""
    with contextlib.suppress(KeyError):
        BACKLOG.remove(job)
    for result in ("succeeded", "skipped", "failed", "retried"):
        with contextlib.suppress(KeyError):
            ITEMS.remove(job, result)
    with contextlib.suppress(KeyError):
        SCANS.remove(job)
    for result in NOTIFIED_RESULTS:
        with contextlib.suppress(KeyError):
            NOTIFIED.remove(job, result)


# For the chart's alerts: backlog age, a job stalled, the GPU floor at its bound.
BACKLOG_OLDEST = Gauge(
    "hark_operator_backlog_oldest_seconds",
    "How long the job's oldest open item (queued, waiting or running) has been open; "
    "0 when none is.",
    ["job"],
)
JOB_LAST_PROGRESS = Gauge(
    "hark_operator_job_last_progress_timestamp_seconds",
    "Unix time the job last finished an item (for good: succeeded, skipped or failed), "
    "or when the operator took the job on.",
    ["job"],
)
REPLICAS_MIN = Gauge("hark_operator_replicas_min", "Lowest GPU replica floor the policy may set.")
REPLICAS_MAX = Gauge("hark_operator_replicas_max", "Highest GPU replica floor the policy may set.")


def forget_job_progress(job: str) -> None:
    """Drop a stopped job's age and progress series (with `forget_job`)."""
    for gauge in (BACKLOG_OLDEST, JOB_LAST_PROGRESS):
        with contextlib.suppress(KeyError):
            gauge.remove(job)


# Appended: whether the processor (the Serve app) takes work. 0 while dispatch is
# paused because it is unreachable or refuses the operator's credential.
PROCESSOR_AVAILABLE = Gauge(
    "hark_processor_available",
    "1 while the item processor takes work; 0 while dispatch is paused for every job.",
)
PROCESSOR_AVAILABLE.set(1)


def count_category_matches(categories: list[str]) -> None:
    """`hark_category_matches_total{category}`: the one counter the data plane uses too."""
    counter = match_counter()
    for name in categories:
        counter.labels(category=name).inc()

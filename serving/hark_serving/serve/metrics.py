"""Prometheus metrics of the Serve app, exposed by each Ingress replica at `GET /metrics`.

Each Ingress replica keeps its own registry and Prometheus scrapes every
replica (sum across them for totals). Work done in other deployments is
counted here too, from what comes back with each answer: a Worker returns the
statistics of the model batches its segments ran in, one entry per batch
(the Transcriber attaches them to exactly one segment of each batch), so the
batch histograms count every batch once across all replicas. Ray's own
`ray_serve_*` metrics (per-replica queue lengths, processing latency) come
from Ray's metrics export port, next to these.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from hark_serving.serve.messages import BatchStats

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
SEGMENT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FRAME_BUCKETS = (250, 500, 1000, 2000, 4000, 6000, 8000, 12000, 16000)
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter(
            "hark_http_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "method", "code"],
            registry=r,
        )
        self.errors = Counter(
            "hark_http_errors", "Error answers, by error code.", ["route", "error"], registry=r
        )
        self.latency = Histogram(
            "hark_http_request_duration_seconds",
            "Time from request to answer.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "hark_http_requests_in_flight",
            "Requests accepted and not yet answered (the Ingress queue).",
            ["route"],
            registry=r,
        )
        self.audio_seconds = Counter(
            "hark_audio_seconds_processed",
            "Seconds of audio transcribed.",
            ["route"],
            registry=r,
        )
        self.items = Counter(
            "hark_items", "Results of /v1/items, by status.", ["status"], registry=r
        )
        self.batch_segments = Histogram(
            "hark_model_batch_segments",
            "Segments per model batch.",
            buckets=SEGMENT_BUCKETS,
            registry=r,
        )
        self.batch_frames = Histogram(
            "hark_model_batch_frames",
            "Encoder frames per model batch, padding included.",
            buckets=FRAME_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "hark_model_batch_seconds",
            "Forward-pass time per model batch.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.transcriber_queue = Gauge(
            "hark_transcriber_queue_segments",
            "Segments waiting in a Transcriber when its latest batch started.",
            registry=r,
        )
        self.model_load_seconds = Gauge(
            "hark_model_load_seconds",
            "How long the Transcriber took to load the model.",
            registry=r,
        )
        self.model_ready = Gauge(
            "hark_model_ready", "1 when a Transcriber answered ready at the last check.", registry=r
        )

    def observe_batches(self, batches: Iterable[BatchStats]) -> None:
        for b in batches:
            self.batch_segments.observe(b.segments)
            self.batch_frames.observe(b.frames)
            self.batch_seconds.observe(b.seconds)
            self.transcriber_queue.set(b.queued)

    def render(self) -> bytes:
        return generate_latest(self.registry)

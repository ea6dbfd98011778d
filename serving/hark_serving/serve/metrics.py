"""Hark's domain metrics in the Serve app: declared once here, recorded in the replicas.

Each deployment records what it does itself (the Ingress its HTTP answers, the
Worker its files and items, the Transcriber its model batches) through Ray
Serve's metrics API (`ray.serve.metrics`), which the deployment passes in as
the `MetricsAPI`. Ray tags every series with `application`, `deployment` and
`replica`, and exports it on the metrics export port of the replica's node,
next to Ray's own `ray_serve_*` series. On that port Ray prefixes each name
with `ray_` and counters end in `_total`: `hark_items` is scraped as
`ray_hark_items_total` (`MetricSpec.exported`).

This module imports no Ray: the routes and their tests record into
`MemoryMetricsAPI`, the same instruments kept in memory.

Metric names and tags here are a contract with the chart's dashboard and
alerts; docs/metrics.md lists them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from hark_serving.serve.messages import BatchStats

Kind = Literal["counter", "gauge", "histogram"]
Tags = dict[str, str]

# Ray prefixes every custom metric with this on its export port.
EXPORT_PREFIX = "ray_"

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
SEGMENT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FRAME_BUCKETS = (250, 500, 1000, 2000, 4000, 6000, 8000, 12000, 16000)
SHARE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    help: str
    kind: Kind
    tags: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def exported(self) -> tuple[str, ...]:
        """The series names Ray's metrics export port shows for this metric."""
        base = EXPORT_PREFIX + self.name
        if self.kind == "counter":
            return (base + "_total",)
        if self.kind == "histogram":
            return (base + "_bucket", base + "_sum", base + "_count")
        return (base,)


# -- the catalogue, by the deployment that records it ---------------------------------

HTTP_REQUESTS = MetricSpec(
    "hark_http_requests", "HTTP answers, by route, method and status code.", "counter",
    ("route", "method", "code"),
)  # fmt: skip
HTTP_ERRORS = MetricSpec(
    "hark_http_errors", "Error answers, by route and error code.", "counter", ("route", "error")
)
HTTP_LATENCY = MetricSpec(
    "hark_http_request_duration_seconds", "Time from request to answer.", "histogram",
    ("route",), LATENCY_BUCKETS,
)  # fmt: skip
HTTP_IN_FLIGHT = MetricSpec(
    "hark_http_requests_in_flight", "Requests accepted and not yet answered.", "gauge", ("route",)
)
CATEGORY_MATCHES = MetricSpec(
    "hark_category_matches", "Transcripts that matched an alert category, by category.",
    "counter", ("category",),
)  # fmt: skip
INGRESS = (HTTP_REQUESTS, HTTP_ERRORS, HTTP_LATENCY, HTTP_IN_FLIGHT, CATEGORY_MATCHES)

FILES = MetricSpec(
    "hark_files", "Files (uploads or S3 items) finished, by kind and status.", "counter",
    ("kind", "status"),
)  # fmt: skip
FAILURES = MetricSpec(
    "hark_failures", "Files that failed, by kind and error code.", "counter", ("kind", "code")
)
AUDIO_SECONDS = MetricSpec(
    "hark_audio_seconds_processed", "Seconds of audio transcribed, by kind.", "counter", ("kind",)
)
DECODE_SECONDS = MetricSpec(
    "hark_decode_seconds", "Time to decode a file to 16 kHz samples.", "histogram",
    ("kind",), STAGE_BUCKETS,
)  # fmt: skip
VAD_SECONDS = MetricSpec(
    "hark_vad_seconds", "Time to cut a file at its pauses (voice activity).", "histogram",
    ("kind",), STAGE_BUCKETS,
)  # fmt: skip
WORKER = (FILES, FAILURES, AUDIO_SECONDS, DECODE_SECONDS, VAD_SECONDS)

MODEL_BATCHES = MetricSpec("hark_model_batches", "Model batches run (forward passes).", "counter")
BATCH_SEGMENTS = MetricSpec(
    "hark_model_batch_segments", "Segments per model batch.", "histogram", (), SEGMENT_BUCKETS
)
BATCH_FRAMES = MetricSpec(
    "hark_model_batch_frames", "Encoder frames per model batch, padding included.", "histogram",
    (), FRAME_BUCKETS,
)  # fmt: skip
BATCH_PADDING = MetricSpec(
    "hark_model_batch_padding_ratio", "Share of a model batch's frames that is padding.",
    "histogram", (), SHARE_BUCKETS,
)  # fmt: skip
BATCH_SECONDS = MetricSpec(
    "hark_model_batch_seconds", "Forward-pass time per model batch.", "histogram", (),
    BATCH_SECONDS_BUCKETS,
)  # fmt: skip
QUEUE = MetricSpec(
    "hark_transcriber_queue_segments",
    "Segments waiting in the Transcriber when its latest batch started.", "gauge",
)  # fmt: skip
MODEL_READY = MetricSpec("hark_model_ready", "1 once the replica has its model loaded.", "gauge")
MODEL_LOAD = MetricSpec("hark_model_load_seconds", "How long the model took to load.", "gauge")
TRANSCRIBER = (
    MODEL_BATCHES, BATCH_SEGMENTS, BATCH_FRAMES, BATCH_PADDING, BATCH_SECONDS, QUEUE,
    MODEL_READY, MODEL_LOAD,
)  # fmt: skip

CATALOGUE: tuple[MetricSpec, ...] = INGRESS + WORKER + TRANSCRIBER


# -- the API the deployments pass in: `ray.serve.metrics` has this shape ---------------


class CounterLike(Protocol):
    def inc(self, value: float = ..., tags: Tags = ...) -> None: ...


class GaugeLike(Protocol):
    def set(self, value: float, tags: Tags = ...) -> None: ...


class HistogramLike(Protocol):
    def observe(self, value: float, tags: Tags = ...) -> None: ...


class MetricsAPI(Protocol):
    """`Counter`, `Gauge` and `Histogram` constructors, as `ray.serve.metrics` has them."""

    @property
    def Counter(self) -> Callable[..., CounterLike]: ...
    @property
    def Gauge(self) -> Callable[..., GaugeLike]: ...
    @property
    def Histogram(self) -> Callable[..., HistogramLike]: ...


class _Instruments:
    """One instrument per spec, created through `api` in the process that records."""

    def __init__(self, api: MetricsAPI, specs: tuple[MetricSpec, ...]) -> None:
        self.counters: dict[str, CounterLike] = {}
        self.gauges: dict[str, GaugeLike] = {}
        self.histograms: dict[str, HistogramLike] = {}
        for s in specs:
            tag_keys = s.tags or None
            if s.kind == "counter":
                self.counters[s.name] = api.Counter(s.name, description=s.help, tag_keys=tag_keys)
            elif s.kind == "gauge":
                self.gauges[s.name] = api.Gauge(s.name, description=s.help, tag_keys=tag_keys)
            else:
                self.histograms[s.name] = api.Histogram(
                    s.name, description=s.help, boundaries=list(s.buckets), tag_keys=tag_keys
                )

    def inc(self, spec: MetricSpec, value: float = 1.0, **tags: str) -> None:
        self.counters[spec.name].inc(value, tags)

    def set(self, spec: MetricSpec, value: float, **tags: str) -> None:
        self.gauges[spec.name].set(value, tags)

    def observe(self, spec: MetricSpec, value: float, **tags: str) -> None:
        self.histograms[spec.name].observe(value, tags)


class IngressMetrics:
    """The HTTP edge: answers, errors, latency and requests in flight, per route."""

    def __init__(self, api: MetricsAPI) -> None:
        self._m = _Instruments(api, INGRESS)
        self._in_flight: dict[str, int] = defaultdict(int)

    def started(self, route: str) -> None:
        self._in_flight[route] += 1
        self._m.set(HTTP_IN_FLIGHT, self._in_flight[route], route=route)

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        self._in_flight[route] -= 1
        self._m.set(HTTP_IN_FLIGHT, self._in_flight[route], route=route)
        self._m.inc(HTTP_REQUESTS, route=route, method=method, code=str(status))
        self._m.observe(HTTP_LATENCY, seconds, route=route)

    def error(self, route: str, code: str) -> None:
        self._m.inc(HTTP_ERRORS, route=route, error=code)

    def categories_matched(self, categories: Iterable[str]) -> None:
        """An upload matched these alert categories (call analytics)."""
        for name in categories:
            self._m.inc(CATEGORY_MATCHES, category=name)


FileKind = Literal["upload", "item"]


class WorkerMetrics:
    """Files through the Worker: stage times, outcomes, audio transcribed."""

    def __init__(self, api: MetricsAPI) -> None:
        self._m = _Instruments(api, WORKER)

    def prepared(self, kind: FileKind, decode_seconds: float, vad_seconds: float) -> None:
        self._m.observe(DECODE_SECONDS, decode_seconds, kind=kind)
        self._m.observe(VAD_SECONDS, vad_seconds, kind=kind)

    def finished(
        self, kind: FileKind, status: str, audio_seconds: float = 0.0, code: str | None = None
    ) -> None:
        """One file done: `succeeded` (with its audio), `skipped`, or `failed` (with a code)."""
        self._m.inc(FILES, kind=kind, status=status)
        if status == "succeeded":
            self._m.inc(AUDIO_SECONDS, audio_seconds, kind=kind)
        elif status == "failed":
            self._m.inc(FAILURES, kind=kind, code=code or "internal")


class TranscriberMetrics:
    """The model: load, readiness, and every batch it runs."""

    def __init__(self, api: MetricsAPI) -> None:
        self._m = _Instruments(api, TRANSCRIBER)

    def loaded(self, seconds: float) -> None:
        self._m.set(MODEL_LOAD, seconds)
        self._m.set(MODEL_READY, 1)

    def batch(self, stats: BatchStats) -> None:
        self._m.inc(MODEL_BATCHES)
        self._m.observe(BATCH_SEGMENTS, stats.segments)
        self._m.observe(BATCH_FRAMES, stats.frames)
        self._m.observe(BATCH_PADDING, stats.padding / stats.frames if stats.frames else 0.0)
        self._m.observe(BATCH_SECONDS, stats.seconds)
        self._m.set(QUEUE, stats.queued)


# -- in memory: the same instruments without Ray ----------------------------------------


def _key(tags: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((tags or {}).items()))


class _Memory:
    def __init__(self, name: str, description: str = "", **kw: object) -> None:
        self.name = name
        self.values: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
        self.observations: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)

    def inc(self, value: float = 1.0, tags: Tags | None = None) -> None:
        self.values[_key(tags)] += value

    def set(self, value: float, tags: Tags | None = None) -> None:
        self.values[_key(tags)] = value

    def observe(self, value: float, tags: Tags | None = None) -> None:
        self.observations[_key(tags)].append(value)


class MemoryMetricsAPI:
    """`MetricsAPI` in memory, for processes without Ray and for tests of the recorders."""

    def __init__(self) -> None:
        self.metrics: dict[str, _Memory] = {}

    def _make(self, name: str, description: str = "", **kw: object) -> _Memory:
        self.metrics[name] = _Memory(name, description)
        return self.metrics[name]

    @property
    def Counter(self) -> Callable[..., CounterLike]:
        return self._make

    @property
    def Gauge(self) -> Callable[..., GaugeLike]:
        return self._make

    @property
    def Histogram(self) -> Callable[..., HistogramLike]:
        return self._make

    def value(self, spec: MetricSpec, **tags: str) -> float:
        """A counter's or a gauge's value for exactly these tags (0 when never recorded)."""
        return self.metrics[spec.name].values.get(_key(tags), 0.0)

    def observed(self, spec: MetricSpec, **tags: str) -> list[float]:
        """A histogram's observations for exactly these tags."""
        return list(self.metrics[spec.name].observations.get(_key(tags), []))

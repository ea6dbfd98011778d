"""The Serve app's metric recorders, in memory: what each deployment records, and the
names Ray's metrics export port shows for them."""

from __future__ import annotations

import re

from hark_serving.serve.messages import BatchStats
from hark_serving.serve.metrics import (
    AUDIO_SECONDS,
    BATCH_FRAMES,
    BATCH_PADDING,
    BATCH_SEGMENTS,
    CATALOGUE,
    DECODE_SECONDS,
    FAILURES,
    FILES,
    MODEL_BATCHES,
    MODEL_LOAD,
    MODEL_READY,
    QUEUE,
    VAD_SECONDS,
    MemoryMetricsAPI,
    MetricSpec,
    TranscriberMetrics,
    WorkerMetrics,
)


def test_ray_exports_counters_with_total_and_every_name_with_its_prefix() -> None:
    assert FILES.exported == ("ray_hark_files_total",)
    assert QUEUE.exported == ("ray_hark_transcriber_queue_segments",)
    assert BATCH_SEGMENTS.exported == (
        "ray_hark_model_batch_segments_bucket",
        "ray_hark_model_batch_segments_sum",
        "ray_hark_model_batch_segments_count",
    )


def test_the_catalogue_has_unique_prometheus_names_and_no_reserved_tags() -> None:
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))
    for spec in CATALOGUE:
        assert re.fullmatch(r"hark_[a-z_]+", spec.name), spec.name
        assert not spec.name.endswith("_total"), "Ray adds _total to counters itself"
        # Ray Serve adds these to every series; a metric may not declare them again.
        assert not {"deployment", "replica", "application"} & set(spec.tags), spec.name
        assert bool(spec.buckets) == (spec.kind == "histogram"), spec.name


def test_the_worker_records_stage_times_outcomes_and_audio_by_kind() -> None:
    api = MemoryMetricsAPI()
    worker = WorkerMetrics(api)
    worker.prepared("item", decode_seconds=0.25, vad_seconds=0.5)
    worker.finished("item", "succeeded", audio_seconds=12.5)
    worker.finished("item", "skipped")
    worker.finished("item", "failed", code="unsupported_media")
    worker.finished("upload", "failed", code="empty_file")
    worker.finished("upload", "succeeded", audio_seconds=4.0)
    assert api.observed(DECODE_SECONDS, kind="item") == [0.25]
    assert api.observed(VAD_SECONDS, kind="item") == [0.5]
    assert api.value(FILES, kind="item", status="succeeded") == 1
    assert api.value(FILES, kind="item", status="skipped") == 1
    assert api.value(FILES, kind="item", status="failed") == 1
    assert api.value(FAILURES, kind="item", code="unsupported_media") == 1
    assert api.value(FAILURES, kind="upload", code="empty_file") == 1
    assert api.value(AUDIO_SECONDS, kind="item") == 12.5
    assert api.value(AUDIO_SECONDS, kind="upload") == 4.0


def test_a_failure_without_a_code_counts_as_internal() -> None:
    api = MemoryMetricsAPI()
    WorkerMetrics(api).finished("item", "failed")
    assert api.value(FAILURES, kind="item", code="internal") == 1


def test_the_transcriber_records_each_batch_and_its_padding() -> None:
    api = MemoryMetricsAPI()
    model = TranscriberMetrics(api)
    model.loaded(2.5)
    model.batch(BatchStats(segments=4, frames=800, seconds=0.3, queued=7, padding=200))
    model.batch(BatchStats(segments=1, frames=100, seconds=0.1, queued=0, padding=0))
    assert api.value(MODEL_READY) == 1 and api.value(MODEL_LOAD) == 2.5
    assert api.value(MODEL_BATCHES) == 2
    assert api.observed(BATCH_SEGMENTS) == [4, 1]
    assert api.observed(BATCH_FRAMES) == [800, 100]
    assert api.observed(BATCH_PADDING) == [0.25, 0.0]
    assert api.value(QUEUE) == 0  # the latest batch's queue


def test_histogram_buckets_are_increasing() -> None:
    histograms: list[MetricSpec] = [s for s in CATALOGUE if s.kind == "histogram"]
    for spec in histograms:
        assert list(spec.buckets) == sorted(set(spec.buckets)), spec.name

"""The Transcriber deployment: the model, batching segments across concurrent requests.

One replica holds one loaded SenseVoiceSmall (one GPU in production). The
model loads in the constructor, KServe style: a replica only counts as
running, and `status().ready` only turns true, once the weights are in memory.

Callers send one segment per call (`transcribe`); a `batcher.Batcher` cuts
each model batch from everything waiting at the moment a lane of the model
frees up (bounded by `max_batch_segments` and the frame budget), and answers
each caller when its own batch is done. While one batch runs, the next fills,
so under load the model gets full batches, made of segments of many requests.
Batch limits and the wait come from `user_config`, so a RayService can retune
them without a restart.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve
from ray.serve import metrics as serve_metrics

from hark_serving.config import Settings
from hark_serving.engine.factory import build_recognizer
from hark_serving.errors import ModelError
from hark_serving.serve.batcher import (
    Batcher,
    BatchLimits,
    check_window,
    default_batch_frames,
    default_lanes,
    default_max_padding,
)
from hark_serving.serve.context import configure_replica_logging
from hark_serving.serve.messages import ModelStatus, SegmentResult, SegmentTask
from hark_serving.serve.metrics import TranscriberMetrics
from hark_serving.serve.settings import load_serve_settings

# The settings' own default batch budget (the embedded engine's, and a GPU's).
SHARED_BATCH_FRAMES: int = Settings.model_fields["batch_frames"].default

log = logging.getLogger(__name__)


@serve.deployment(name="Transcriber")
class Transcriber:
    def __init__(self, args: dict[str, Any]) -> None:
        configure_replica_logging()
        settings = load_serve_settings(args)
        self.ready = False
        self.metrics = TranscriberMetrics(serve_metrics)  # exported on Ray's metrics port
        started = time.perf_counter()
        self.model = build_recognizer(settings)
        self.load_seconds = time.perf_counter() - started
        # One model thread per lane: batches run one after another in each, while the
        # event loop keeps taking in segments for the next (on a CPU in int8, two lanes).
        model = self.model
        lanes = default_lanes(model.info.device, model.info.dtype, model.threads)
        model.allow_concurrent_calls(lanes)
        self._executor = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="hark-model")
        self.batcher = Batcher(model, BatchLimits(), self._executor, lanes)
        self.reconfigure(settings.batching())
        self.ready = True
        self.metrics.loaded(self.load_seconds)
        log.info("Transcriber ready: %s in %.1fs", self.model.info.source, self.load_seconds)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply `user_config` (`ServeSettings.batching()`): batch bounds and wait."""
        current = self.batcher.limits
        device = self.model.info.device
        padding = config.get("batch_max_padding")
        frames = config.get("batch_frames")
        limits = BatchLimits(
            int(config.get("max_batch_segments", current.max_segments)),
            default_batch_frames(device, SHARED_BATCH_FRAMES) if frames is None else int(frames),
            default_max_padding(device) if padding is None else float(padding),
        )
        self.batcher.limits = limits
        if "batch_wait_seconds" in config:
            self.batcher.wait = float(config["batch_wait_seconds"])

    def status(self) -> ModelStatus:
        return ModelStatus(self.ready, self.model.info, self.load_seconds)

    def check_health(self) -> None:
        """Serve's health check: a replica whose model keeps failing leaves rotation."""
        if not self.ready:
            raise ModelError("the model is not loaded")
        # Readiness and load time are state, not events: record them again on every check,
        # so their series stay on Ray's export port for as long as the replica lives.
        self.metrics.loaded(self.load_seconds)
        if not self.batcher.healthy:
            raise ModelError(
                f"{self.batcher.failed_in_a_row} forward passes failed in a row for several "
                "requests: the model or its device is broken; replacing this replica"
            )

    async def transcribe(self, task: SegmentTask) -> SegmentResult:
        """One segment in, its result out, as soon as the model batch it ran in is done.

        Batched with everything else waiting (`Batcher`): a replica holds up to
        `transcriber_max_ongoing_requests` segments, all visible to the next cut.
        """
        check_window([task])
        [result] = await self.batcher.submit([task])
        if result.batch is not None:  # one result per model batch carries its stats
            self.metrics.batch(result.batch)
        return result

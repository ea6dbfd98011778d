"""The Transcriber deployment: the model, batching segments across concurrent requests.

One replica holds one loaded SenseVoiceSmall (one GPU in production). The
model loads in the constructor, KServe style: a replica only counts as
running, and `status().ready` only turns true, once the weights are in memory.

Callers send one segment per call (`transcribe`); `@serve.batch` gathers the
segments of every request in flight into windows of up to
`max_batch_segments`, and `batches.run_window` cuts each window into model
batches under the frame budget. While one window runs, the next fills, so
under load the model always gets full batches. Batch limits and the wait come
from `user_config`, so a RayService can retune them without restarting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, cast

from ray import serve

from ..errors import ModelError
from ..factory import build_recognizer
from .batches import BatchLimits, check_window, run_window
from .context import configure_replica_logging
from .messages import ModelStatus, SegmentResult, SegmentTask
from .settings import load_serve_settings

log = logging.getLogger(__name__)


class _BatchKnobs(Protocol):
    """The setters `@serve.batch` attaches to the function it wraps."""

    def set_max_batch_size(self, size: int) -> None: ...
    def set_batch_wait_timeout_s(self, seconds: float) -> None: ...


@serve.deployment(name="Transcriber")
class Transcriber:
    def __init__(self, args: dict[str, Any]) -> None:
        configure_replica_logging()
        settings = load_serve_settings(args)
        self.ready = False
        self.limits = BatchLimits(settings.max_batch_segments, settings.batch_frames)
        self._waiting = 0
        # One model thread: batches run one after another, the event loop stays free
        # to queue the next window meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hark-model")
        started = time.perf_counter()
        self.model = build_recognizer(settings)
        self.load_seconds = time.perf_counter() - started
        self.reconfigure(settings.batching())
        self.ready = True
        log.info("Transcriber ready: %s in %.1fs", self.model.info.source, self.load_seconds)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply `user_config` (`ServeSettings.batching()`): batch bounds and wait."""
        self.limits = BatchLimits(
            int(config.get("max_batch_segments", self.limits.max_segments)),
            int(config.get("batch_frames", self.limits.frames)),
        )
        knobs = cast(_BatchKnobs, self._batched)
        knobs.set_max_batch_size(self.limits.max_segments)
        if "batch_wait_seconds" in config:
            knobs.set_batch_wait_timeout_s(float(config["batch_wait_seconds"]))

    def status(self) -> ModelStatus:
        return ModelStatus(self.ready, self.model.info, self.load_seconds)

    def check_health(self) -> None:
        if not self.ready:
            raise ModelError("the model is not loaded")

    async def transcribe(self, task: SegmentTask) -> SegmentResult:
        """One segment in, its result out; batched with everything else in flight."""
        check_window([task])
        self._waiting += 1
        try:
            return await self._batched(task)
        finally:
            self._waiting -= 1

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.02)
    async def _batched(self, tasks: list[SegmentTask]) -> list[SegmentResult]:
        """List in, list out: one `SegmentResult` per `SegmentTask`, in order."""
        queued = max(0, self._waiting - len(tasks))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, run_window, self.model, tasks, self.limits, queued
        )

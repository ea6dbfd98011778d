"""Running a window of segments (from many requests) through the model in bounded batches.

`@serve.batch` hands the Transcriber a window: every segment that arrived
while the previous window ran, up to `max_batch_segments`. The window is cut
longest first into model batches under the frame budget (`batching.take_batch`),
so a batch pads little and never exceeds either bound, and segments of one
request share batches with segments of others. Plain data in, plain data
out; no Ray here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..asr import DecodeRequest, Recognized
from ..batching import Sized, plan_batches
from .messages import BatchStats, SegmentResult, SegmentTask


class Model(Protocol):
    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]: ...


@dataclass(frozen=True)
class BatchLimits:
    max_segments: int = 64
    frames: int = 6000

    def __post_init__(self) -> None:
        if self.max_segments < 1 or self.frames < 1:
            raise ValueError(f"batch limits must be positive, got {self}")


def check_window(tasks: Sequence[object]) -> None:
    """Fail fast when the batch contract (a list of `SegmentTask`) is broken."""
    for task in tasks:
        if not isinstance(task, SegmentTask):
            raise TypeError(
                f"Transcriber.recognize takes one SegmentTask per call, got {type(task).__name__}"
            )


def run_window(
    model: Model, tasks: Sequence[SegmentTask], limits: BatchLimits, queued: int = 0
) -> list[SegmentResult]:
    """One result per task, in the order of `tasks`."""
    check_window(tasks)
    sized = [Sized(i, task.frames) for i, task in enumerate(tasks)]
    results: list[SegmentResult | None] = [None] * len(tasks)
    for batch in plan_batches(sized, limits.frames, limits.max_segments):
        started = time.perf_counter()
        outputs = model.recognize(
            [tasks[i].samples for i in batch], [tasks[i].request for i in batch]
        )
        elapsed = time.perf_counter() - started
        if len(outputs) != len(batch):
            raise RuntimeError(f"the model returned {len(outputs)} results for {len(batch)}")
        frames = [tasks[i].frames for i in batch]
        stats = BatchStats(
            segments=len(batch), frames=max(frames) * len(batch), seconds=elapsed, queued=queued
        )
        total = sum(frames)
        for n, (i, out) in enumerate(zip(batch, outputs, strict=True)):
            share = elapsed * frames[n] / total
            results[i] = SegmentResult(out, share, stats if n == 0 else None)
    return [r for r in results if r is not None]

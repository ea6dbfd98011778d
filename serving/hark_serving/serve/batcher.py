"""Cutting model batches from every segment waiting, at the moment the model frees up.

`@serve.batch` fixes a batch's members when the batch forms, not when the
model becomes free: with a slow model, windows formed during one forward pass
would queue up and run as many small batches. So the Transcriber's
`@serve.batch` windows only feed a `Batcher`: a pool of waiting segments from
which one model batch is cut each time the model is idle. A batch holds the
oldest waiting segment (so nothing waits forever) plus the segments closest
to it in length (so little is padding), bounded by the segment count and the
frame budget (`recognition.encoder_frames`, padding included). Segments of different
requests, with different options, share batches. Plain asyncio, no Ray here.

A forward pass that fails is run again one segment at a time, so only the
segment that breaks the model fails, not the unrelated files that shared its
batch. When passes keep failing for segments of several requests, the model
or its device is broken: `healthy` turns false, and the Transcriber's health
check takes the replica out of rotation.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hark_serving.engine.recognition import DecodeRequest, Recognized
from hark_serving.serve.messages import BatchStats, SegmentResult, SegmentTask


class Model(Protocol):
    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]: ...


# Padding a batch may hold, by device. A CPU computes every padded frame at full
# price, and a bigger batch pays mostly for short segments (batch 8 against 1,
# benchmarks/model_precision.py: float32 +73% at 3 s, +23% at 12 s, -16% at 25 s;
# bfloat16 +110%, +30%, +1%). So a CPU takes only segments of near-equal length:
# at 16 clients in bfloat16, 0.3 lost 9% and 0.5 lost 12% of 0.1's throughput.
# A GPU runs a batch's rows in parallel, so it trades some padding for fewer,
# fuller forward passes.
MAX_PADDING = {"cpu": 0.1, "cuda": 0.5}


def default_max_padding(device: str) -> float:
    return MAX_PADDING["cuda" if device.startswith("cuda") else "cpu"]


# Frame budget of one model batch on a CPU, unless `batch_frames` is set: 30 s of
# audio, padding included (500 frames of 60 ms). A CPU runs a batch's frames at the
# pace of one, so a bigger batch gains little (above) while every request in it
# waits for the whole pass: at the shared default of 6000 frames, 16 clients'
# 20 s clips ran as one pass of about 20 s, and every one of them got its answer
# at the end. At 500 a pass takes 1-3 s, short segments still batch up to ten at
# a time, a long segment runs alone, and the oldest request goes first, so a short
# request never waits behind more than one pass. A GPU keeps the shared budget.
CPU_BATCH_FRAMES = 500


def default_batch_frames(device: str, shared: int) -> int:
    """The frame budget of a batch on `device` when none was set (`shared`: the settings' default)."""
    return shared if device.startswith("cuda") else min(shared, CPU_BATCH_FRAMES)


@dataclass(frozen=True)
class BatchLimits:
    max_segments: int = 64
    frames: int = 6000
    # Largest share of a batch's frames that may be padding (1.0: no bound).
    max_padding: float = 1.0

    def __post_init__(self) -> None:
        if self.max_segments < 1 or self.frames < 1:
            raise ValueError(f"batch limits must be positive, got {self}")
        if not 0.0 <= self.max_padding <= 1.0:
            raise ValueError(f"max_padding must lie in [0, 1], got {self.max_padding}")


def check_window(tasks: Sequence[object]) -> None:
    """Fail fast when the batch contract (a list of `SegmentTask`) is broken."""
    for task in tasks:
        if not isinstance(task, SegmentTask):
            raise TypeError(
                f"Transcriber.transcribe takes one SegmentTask per call, got {type(task).__name__}"
            )


@dataclass
class Waiting:
    task: SegmentTask
    frames: int
    order: int
    future: asyncio.Future[SegmentResult] = field(repr=False)

    @property
    def rank(self) -> tuple[float, int, int]:
        """Who goes first: the earliest request, its segments in order, then arrival."""
        return (self.task.since, self.task.index, self.order)


def cut_batch(pool: Sequence[Waiting], limits: BatchLimits) -> list[Waiting]:
    """The first segment (by `Waiting.rank`) plus those nearest it in length, within every bound.

    A segment over the frame budget on its own still runs, alone: the budget
    bounds padding and memory, it never refuses work. A segment that would make
    more than `max_padding` of the batch padding waits for a batch of its own length.
    """
    if not pool:
        return []
    oldest = min(pool, key=lambda w: w.rank)
    batch = [oldest]
    longest = real = oldest.frames
    others = sorted(
        (w for w in pool if w is not oldest), key=lambda w: (abs(w.frames - oldest.frames), w.rank)
    )
    for w in others:
        if len(batch) == limits.max_segments:
            break
        widest = max(longest, w.frames)
        padded = widest * (len(batch) + 1)
        if padded <= limits.frames and padded - real - w.frames <= limits.max_padding * padded:
            batch.append(w)
            longest, real = widest, real + w.frames
    return batch


def run_batch(model: Model, tasks: Sequence[SegmentTask], queued: int) -> list[SegmentResult]:
    """One forward pass; each result carries its share of the time, the first the stats."""
    started = time.perf_counter()
    outputs = model.recognize([t.samples for t in tasks], [t.request for t in tasks])
    elapsed = time.perf_counter() - started
    if len(outputs) != len(tasks):
        raise RuntimeError(f"the model returned {len(outputs)} results for {len(tasks)}")
    frames = [t.frames for t in tasks]
    total = sum(frames)
    padded = max(frames) * len(tasks)
    stats = BatchStats(len(tasks), padded, elapsed, queued, padding=padded - total)
    return [
        SegmentResult(out, elapsed * f / total, stats if i == 0 else None)
        for i, (out, f) in enumerate(zip(outputs, frames, strict=True))
    ]


# Forward passes failing in a row, over segments of at least two requests, that mark
# the model or its device as broken (one bad file alone never does).
BROKEN_AFTER = 6


class Batcher:
    """Segments wait in a pool; one loop runs the model on batches cut from it."""

    def __init__(self, model: Model, limits: BatchLimits, executor: Executor) -> None:
        self.model = model
        self.limits = limits
        self.executor = executor
        self.failed_in_a_row = 0
        self._failed_requests: set[float] = set()  # `since` of the requests in that streak
        self._pool: list[Waiting] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._pool)

    @property
    def healthy(self) -> bool:
        return not (self.failed_in_a_row >= BROKEN_AFTER and len(self._failed_requests) >= 2)

    def _passed(self, ok: bool, tasks: Sequence[SegmentTask]) -> None:
        if ok:
            self.failed_in_a_row = 0
            self._failed_requests.clear()
        else:
            self.failed_in_a_row += 1
            self._failed_requests.update(t.since for t in tasks)

    async def _run(self, live: Sequence[Waiting]) -> None:
        """One forward pass for `live`; on failure, each segment again on its own."""
        loop = asyncio.get_running_loop()
        tasks = [w.task for w in live]
        try:
            results = await loop.run_in_executor(
                self.executor, run_batch, self.model, tasks, len(self._pool)
            )
        except Exception as exc:  # the batch fails; the loop and the others go on
            self._passed(False, tasks)
            if len(live) == 1:
                if not live[0].future.done():
                    live[0].future.set_exception(exc)
                return
            for w in live:  # find the culprit: the others get their results
                await self._run([w])
            return
        self._passed(True, tasks)
        for w, result in zip(live, results, strict=True):
            if not w.future.done():
                w.future.set_result(result)

    async def submit(self, tasks: Sequence[SegmentTask]) -> list[SegmentResult]:
        """Results for `tasks`, in order, once the model has run each of them."""
        check_window(tasks)
        loop = asyncio.get_running_loop()
        entries = [Waiting(t, t.frames, next(self._counter), loop.create_future()) for t in tasks]
        self._pool.extend(entries)
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._run_forever())
        return list(await asyncio.gather(*(e.future for e in entries)))

    async def _run_forever(self) -> None:
        while True:
            if not self._pool:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = cut_batch(self._pool, self.limits)
            chosen = {id(w) for w in batch}
            self._pool = [w for w in self._pool if id(w) not in chosen]
            live = [w for w in batch if not w.future.done()]  # callers that gave up
            if not live:
                continue
            await self._run(live)

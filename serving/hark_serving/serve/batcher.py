"""Cutting model batches from every segment waiting, at the moment the model frees up.

The Transcriber hands each segment to a `Batcher`: a pool of waiting segments
from which a model batch is cut each time a lane of the model is free (one
lane, or two on a CPU in int8: `default_lanes`), after a short `wait` for
segments that arrive together when the model was idle. Each segment's caller
gets its result as soon as its own batch is done. (Serve's `@serve.batch`
fixes a batch's members when it forms, not when the model frees up, and
answers a window's callers all at once: behind it, segments that happened to
arrive within one window waited for each other's batches.) A batch holds the
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
import contextlib
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

# Forward passes a CPU replica runs at once in int8 (the CPU default), each on half
# the replica's threads while both run, all of them alone. One pass on two threads
# stops at OpenMP's barrier in every layer whenever the OS lends a core to decode,
# VAD or Ray's own processes; two passes on one thread each keep both cores busy.
# `hark serve` on a 2-core x86, 16 clients: 22-27 against 17-19 audio-s/s
# (docs/precision.md).
# float32 keeps one pass: its sums, and so its transcripts, must not depend on how
# many threads a pass got. A GPU runs one pass at a time.
CPU_LANES = 2


def default_lanes(device: str, precision: str, threads: int) -> int:
    """Forward passes at once for a replica with this device, precision and thread count."""
    if device.startswith("cuda") or precision != "int8":
        return 1
    return max(1, min(CPU_LANES, threads))


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
    """Fail fast when the Transcriber contract (`SegmentTask`s) is broken."""
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
    arrived: float = 0.0  # the event loop's clock when it joined the pool

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
    """Segments wait in a pool; one loop cuts batches from it, `lanes` running at once."""

    def __init__(
        self,
        model: Model,
        limits: BatchLimits,
        executor: Executor,
        lanes: int = 1,
        wait: float = 0.0,
    ) -> None:
        """`lanes`: forward passes at once (the model and the executor must allow as many);
        `wait`: how long a free lane waits for more segments before it cuts a batch."""
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.model = model
        self.limits = limits
        self.executor = executor
        self.lanes = lanes
        self.wait = wait
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
        now = loop.time()
        entries = [
            Waiting(t, t.frames, next(self._counter), loop.create_future(), now) for t in tasks
        ]
        self._pool.extend(entries)
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._run_forever())
        return list(await asyncio.gather(*(e.future for e in entries)))

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            self._wake.set()  # a lane is free: cut the next batch

        while True:
            if not self._pool or len(running) >= self.lanes:
                self._wake.clear()
                await self._wake.wait()
                continue
            # An idle lane gives segments that arrive together `wait` to meet; a busy
            # model has kept them waiting longer than that already.
            held = self.wait - (loop.time() - min(w.arrived for w in self._pool))
            if held > 0 and len(self._pool) < self.limits.max_segments:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), held)
                continue
            # Cut only when a lane is free, from everything waiting at that moment.
            batch = cut_batch(self._pool, self.limits)
            chosen = {id(w) for w in batch}
            self._pool = [w for w in self._pool if id(w) not in chosen]
            live = [w for w in batch if not w.future.done()]  # callers that gave up
            if not live:
                continue
            task = loop.create_task(self._run(live))
            running.add(task)
            task.add_done_callback(finished)

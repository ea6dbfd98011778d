"""Model batches are cut from everything waiting: bounded, fair, in order for each caller."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hark_serving.engine.recognition import DecodeRequest, Recognized, encoder_frames
from hark_serving.serve.batcher import (
    Batcher,
    BatchLimits,
    Waiting,
    check_window,
    cut_batch,
    default_batch_frames,
    default_lanes,
    default_max_padding,
    run_batch,
)
from hark_serving.serve.messages import SegmentResult, SegmentTask


class CountingModel:
    """Echoes each wave's length and language; remembers the batches it was given.

    `gate`, when set, holds the first batch until released, as a slow model would.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        if self.gate is not None and not self.batches:
            self.gate.wait(10)
        self.batches.append([len(w) for w in waves])
        return [Recognized(f"{r.language}:{len(w)}") for w, r in zip(waves, requests, strict=True)]


def task(seconds: float, language: str = "auto") -> SegmentTask:
    return SegmentTask(np.zeros(int(seconds * 16000), np.float32), DecodeRequest(language))


def waiting(seconds: list[float]) -> list[Waiting]:
    loop = asyncio.new_event_loop()
    try:
        return [
            Waiting(task(s), task(s).frames, i, loop.create_future()) for i, s in enumerate(seconds)
        ]
    finally:
        loop.close()


def test_a_batch_starts_from_the_oldest_and_adds_the_nearest_lengths() -> None:
    pool = waiting([10, 1, 9.5, 2, 10.5, 1])
    batch = cut_batch(pool, BatchLimits(max_segments=3))
    assert [w.order for w in batch] == [0, 2, 4]


def test_a_batch_respects_the_segment_count_and_the_frame_budget() -> None:
    pool = waiting([1, 1, 1, 1, 1, 10, 10, 10])
    limits = BatchLimits(max_segments=3, frames=2 * encoder_frames(160000))
    batch = cut_batch(pool, limits)
    assert len(batch) == 3
    assert max(w.frames for w in batch) * len(batch) <= limits.frames
    # Around a long oldest segment, only what fits the budget joins it.
    long_first = waiting([10, 10, 10, 1])
    assert [w.order for w in cut_batch(long_first, limits)] == [0, 1]


def test_a_batch_holds_no_more_padding_than_allowed() -> None:
    pool = waiting([10, 9.5, 9, 5, 10.2])
    # 10% padding at most: 10.2, 9.5 and 9 s join 10 s (5% padding); 5 s would make it 14%.
    tight = cut_batch(pool, BatchLimits(max_padding=0.1))
    assert [w.order for w in tight] == [0, 4, 1, 2]
    frames = [w.frames for w in tight]
    assert max(frames) * len(frames) - sum(frames) <= 0.1 * max(frames) * len(frames)
    # Unbounded, the nearest lengths all join.
    assert len(cut_batch(pool, BatchLimits())) == 5
    # No padding at all: only equal lengths share a batch.
    assert [w.order for w in cut_batch(waiting([3, 4, 3, 3]), BatchLimits(max_padding=0))] == [
        0,
        2,
        3,
    ]


def test_the_padding_bound_follows_the_device() -> None:
    assert default_max_padding("cpu") == 0.1
    assert default_max_padding("cuda:0") == 0.5
    with pytest.raises(ValueError, match="max_padding"):
        BatchLimits(max_padding=1.5)


def test_the_frame_budget_follows_the_device_when_unset() -> None:
    assert default_batch_frames("cpu", 6000) == 500
    assert default_batch_frames("cpu", 300) == 300
    assert default_batch_frames("cuda:0", 6000) == 6000


def test_on_a_cpu_long_segments_run_alone_oldest_first_and_short_ones_still_share() -> None:
    cpu = BatchLimits(frames=default_batch_frames("cpu", 6000), max_padding=0.1)
    # 16 clients' 20 s clips: one pass each, in arrival order, so the first answer comes
    # after one pass, not after all sixteen.
    clips = waiting([20] * 16)
    order = []
    while clips:
        batch = cut_batch(clips, cpu)
        order.append([w.order for w in batch])
        taken = {w.order for w in batch}
        clips = [w for w in clips if w.order not in taken]
    assert order == [[i] for i in range(16)]
    # 3 s segments still share a pass, up to the budget.
    short = cut_batch(waiting([3] * 16), cpu)
    assert len(short) == 500 // encoder_frames(3 * 16000) == 9


def test_the_earliest_request_goes_first_whatever_reached_the_transcriber_first() -> None:
    loop = asyncio.new_event_loop()
    try:
        samples = np.zeros(10 * 16000, np.float32)

        def segment(since: float, index: int, order: int) -> Waiting:
            t = SegmentTask(samples, DecodeRequest(), since, index)
            return Waiting(t, t.frames, order, loop.create_future())

        # Arrival order: a later request's segment, then the earlier request's two.
        pool = [segment(200.0, 0, 0), segment(100.0, 1, 1), segment(100.0, 0, 2)]
    finally:
        loop.close()
    batch = cut_batch(pool, BatchLimits(max_segments=2))
    assert [(w.task.since, w.task.index) for w in batch] == [(100.0, 0), (100.0, 1)]


def test_a_segment_over_the_budget_still_runs_alone() -> None:
    assert [w.order for w in cut_batch(waiting([30, 1]), BatchLimits(frames=100))] == [0]
    assert cut_batch([], BatchLimits()) == []


def test_each_batch_reports_its_stats_once_and_shares_its_time_by_frames() -> None:
    tasks = [task(1), task(3), task(2)]
    results = run_batch(CountingModel(), tasks, queued=7)
    assert [r.recognized.raw for r in results] == ["auto:16000", "auto:48000", "auto:32000"]
    assert results[0].batch is not None and results[1].batch is None
    assert results[0].batch.segments == 3 and results[0].batch.queued == 7
    assert results[0].batch.frames == 3 * encoder_frames(48000)
    real = encoder_frames(16000) + encoder_frames(48000) + encoder_frames(32000)
    assert results[0].batch.padding == results[0].batch.frames - real
    assert sum(r.seconds for r in results) == pytest.approx(results[0].batch.seconds)


def test_segments_that_wait_while_the_model_runs_share_the_next_batch() -> None:
    gate = threading.Event()
    model = CountingModel(gate)

    async def scenario() -> list[list[SegmentResult]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, BatchLimits(), pool)
            first = asyncio.create_task(batcher.submit([task(1, "en")]))
            await asyncio.sleep(0.05)  # the model is now busy with the first window
            rest = [
                asyncio.create_task(batcher.submit([task(2, "zh"), task(3, "ja")])),
                asyncio.create_task(batcher.submit([task(4, "ko")])),
            ]
            await asyncio.sleep(0.05)
            assert batcher.waiting == 3
            gate.set()
            return [await first, *[await r for r in rest]]

    results = asyncio.run(scenario())
    assert model.batches == [[16000], [32000, 48000, 64000]]
    raws = [[r.recognized.raw for r in rs] for rs in results]
    assert raws == [["en:16000"], ["zh:32000", "ja:48000"], ["ko:64000"]]


def test_a_failing_batch_fails_its_callers_and_the_batcher_goes_on() -> None:
    class Flaky(CountingModel):
        def recognize(
            self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
        ) -> list[Recognized]:
            if len(waves[0]) == 16000:
                raise RuntimeError("boom")
            return super().recognize(waves, requests)

    async def scenario() -> list[SegmentResult]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(Flaky(), BatchLimits(), pool)
            with pytest.raises(RuntimeError, match="boom"):
                await batcher.submit([task(1)])
            return await batcher.submit([task(2)])

    assert asyncio.run(scenario())[0].recognized.raw == "auto:32000"


class Poisoned(CountingModel):
    """A forward pass fails whenever a segment of exactly 3 s is in it."""

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        if any(len(w) == 48000 for w in waves):
            self.batches.append([-1])
            raise RuntimeError("CUDA error: an illegal memory access")
        return super().recognize(waves, requests)


def test_a_failing_batch_is_retried_per_segment_so_only_the_culprit_fails() -> None:
    model = Poisoned()

    async def scenario() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, BatchLimits(), pool)
            calls = [
                batcher.submit([SegmentTask(task(s).samples, DecodeRequest("en"), since=i)])
                for i, s in enumerate([1, 2, 3, 4])
            ]
            out = await asyncio.gather(*calls, return_exceptions=True)
            assert batcher.healthy
            return out

    out = asyncio.run(scenario())
    assert isinstance(out[2], RuntimeError)
    assert [r[0].recognized.raw for r in (out[0], out[1], out[3])] == [  # type: ignore[index]
        "en:16000",
        "en:32000",
        "en:64000",
    ]
    # One pass for all four, which failed; then each segment alone.
    assert model.batches[0] == [-1] and len(model.batches) == 5


def test_a_model_that_fails_for_every_request_marks_the_replica_unhealthy() -> None:
    class Broken(CountingModel):
        def recognize(
            self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
        ) -> list[Recognized]:
            raise RuntimeError("CUDA error: device-side assert triggered")

    async def one_bad_file(batcher: Batcher) -> None:
        for _ in range(10):  # many segments of one request: the file, not the model
            with pytest.raises(RuntimeError):
                await batcher.submit([SegmentTask(task(1).samples, DecodeRequest("en"), since=7)])

    async def scenario() -> tuple[bool, bool]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(Broken(), BatchLimits(), pool)
            await one_bad_file(batcher)
            alone = batcher.healthy
            for i in range(6):
                with pytest.raises(RuntimeError):
                    await batcher.submit(
                        [SegmentTask(task(2).samples, DecodeRequest("en"), since=100 + i)]
                    )
            return alone, batcher.healthy

    assert asyncio.run(scenario()) == (True, False)


def test_misuse_fails_fast() -> None:
    with pytest.raises(TypeError, match="SegmentTask"):
        check_window([np.zeros(10)])
    with pytest.raises(ValueError):
        BatchLimits(max_segments=0)


class MeetingModel(CountingModel):
    """Returns only once `lanes` calls are inside at the same time (or fails after 10 s)."""

    def __init__(self, lanes: int) -> None:
        super().__init__()
        self.meeting = threading.Barrier(lanes, timeout=10)

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        self.meeting.wait()
        return super().recognize(waves, requests)


def test_two_lanes_run_two_batches_at_once_and_each_caller_gets_its_own_batch() -> None:
    model = MeetingModel(2)
    limits = BatchLimits(max_segments=1)

    async def scenario() -> list[list[SegmentResult]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, limits, pool, lanes=2)
            return list(
                await asyncio.gather(
                    batcher.submit([task(1, "en")]), batcher.submit([task(2, "zh")])
                )
            )

    results = asyncio.run(scenario())
    assert sorted(model.batches) == [[16000], [32000]]
    assert [[r.recognized.raw for r in rs] for rs in results] == [["en:16000"], ["zh:32000"]]


def test_a_free_lane_waits_for_segments_that_arrive_together() -> None:
    model = CountingModel()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, BatchLimits(), pool, wait=2.0)
            first = asyncio.create_task(batcher.submit([task(1, "en")]))
            await asyncio.sleep(0.05)  # well inside the wait: the model has not run yet
            assert model.batches == [] and batcher.waiting == 1
            await asyncio.gather(first, batcher.submit([task(1, "zh")]))

    asyncio.run(scenario())
    assert model.batches == [[16000, 16000]]


def test_a_full_batch_runs_without_waiting_out_the_wait() -> None:
    model = CountingModel()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, BatchLimits(max_segments=2), pool, wait=60.0)
            await asyncio.wait_for(
                asyncio.gather(batcher.submit([task(1, "en")]), batcher.submit([task(1, "zh")])),
                timeout=30,
            )

    asyncio.run(scenario())
    assert model.batches == [[16000, 16000]]


@pytest.mark.parametrize(
    ("device", "precision", "threads", "lanes"),
    [
        ("cpu", "int8", 2, 2),
        ("cpu", "int8", 16, 2),
        ("cpu", "int8", 1, 1),
        ("cpu", "float32", 2, 1),  # its sums must not depend on a pass's thread count
        ("cuda", "float16", 8, 1),
    ],
)
def test_two_lanes_only_for_int8_on_a_cpu(
    device: str, precision: str, threads: int, lanes: int
) -> None:
    assert default_lanes(device, precision, threads) == lanes


def test_lanes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lanes"), ThreadPoolExecutor(1) as pool:
        Batcher(CountingModel(), BatchLimits(), pool, lanes=0)

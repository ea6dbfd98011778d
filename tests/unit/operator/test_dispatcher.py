"""The dispatcher: bounds, priorities, fairness, retries, single-flight, suspension."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from hark_operator.errors import ProcessorUnavailable
from hark_operator.jobs.dispatcher import Dispatcher, RetryPolicy
from hark_operator.jobs.work import Outcome, WorkItem
from hark_serving.runs.itemspec import ItemRequest, ItemResult

from .fakes import FakeStore, FakeWorker

T = TypeVar("T")
FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.0, attempts=None)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


def item(job: str, n: int) -> WorkItem:
    src = f"s3://in-b/{job}/{n:03d}.mp3"
    req = ItemRequest(input_uri=src, output_uri=f"s3://out-b/{job}/{n:03d}.mp3", job=job)
    return WorkItem(key=req.output_uri, request=req)


def populated(n: int = 0, jobs: tuple[str, ...] = ("a", "b")) -> tuple[FakeStore, FakeWorker]:
    store = FakeStore()
    for job in jobs:
        for i in range(n):
            store.put(f"s3://in-b/{job}/{i:03d}.mp3")
    return store, FakeWorker(store)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    async def record(self, job: str, item: WorkItem, result: ItemResult, attempts: int) -> None:
        self.calls.append((job, item.key, attempts))


def test_parallelism_and_the_global_bound_hold() -> None:
    async def main() -> None:
        _, worker = populated(12)
        worker.delay = 0.02
        d = Dispatcher(worker, max_in_flight=5, item_timeout=5, backoff=FAST)
        outcomes: list[Outcome] = []
        d.register("a", parallelism=3, sink=outcomes.append)
        d.register("b", parallelism=4, sink=outcomes.append)
        d.start()
        for i in range(12):
            assert await d.submit("a", item("a", i))
            assert await d.submit("b", item("b", i))
        await d.idle("a")
        await d.idle("b")
        await d.close()
        assert len(outcomes) == 24 and all(o.result.status == "succeeded" for o in outcomes)
        assert worker.peak["a"] == 3 and worker.peak["b"] <= 4
        assert worker.peak_total == 5

    run(main())


def test_higher_priority_goes_first() -> None:
    async def main() -> None:
        _, worker = populated(5)
        d = Dispatcher(worker, max_in_flight=1, item_timeout=5, backoff=FAST)
        d.register("a", priority=0, parallelism=5, sink=lambda o: None)
        d.register("b", priority=10, parallelism=5, sink=lambda o: None)
        for i in range(5):
            await d.submit("a", item("a", i))
        for i in range(5):
            await d.submit("b", item("b", i))
        d.start()
        await d.idle("a")
        await d.close()
        assert [r.job for r in worker.calls] == ["b"] * 5 + ["a"] * 5

    run(main())


def test_equal_priorities_take_turns() -> None:
    async def main() -> None:
        _, worker = populated(4, jobs=("a", "b", "c"))
        d = Dispatcher(worker, max_in_flight=1, item_timeout=5, backoff=FAST)
        for job in "abc":
            d.register(job, parallelism=4, sink=lambda o: None)
        for i in range(4):  # a big job queued first must not starve the others
            await d.submit("a", item("a", i))
        for i in range(2):
            await d.submit("b", item("b", i))
            await d.submit("c", item("c", i))
        d.start()
        for job in "abc":
            await d.idle(job)
        await d.close()
        order = "".join(r.job or "" for r in worker.calls)
        assert order[:6] in ("abcabc", "acbacb")
        assert order[6:] == "aa"

    run(main())


def test_outages_are_retried_without_spending_attempts() -> None:
    async def main() -> None:
        _, worker = populated(1, jobs=("a",))
        it = item("a", 0)
        worker.flaky[it.request.input_uri] = 4  # storage_unavailable: not the file's fault
        worker.unreachable[it.request.input_uri] = 1
        recorder = Recorder()
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=2, item_timeout=5, backoff=FAST, recorder=recorder)
        d.register("a", parallelism=1, max_attempts=2, sink=outcomes.append)
        d.start()
        await d.submit("a", it)
        await d.idle("a")
        await d.close()
        assert [r.attempt for r in worker.calls] == [1] * 6
        assert recorder.calls == []
        assert len(outcomes) == 1 and outcomes[0].result.status == "succeeded"

    run(main())


def test_failures_the_input_may_cause_are_retried_then_succeed() -> None:
    async def main() -> None:
        _, worker = populated(1, jobs=("a",))
        it = item("a", 0)
        worker.crashes[it.request.input_uri] = 2
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=2, item_timeout=5, backoff=FAST)
        d.register("a", parallelism=1, max_attempts=3, sink=outcomes.append)
        d.start()
        await d.submit("a", it)
        await d.idle("a")
        await d.close()
        assert [r.attempt for r in worker.calls] == [1, 2, 3]
        assert len(outcomes) == 1 and outcomes[0].result.status == "succeeded"
        assert outcomes[0].attempts == 3

    run(main())


def test_max_attempts_then_the_failure_is_recorded_once() -> None:
    async def main() -> None:
        _, worker = populated(1, jobs=("a",))
        it = item("a", 0)
        worker.crashes[it.request.input_uri] = 10
        recorder = Recorder()
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=2, item_timeout=5, backoff=FAST, recorder=recorder)
        d.register("a", parallelism=1, max_attempts=2, sink=outcomes.append)
        d.start()
        await d.submit("a", it)
        await d.idle("a")
        await d.close()
        assert len(worker.calls) == 2
        assert recorder.calls == [("a", it.key, 2)]
        assert [o.result.status for o in outcomes] == ["failed"]

    run(main())


def test_an_unreachable_processor_pauses_every_job_then_one_probe_resumes() -> None:
    async def main() -> None:
        _, worker = populated(4)
        worker.down = 3  # the first try and two probes find nobody
        recorder = Recorder()
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=1, item_timeout=5, backoff=FAST, recorder=recorder)
        d.register("a", parallelism=1, max_attempts=1, sink=outcomes.append)
        d.register("b", parallelism=1, max_attempts=1, sink=outcomes.append)
        for i in range(4):
            await d.submit("a", item("a", i))
            await d.submit("b", item("b", i))
        d.start()
        await d.idle("a")
        await d.idle("b")
        await d.close()
        # Three calls found no processor, then all eight items went through once each.
        assert len(worker.calls) == 3 + 8
        assert sorted(o.result.status for o in outcomes) == ["succeeded"] * 8
        assert recorder.calls == [] and all(r.attempt == 1 for r in worker.calls)
        assert d.processor_state().available and d.gate.changes == 2

    run(main())


class AppLostWorker(FakeWorker):
    """Its first `lost` calls are never answered, as Ray's proxy leaves a request that
    waited for an app deleted meanwhile; `deployed()` says whether an app is there."""

    def __init__(self, worker: FakeWorker, lost: int, there: bool | None) -> None:
        super().__init__(worker.store)
        self.lost, self.there = lost, there
        self.asked = self.cancelled = 0

    async def process(self, req: ItemRequest) -> ItemResult:
        if self.lost > 0:
            self.lost -= 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return await super().process(req)

    async def deployed(self) -> bool:
        self.asked += 1
        if self.there is None:
            raise ProcessorUnavailable("/healthz: connection reset")  # no verdict
        return self.there


def test_tries_lost_with_a_deleted_app_go_back_to_the_queue_attempts_unspent() -> None:
    async def main() -> None:
        _, plain = populated(4, jobs=("a",))
        worker = AppLostWorker(plain, lost=2, there=False)
        recorder = Recorder()
        outcomes: list[Outcome] = []
        d = Dispatcher(
            worker, max_in_flight=4, item_timeout=60, backoff=FAST, recorder=recorder,
            stall_check=0.05,
        )  # fmt: skip
        d.register("a", parallelism=2, max_attempts=1, sink=outcomes.append)
        for i in range(4):
            await d.submit("a", item("a", i))
        d.start()
        await d.idle("a")
        await d.close()
        # Both slots were held by lost tries; the stall check freed them, the gate
        # paused, and every file went through once, on its first attempt.
        assert worker.cancelled == 2 and worker.asked >= 1
        assert sorted(o.result.status for o in outcomes) == ["succeeded"] * 4
        assert recorder.calls == [] and all(r.attempt == 1 for r in worker.calls)
        assert d.gate.changes == 2  # paused, then resumed by a probe

    run(main())


@pytest.mark.parametrize("there", [True, None], ids=["app-there", "no-verdict"])
def test_slow_tries_are_not_taken_for_lost_ones(there: bool | None) -> None:
    async def main() -> None:
        _, plain = populated(2, jobs=("a",))
        worker = AppLostWorker(plain, lost=0, there=there)
        worker.delay = 0.5  # ten stall checks without an answer
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=2, item_timeout=60, backoff=FAST, stall_check=0.05)
        d.register("a", parallelism=2, sink=outcomes.append)
        for i in range(2):
            await d.submit("a", item("a", i))
        d.start()
        await d.idle("a")
        await d.close()
        assert worker.asked >= 2 and worker.cancelled == 0 and len(worker.calls) == 2
        assert [o.result.status for o in outcomes] == ["succeeded"] * 2
        assert d.gate.changes == 0

    run(main())


def test_while_paused_only_the_probe_goes_out() -> None:
    async def main() -> None:
        _, worker = populated(6, jobs=("a",))
        worker.down = 1_000_000
        d = Dispatcher(worker, max_in_flight=4, item_timeout=5, backoff=FAST)
        d.register("a", parallelism=4, max_attempts=1, sink=lambda o: None)
        for i in range(6):
            await d.submit("a", item("a", i))
        d.start()
        while len(worker.calls) < 12:
            await asyncio.sleep(0.01)
        state = d.processor_state()
        assert not state.available and state.reason == "ProcessorUnreachable"
        # After the first wave (up to max_in_flight at once), one probe at a time.
        assert worker.peak_total <= 4
        assert d.load("a").open == 6  # nothing was given up
        worker.down = 0
        await d.idle("a")
        await d.close()
        assert d.processor_state().available

    run(main())


def test_permanent_failures_are_not_retried() -> None:
    async def main() -> None:
        store, worker = populated(0, jobs=("a",))
        store.put("s3://in-b/a/000.mp3", b"broken")
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=2, item_timeout=5, backoff=FAST, recorder=Recorder())
        d.register("a", parallelism=1, max_attempts=5, sink=outcomes.append)
        d.start()
        await d.submit("a", item("a", 0))
        await d.idle("a")
        await d.close()
        assert len(worker.calls) == 1
        assert outcomes[0].result.error is not None
        assert outcomes[0].result.error.code == "corrupt_audio"

    run(main())


def test_a_timeout_counts_as_an_attempt_only_while_other_files_finish() -> None:
    async def main() -> None:
        store, worker = populated(0, jobs=("a",))
        store.put("s3://in-b/a/000.mp3")
        store.put("s3://in-b/a/001.mp3")
        slow = "s3://in-b/a/000.mp3"

        class Slow:
            def __init__(self) -> None:
                self.calls: list[ItemRequest] = []

            async def process(self, req: ItemRequest) -> ItemResult:
                self.calls.append(req)
                if req.input_uri == slow:
                    await asyncio.sleep(10)
                return await worker.process(req)

            async def ready(self) -> bool:
                return True  # the pool is up: the file is what takes too long

            async def aclose(self) -> None:
                pass

        proc = Slow()
        outcomes: list[Outcome] = []
        d = Dispatcher(proc, max_in_flight=2, item_timeout=0.2, backoff=FAST, recorder=Recorder())
        d.register("a", parallelism=2, max_attempts=2, sink=outcomes.append)
        d.start()
        await d.submit("a", item("a", 0))
        await d.submit("a", item("a", 1))
        await d.idle("a")
        await d.close()
        failed = [o for o in outcomes if o.result.status == "failed"]
        assert len(failed) == 1 and failed[0].attempts == 2
        assert failed[0].result.error is not None and failed[0].result.error.code == "timeout"

    run(main())


def test_a_timeout_while_the_pool_is_not_ready_keeps_the_file_pending() -> None:
    async def main() -> None:
        _, worker = populated(1, jobs=("a",))
        worker.hang = asyncio.Event()

        async def ready() -> bool:
            return False  # /readyz: no Transcriber yet

        worker.ready = ready  # type: ignore[attr-defined]
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=1, item_timeout=0.05, backoff=FAST)
        d.register("a", parallelism=1, max_attempts=1, sink=outcomes.append)
        d.start()
        await d.submit("a", item("a", 0))
        while len(worker.calls) < 4:  # the pool is scaling up: every try times out
            await asyncio.sleep(0.01)
        assert outcomes == [] and d.environment_trouble("a") is not None
        worker.hang.set()
        await d.idle("a")
        await d.close()
        assert [o.result.status for o in outcomes] == ["succeeded"]
        assert {r.attempt for r in worker.calls} == {1}

    run(main())


def test_an_item_key_is_never_in_flight_twice() -> None:
    async def main() -> None:
        _, worker = populated(3)
        worker.delay = 0.02
        d = Dispatcher(worker, max_in_flight=8, item_timeout=5, backoff=FAST)
        d.register("a", parallelism=8, sink=lambda o: None)
        d.register("b", parallelism=8, sink=lambda o: None)
        d.start()
        assert await d.submit("a", item("a", 0))
        assert not await d.submit("a", item("a", 0))  # queued or running: refused
        shared = WorkItem(key=item("a", 0).key, request=item("a", 0).request)
        assert not await d.submit("b", shared)  # even from another job
        assert d.busy(shared.key)
        await d.idle("a")
        assert not d.busy(shared.key)
        assert await d.submit("a", item("a", 0))  # free again once finished
        await d.idle("a")
        await d.close()
        assert worker.overlaps == 0 and len(worker.calls) == 2

    run(main())


def test_suspended_jobs_start_nothing_and_resume() -> None:
    async def main() -> None:
        _, worker = populated(3, jobs=("a",))
        d = Dispatcher(worker, max_in_flight=4, item_timeout=5, backoff=FAST)
        d.register("a", parallelism=4, sink=lambda o: None)
        d.configure("a", suspended=True)
        d.start()
        for i in range(3):
            await d.submit("a", item("a", i))
        assert not await d.idle("a", timeout=0.1)
        assert worker.calls == [] and d.load("a").queued == 3
        d.configure("a", suspended=False)
        assert await d.idle("a", timeout=5)
        await d.close()
        assert len(worker.calls) == 3

    run(main())


def test_unregister_cancels_running_items_and_frees_their_keys() -> None:
    async def main() -> None:
        _, worker = populated(4, jobs=("a",))
        worker.hang = asyncio.Event()
        outcomes: list[Outcome] = []
        d = Dispatcher(worker, max_in_flight=2, item_timeout=5, backoff=FAST)
        d.register("a", parallelism=2, sink=outcomes.append)
        d.start()
        for i in range(4):
            await d.submit("a", item("a", i))
        while d.running < 2:
            await asyncio.sleep(0.01)
        await d.unregister("a")
        assert d.running == 0 and not any(d.busy(item("a", i).key) for i in range(4))
        assert outcomes == []
        await d.close()

    run(main())


def test_submit_waits_while_the_queue_is_full() -> None:
    async def main() -> None:
        _, worker = populated(6, jobs=("a",))
        worker.hang = asyncio.Event()
        d = Dispatcher(worker, max_in_flight=1, item_timeout=5, backoff=FAST)
        d.register("a", parallelism=1, sink=lambda o: None, queue_limit=2)
        d.start()
        for i in range(3):  # one running, two queued
            await d.submit("a", item("a", i))
            await asyncio.sleep(0.01)
        blocked = asyncio.create_task(d.submit("a", item("a", 3)))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        worker.hang.set()
        assert await asyncio.wait_for(blocked, 5)
        await d.idle("a")
        await d.close()

    run(main())


def test_the_oldest_open_item_ages_until_it_is_done() -> None:
    from prometheus_client import REGISTRY

    async def main() -> None:
        _, worker = populated(2, jobs=("aged",))
        now = [100.0]
        d = Dispatcher(worker, max_in_flight=1, item_timeout=5, backoff=FAST, clock=lambda: now[0])
        d.register("aged", parallelism=1, sink=lambda o: None)
        taken_on = REGISTRY.get_sample_value(
            "hark_operator_job_last_progress_timestamp_seconds", {"job": "aged"}
        )
        assert taken_on is not None  # a job that never finishes an item counts from here
        assert d.oldest_open_seconds("aged") == 0.0
        await d.submit("aged", item("aged", 0))
        now[0] = 130.0
        await d.submit("aged", item("aged", 1))
        now[0] = 190.0
        assert d.oldest_open_seconds("aged") == 90.0  # the first, not the latest
        d.start()
        await d.idle("aged")
        await d.close()
        assert d.oldest_open_seconds("aged") == 0.0
        progressed = REGISTRY.get_sample_value(
            "hark_operator_job_last_progress_timestamp_seconds", {"job": "aged"}
        )
        assert progressed is not None and progressed >= taken_on
        assert d.oldest_open_seconds("never-registered") == 0.0

    run(main())

"""Items processed in this process: the embedded mode of `hark run` (and an operator
with `HARK_PROCESSOR=inprocess`).

The same code as a Serve worker runs each item (`hark_serving.runs.items.run_item`):
download, decode and VAD on worker threads in parallel, the model one batch
at a time under a lock, outputs written whole. The engine's modules (torch,
funasr) are imported when the first item arrives, never at import time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from hark_serving.runs.itemspec import ItemRequest, ItemResult
from hark_serving.storage.profiles import StorageProfiles

if TYPE_CHECKING:
    from hark_serving.config import Settings

log = logging.getLogger(__name__)


class InProcessProcessor:
    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 2,
        profiles: StorageProfiles | None = None,
    ) -> None:
        self.settings = settings
        self.profiles = profiles or settings.profiles()
        self._most = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._most, thread_name_prefix="hark-item")
        self._limit = self._most
        self._active = 0
        self._slots = asyncio.Condition()
        self._load_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._parts: tuple[Any, Any, Any] | None = None  # (runner, recognizer, run_item)

    @property
    def workers(self) -> int:
        return self._limit

    async def set_workers(self, n: int) -> None:
        """Concurrency for the in-process scaler (at least one while work exists)."""
        async with self._slots:
            self._limit = max(1, min(n, self._most))
            self._slots.notify_all()

    def load(self) -> None:
        """Load the model and the speech detector (once; later calls return at once)."""
        with self._load_lock:
            if self._parts is not None:
                return
            from hark_serving.engine.factory import build_detector, build_recognizer, segmenting
            from hark_serving.runs.items import ItemRunner, run_item

            recognizer = build_recognizer(self.settings)
            runner = ItemRunner(
                self.profiles, build_detector(self.settings), segmenting(self.settings)
            )
            self._parts = (runner, recognizer, run_item)

    def _recognize(self, prepared: Any) -> tuple[list[Any], float]:
        import time

        from hark_serving.engine.packing import Sized, plan_batches

        assert self._parts is not None
        recognizer = self._parts[1]
        s = self.settings
        order = [Sized(i, w.frames) for i, w in enumerate(prepared.segments)]
        results: list[Any] = [None] * len(order)
        started = time.perf_counter()
        for batch in plan_batches(order, s.batch_frames, s.max_batch_segments):
            waves = [prepared.segments[i].samples() for i in batch]
            with self._model_lock:  # one model: batches take turns, decoding does not wait
                out = recognizer.recognize(waves, [prepared.request()] * len(batch))
            for i, r in zip(batch, out, strict=True):
                results[i] = r
        return results, time.perf_counter() - started

    def _process(self, request: ItemRequest) -> ItemResult:
        self.load()
        assert self._parts is not None
        runner, recognizer, run_item = self._parts
        result: ItemResult = run_item(runner, request, self._recognize, recognizer.info)
        return result

    async def process(self, request: ItemRequest) -> ItemResult:
        async with self._slots:
            await self._slots.wait_for(lambda: self._active < self._limit)
            self._active += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._process, request)
        finally:
            async with self._slots:
                self._active -= 1
                self._slots.notify_all()

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

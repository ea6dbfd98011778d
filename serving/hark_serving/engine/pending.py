"""A model that loads on a thread of its own while a run decodes and cuts its first files.

Loading takes most of a short run's start (reading and preparing the int8 graph:
about a second on two cores), and it runs in native code that releases the GIL.
Decoding and the VAD release it too. So `hark transcribe` starts the load, then
starts its run at once: the first files are decoded and cut while the model
loads, and the first batch waits for it. The engine asks `wait()` before every
use of the model, so a load that failed ends the run with its own error (as an
eager load would), never as a failure of each file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from hark_serving.engine.embedded import Recognizer
from hark_serving.engine.recognition import DecodeRequest, Recognized
from hark_serving.transcript.schema import ModelInfo


class PendingRecognizer:
    """`load()` runs on a thread started now; every use waits for it."""

    def __init__(self, load: Callable[[], Recognizer], *, clock: Callable[[], float]) -> None:
        """`clock`: the time to record when the model is ready (seconds since process start)."""
        self._future: Future[Recognizer] = Future()
        self.started = time.perf_counter()
        self.load_seconds: float | None = None
        self.ready_at: float | None = None

        def run() -> None:
            try:
                model = load()
            except BaseException as exc:  # handed to whoever waits, as an eager load raises
                self._future.set_exception(exc)
                return
            self.load_seconds = time.perf_counter() - self.started
            self.ready_at = clock()
            self._future.set_result(model)

        # A daemon: a run that stops early (an error, Ctrl-C) must not wait for the load.
        threading.Thread(target=run, name="hark-model-load", daemon=True).start()

    def load_error(self) -> BaseException | None:
        """The load's error once it failed, else None (loading or loaded)."""
        return self._future.exception() if self._future.done() else None

    def settle(self) -> None:
        """Wait for the load to end, either way: a process must not exit while it runs in
        native code on its thread."""
        if not self._future.done():
            self._future.exception()

    def wait(self) -> Recognizer:
        """The loaded model; raises the load's error."""
        return self._future.result()

    @property
    def info(self) -> ModelInfo:
        return self.wait().info

    @property
    def threads(self) -> int:
        return self.wait().threads

    def recognize(
        self, waves: Sequence[np.ndarray], requests: Sequence[DecodeRequest]
    ) -> list[Recognized]:
        return self.wait().recognize(waves, requests)

    def allow_concurrent_calls(self, lanes: int) -> None:
        self.wait().allow_concurrent_calls(lanes)

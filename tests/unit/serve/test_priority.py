"""Preparing threads yield to the model; a local Ray starts its workers at niceness 0."""

from __future__ import annotations

import os
import threading

import pytest

from hark_serving.engine.priority import BACKGROUND, background_pool
from hark_serving.serve.priority import RAY_WORKER_NICENESS, local_worker_niceness


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_background_threads_run_at_background_priority_and_the_caller_keeps_its_own() -> None:
    before = niceness()
    with background_pool(2, "test-prep") as pool:
        seen = {pool.submit(niceness).result() for _ in range(8)}
    assert seen == {BACKGROUND}
    assert niceness() == before < BACKGROUND


def test_a_local_ray_starts_its_workers_at_niceness_0_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(RAY_WORKER_NICENESS, raising=False)
    local_worker_niceness()
    assert os.environ[RAY_WORKER_NICENESS] == "0"
    monkeypatch.setenv(RAY_WORKER_NICENESS, "5")
    local_worker_niceness()
    assert os.environ[RAY_WORKER_NICENESS] == "5"

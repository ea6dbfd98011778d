"""`ray_local` is a real local Ray instance with four logical CPUs."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_ray_local_runs_tasks_and_actors(ray_local: Any) -> None:
    import ray

    @ray.remote
    def square(x: int) -> int:
        return x * x

    @ray.remote
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def add(self, k: int) -> int:
            self.n += k
            return self.n

    counter = Counter.remote()  # type: ignore[attr-defined]

    assert ray.get([square.remote(i) for i in range(8)]) == [i * i for i in range(8)]
    assert ray.get([counter.add.remote(k) for k in (1, 2, 3)]) == [1, 3, 6]
    assert ray.cluster_resources()["CPU"] == 4
    assert ray.get_runtime_context().namespace == "hark-tests"

"""Scaler backends and the scaling loop, without a cluster: Serve configs as data, fake APIs."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from hark_operator.errors import ScalerError
from hark_operator.scaling.backends import InProcessScaler, NoScaler, get_floor, set_floor
from hark_operator.scaling.kuberay import KubeRayScaler
from hark_operator.scaling.loop import ScaleLoop
from hark_operator.scaling.policy import Decision, ScalingPolicy
from hark_operator.scaling.serve_api import ServeApiScaler

CONFIG = {
    "applications": [
        {"name": "other", "import_path": "x:y"},
        {
            "name": "hark",
            "import_path": "hark_serving.serve.app:build_app",
            "deployments": [
                {"name": "Worker", "num_replicas": 2},
                {
                    "name": "Transcriber",
                    "autoscaling_config": {"min_replicas": 0, "max_replicas": 3},
                },
            ],
        },
    ]
}


def test_set_floor_changes_only_the_transcriber_floor() -> None:
    config = copy.deepcopy(CONFIG)
    assert set_floor(config, "hark", "Transcriber", 2, 8) == 2
    assert get_floor(config, "hark", "Transcriber") == 2
    expected = copy.deepcopy(CONFIG)
    expected["applications"][1]["deployments"][1]["autoscaling_config"]["min_replicas"] = 2  # type: ignore[index]
    assert config == expected


def test_set_floor_respects_the_configs_own_maximum_and_initial_replicas() -> None:
    config = copy.deepcopy(CONFIG)
    assert set_floor(config, "hark", "Transcriber", 9, 8) == 3
    config["applications"][1]["deployments"][1]["autoscaling_config"]["initial_replicas"] = 1  # type: ignore[index]
    set_floor(config, "hark", "Transcriber", 2, 8)
    assert (
        config["applications"][1]["deployments"][1]["autoscaling_config"]["initial_replicas"] == 2
    )  # type: ignore[index]


def test_set_floor_adds_a_deployment_entry_when_the_config_lists_none() -> None:
    config: dict[str, Any] = {"applications": [{"name": "hark", "import_path": "m:a"}]}
    assert get_floor(config, "hark", "Transcriber") is None
    set_floor(config, "hark", "Transcriber", 1, 4)
    assert config["applications"][0]["deployments"] == [
        {"name": "Transcriber", "autoscaling_config": {"max_replicas": 4, "min_replicas": 1}}
    ]


def test_set_floor_refuses_what_it_cannot_scale() -> None:
    with pytest.raises(ScalerError, match="no application named 'hark'"):
        set_floor({"applications": []}, "hark", "Transcriber", 1, 4)
    fixed = {
        "applications": [
            {"name": "hark", "deployments": [{"name": "Transcriber", "num_replicas": 2}]}
        ]
    }
    with pytest.raises(ScalerError, match="fixed num_replicas"):
        set_floor(fixed, "hark", "Transcriber", 1, 4)


class FakeKube:
    """Enough of KubeClient for the KubeRay scaler: one RayService, resourceVersion checks."""

    def __init__(self, conflicts: int = 0) -> None:
        self.obj: dict[str, Any] = {
            "metadata": {"name": "hark", "namespace": "ray", "uid": "u", "resourceVersion": "1"},
            "spec": {
                "serveConfigV2": yaml.safe_dump(CONFIG, sort_keys=False),
                "rayClusterConfig": {"x": 1},
            },
        }
        self.conflicts = conflicts
        self.patches: list[dict[str, Any]] = []

    async def get_object(self, *args: Any) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    async def patch_object(
        self, group: str, version: str, plural: str, ns: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        if self.conflicts:
            self.conflicts -= 1
            self.obj["metadata"]["resourceVersion"] = str(
                int(self.obj["metadata"]["resourceVersion"]) + 1
            )
            raise ApiException(status=409, reason="Conflict")
        assert patch["metadata"]["resourceVersion"] == self.obj["metadata"]["resourceVersion"]
        self.patches.append(patch)
        self.obj["spec"].update(patch["spec"])
        return self.obj


def test_kuberay_scaler_patches_serve_config_v2_only() -> None:
    kube = FakeKube(conflicts=1)
    scaler = KubeRayScaler(kube, "ray", "hark", max_replicas=3)  # type: ignore[arg-type]
    assert asyncio.run(scaler.current()) == 0
    assert asyncio.run(scaler.apply(2)) == 2
    assert asyncio.run(scaler.current()) == 2
    (patch,) = kube.patches
    assert set(patch["spec"]) == {"serveConfigV2"}  # never workerGroupSpecs
    assert kube.obj["spec"]["rayClusterConfig"] == {"x": 1}
    asyncio.run(scaler.apply(2))
    assert len(kube.patches) == 1  # nothing to change: nothing written
    target = scaler.target()
    assert target is not None and (target.kind, target.name, target.uid) == (
        "RayService",
        "hark",
        "u",
    )


def test_kuberay_scaler_reports_a_missing_or_broken_rayservice() -> None:
    kube = FakeKube()
    kube.obj["spec"]["serveConfigV2"] = "applications: ["
    with pytest.raises(ScalerError, match="not valid YAML"):
        asyncio.run(KubeRayScaler(kube, "ray", "hark").current())  # type: ignore[arg-type]


def serve_api(state: dict[str, Any]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=state["details"])
        state["put"] = json.loads(request.content)
        return httpx.Response(200)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_serve_api_scaler_round_trips_the_declarative_config() -> None:
    app = copy.deepcopy(CONFIG["applications"][1])
    state: dict[str, Any] = {
        "details": {
            "proxy_location": "EveryNode",
            "http_options": {"host": "0.0.0.0", "port": 8000, "ssl_keyfile": None},
            "applications": {"hark": {"deployed_app_config": app, "status": "RUNNING"}},
        }
    }
    scaler = ServeApiScaler("http://head:8265", client=serve_api(state))
    assert asyncio.run(scaler.current()) == 0
    assert asyncio.run(scaler.apply(3)) == 3
    put = state["put"]
    assert put["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert put["applications"][0]["deployments"][1]["autoscaling_config"]["min_replicas"] == 3
    assert put["applications"][0]["deployments"][0] == {"name": "Worker", "num_replicas": 2}
    state["details"]["applications"]["other"] = {"deployed_app_config": None}
    with pytest.raises(ScalerError, match="not deployed from a config"):
        asyncio.run(scaler.apply(1))


class Backend:
    name = "fake"

    def __init__(self, floor: int | None = 0) -> None:
        self.floor = floor
        self.applied: list[int] = []

    async def current(self) -> int | None:
        return self.floor

    async def apply(self, floor: int) -> int:
        self.applied.append(floor)
        self.floor = floor
        return floor

    def target(self) -> None:
        return None


def test_the_loop_follows_the_backlog_with_an_injected_clock() -> None:
    now = [0.0]
    backlog = [0.0]
    announced: list[tuple[int, int]] = []

    async def announce(d: Decision, b: float) -> None:
        announced.append((d.previous, d.floor))

    backend = Backend(0)
    policy = ScalingPolicy(
        items_per_replica=5, min_replicas=0, max_replicas=4, scale_down_delay_seconds=30
    )
    loop = ScaleLoop(policy, backend, lambda: backlog[0], clock=lambda: now[0], announce=announce)

    async def steps() -> list[int]:
        floors = []
        for t, b in [
            (0, 0),
            (1, 12),
            (2, 100),
            (10, 0),
            (31, 0),
            (32, 0),
            (33, 0),
            (34, 0),
            (35, 0),
        ]:
            now[0], backlog[0] = t, b
            d = await loop.step()
            assert d is not None
            floors.append(d.floor)
        return floors

    assert asyncio.run(steps()) == [0, 3, 4, 4, 4, 3, 2, 1, 0]
    assert backend.applied == [3, 4, 3, 2, 1, 0]
    assert announced == [(0, 3), (3, 4), (4, 3), (3, 2), (2, 1), (1, 0)]
    # The floor and its bounds, for the "GPU floor at max" alert.
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("hark_operator_replicas_current") == 0
    assert REGISTRY.get_sample_value("hark_operator_replicas_min") == 0
    assert REGISTRY.get_sample_value("hark_operator_replicas_max") == 4


def test_the_loop_starts_from_the_floor_in_place_and_restores_a_manual_edit() -> None:
    backend = Backend(3)
    policy = ScalingPolicy(
        items_per_replica=5, min_replicas=0, max_replicas=4, scale_down_delay_seconds=30
    )
    loop = ScaleLoop(policy, backend, lambda: 0.0, clock=lambda: 0.0)
    assert asyncio.run(loop.step()).floor == 3  # type: ignore[union-attr]
    backend.floor = 1  # someone edited the RayService
    asyncio.run(loop.step())
    assert backend.applied == [3]


def test_a_paused_replica_does_not_scale() -> None:
    backend = Backend(0)

    async def inactive() -> bool:
        return False

    loop = ScaleLoop(ScalingPolicy(), backend, lambda: 100.0, active=inactive)
    assert asyncio.run(loop.step()) is None
    assert backend.applied == [] and loop.state is None


def test_the_simple_backends() -> None:
    none = NoScaler()
    assert asyncio.run(none.current()) is None and asyncio.run(none.apply(2)) == 2
    workers: list[int] = []

    async def set_workers(n: int) -> None:
        workers.append(n)

    inproc = InProcessScaler(set_workers, 4)
    assert asyncio.run(inproc.current()) == 4
    asyncio.run(inproc.apply(1))
    assert workers == [1] and inproc.target() is None

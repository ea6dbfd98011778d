"""ServeSettings: HARK_* variables, args on top, deployment options, errors naming the setting."""

from __future__ import annotations

import pytest

from hark_serving.errors import ConfigError
from hark_serving.serve.settings import ServeSettings, load_serve_settings


def test_args_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_PORT", "9000")
    monkeypatch.setenv("HARK_TRANSCRIBER_MIN_REPLICAS", "2")
    s = load_serve_settings({"port": 9100, "model": "/m", "host": None})
    assert (s.port, s.transcriber_min_replicas, s.model, s.host) == (9100, 2, "/m", "127.0.0.1")


def test_each_deployment_gets_its_own_options() -> None:
    s = ServeSettings(
        transcriber_min_replicas=0,
        transcriber_max_replicas=3,
        transcriber_num_gpus=1,
        worker_num_cpus=2,
        max_batch_segments=32,
        batch_wait_seconds=0.05,
    )
    t = s.deployment_options("transcriber")
    assert t["name"] == "Transcriber"
    assert t["autoscaling_config"]["min_replicas"] == 0
    assert t["autoscaling_config"]["max_replicas"] == 3
    # Serve removes an unneeded replica soon after the floor drops, not after its own 600 s.
    assert t["autoscaling_config"]["downscale_delay_s"] == 30.0
    assert "downscale_delay_s" not in s.deployment_options("worker")["autoscaling_config"]
    assert t["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert t["user_config"] == {
        "max_batch_segments": 32,
        "batch_frames": None,  # the replica picks by its device
        "batch_wait_seconds": 0.05,
        "batch_max_padding": None,  # the replica picks by its device
    }
    w = s.deployment_options("worker")
    assert w["name"] == "Worker" and w["ray_actor_options"] == {"num_cpus": 2.0}
    assert "user_config" not in w
    assert s.deployment_options("ingress")["name"] == "Ingress"


def test_bad_values_name_the_flag_and_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"--port / HARK_PORT\) = 0"):
        load_serve_settings({"port": 0})
    with pytest.raises(ConfigError, match="HARK_NO_SUCH_SETTING"):
        load_serve_settings({"no_such_setting": 1})
    with pytest.raises(ConfigError, match=r"--precision / HARK_PRECISION\) = 'int4'"):
        load_serve_settings({"precision": "int4"})


def test_int8_is_a_serve_setting_for_the_cpu_only() -> None:
    assert load_serve_settings({"device": "cpu", "precision": "int8"}).precision == "int8"
    with pytest.raises(ConfigError, match="precision int8 runs on the CPU only"):
        load_serve_settings({"device": "cuda", "precision": "int8"})


def test_inconsistent_bounds_are_refused() -> None:
    with pytest.raises(ConfigError, match="worker_min_replicas"):
        load_serve_settings({"worker_min_replicas": 5, "worker_max_replicas": 2})
    with pytest.raises(ConfigError, match="max_batch_segments"):
        load_serve_settings({"max_batch_segments": 64, "transcriber_max_ongoing_requests": 8})


def test_the_operator_floor_may_be_zero_but_the_ingress_floor_may_not() -> None:
    assert ServeSettings(transcriber_min_replicas=0).transcriber_min_replicas == 0
    with pytest.raises(ConfigError):
        load_serve_settings({"ingress_min_replicas": 0})


def test_a_batch_frames_set_by_flag_or_environment_reaches_the_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_serve_settings({"batch_frames": 3000}).batching()["batch_frames"] == 3000
    monkeypatch.setenv("HARK_BATCH_FRAMES", "1200")
    assert load_serve_settings().batching()["batch_frames"] == 1200

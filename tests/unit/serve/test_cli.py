"""`hark serve` flags: validated as settings before anything starts."""

from __future__ import annotations

from typer.testing import CliRunner

from hark_serving.cli.main import app
from hark_serving.serve.local import local_cpus
from hark_serving.serve.settings import ServeSettings


def test_a_bad_flag_fails_before_ray_starts_and_names_the_setting() -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "HARK_PORT" in result.output


def test_a_precision_the_device_cannot_run_fails_before_ray_starts() -> None:
    result = CliRunner().invoke(app, ["serve", "--device", "cpu", "--precision", "float16"])
    assert result.exit_code == 2
    assert "float16 runs on CUDA only" in result.output
    result = CliRunner().invoke(app, ["serve", "--device", "cuda", "--precision", "int8"])
    assert result.exit_code == 2
    assert "precision int8 runs on the CPU only" in result.output


def test_serve_is_a_command_with_the_documented_flags() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--model",
        "--host",
        "--port",
        "--max-batch-segments",
        "--ray-address",
        "--precision",
    ):
        assert flag in result.output


def test_a_local_ray_gets_enough_cpus_for_the_minimum_replicas() -> None:
    assert local_cpus(ServeSettings(ray_num_cpus=3)) == 3
    wanted = ServeSettings(worker_min_replicas=4, worker_num_cpus=2, transcriber_num_cpus=1)
    # 0.5 (ingress) + 4 x 2 (workers) + 1 (transcriber) = 9.5 → 10, more than this machine has
    assert local_cpus(wanted) >= 10

"""The RayService's serveConfigV2 deploys the same application `hark serve` runs.

Checked in Python, without starting Ray: the rendered config is parsed with Ray
Serve's own schema, its `import_path` is imported and called with its `args`,
and the application that builds is compared with the deployments section the
operator patches and with what `hark serve` hands to `serve.run`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from .helpers import VALUES_FILES, Helm, Rendered, render


@pytest.fixture(scope="module", autouse=True)
def _ray_serve() -> Iterator[None]:
    # Ray Serve's own models still pass pydantic-v1 style Field(update_type=...),
    # which warns once, at import; nothing of ours does.
    from pydantic.warnings import PydanticDeprecatedSince20

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PydanticDeprecatedSince20)
        import ray.serve.schema  # noqa: F401

        import hark_serving.serve.app  # noqa: F401
    yield


def deploy_schema(config: dict[str, Any]) -> Any:
    from ray.serve.schema import ServeDeploySchema

    return ServeDeploySchema.model_validate(config)


def build(app_config: dict[str, Any]) -> dict[str, Any]:
    """Import the builder the config names, call it with its args, and list the
    deployments it makes: {name: deployment}."""
    from ray.serve._private.build_app import build_app

    module, attr = app_config["import_path"].split(":")
    application = getattr(importlib.import_module(module), attr)(app_config["args"])
    built = build_app(application, name=app_config["name"])
    return {d.name: d for d in built.deployments}


def options_of(deployment: Any) -> dict[str, Any]:
    """The options of a built deployment, in serveConfigV2's vocabulary."""
    config = deployment._deployment_config
    return {
        "name": deployment.name,
        "max_ongoing_requests": config.max_ongoing_requests,
        "autoscaling_config": config.autoscaling_config.model_dump(),
        "ray_actor_options": dict(deployment._replica_config.ray_actor_options),
        "user_config": config.user_config,
        "graceful_shutdown_timeout_s": config.graceful_shutdown_timeout_s,
        "class": deployment.func_or_class,
    }


CASES = [None, *VALUES_FILES]


@pytest.fixture(params=CASES, ids=lambda p: p.name if p else "defaults")
def rendered(request: pytest.FixtureRequest, helm: Helm, chart: Path) -> Rendered:
    files = [request.param] if request.param else []
    return render(helm, chart, values_files=files)


def test_the_serve_config_is_valid_for_ray_serve(rendered: Rendered) -> None:
    schema = deploy_schema(rendered.serve_config())

    (app,) = schema.applications
    assert app.name == "hark"
    assert app.route_prefix == "/"
    assert app.import_path == "hark_serving.serve.app:build_app"
    assert schema.http_options.port == 8000
    assert schema.http_options.host == "0.0.0.0"


def test_its_import_path_builds_the_app_with_its_args(rendered: Rendered) -> None:
    deployments = build(rendered.serve_app())

    assert set(deployments) == {"Ingress", "Worker", "Transcriber"}


def test_the_deployments_section_says_what_the_app_builds_from_the_args(
    rendered: Rendered,
) -> None:
    built = {name: options_of(d) for name, d in build(rendered.serve_app()).items()}

    for section in rendered.serve_app()["deployments"]:
        mine = built[section["name"]]
        assert section["max_ongoing_requests"] == mine["max_ongoing_requests"]
        assert section["ray_actor_options"] == mine["ray_actor_options"]
        for key, value in section["autoscaling_config"].items():
            assert mine["autoscaling_config"][key] == value, (section["name"], key)


def test_the_operator_can_move_the_transcriber_floor_anywhere_in_the_pool(
    rendered: Rendered,
) -> None:
    from ray.serve.config import AutoscalingConfig

    config = rendered.serve_config()
    transcriber = rendered.serve_deployment("Transcriber")
    ceiling = transcriber["autoscaling_config"]["max_replicas"]
    env = rendered.operator_env()

    assert transcriber["autoscaling_config"]["min_replicas"] == int(env["HARK_SCALE_MIN_REPLICAS"])
    assert ceiling == int(env["HARK_SCALE_MAX_REPLICAS"])
    for floor in range(ceiling + 1):
        # What the kuberay scaler writes: only min_replicas changes. Ray Serve
        # replaces the code's autoscaling_config with this one wholesale.
        transcriber["autoscaling_config"]["min_replicas"] = floor
        config["applications"][0]["deployments"][2] = transcriber
        deploy_schema(config)
        AutoscalingConfig(**transcriber["autoscaling_config"])


def test_hark_serve_runs_the_same_app_as_the_rayservice(
    helm: Helm, chart: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray import serve

    from hark_serving.cli.main import app as cli

    # A pool of exactly two Transcribers and two Workers: what `--transcribers 2
    # --workers 2` asks of `hark serve`. The other sizes reach both through HARK_*.
    rendered = render(
        helm,
        chart,
        values={
            "ray": {"workers": {"minReplicas": 2, "maxReplicas": 2}},
            "serve": {"worker": {"minReplicas": 2, "maxReplicas": 2}},
        },
        tmp=tmp_path,
    )
    app_config = rendered.serve_app()
    flags = {
        "worker_min_replicas",
        "worker_max_replicas",
        "transcriber_min_replicas",
        "transcriber_max_replicas",
    }
    for key, value in app_config["args"].items():
        if key not in flags:
            monkeypatch.setenv(f"HARK_{key.upper()}", str(value))

    captured: dict[str, Any] = {}

    class Ran(Exception):
        """Stops `hark serve` right after it hands its app to serve.run."""

    def fake_run(application: Any, **kwargs: Any) -> None:
        captured.update(kwargs, application=application)
        raise Ran

    monkeypatch.setattr(ray, "init", lambda **kwargs: None)  # no Ray is started
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(serve, "start", lambda **kwargs: None)
    monkeypatch.setattr(serve, "run", fake_run)
    monkeypatch.setattr(serve, "shutdown", lambda: None)

    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--transcribers", "2"])

    assert isinstance(result.exception, Ran), result.output
    assert captured["name"] == app_config["name"]
    assert captured["route_prefix"] == app_config["route_prefix"]

    from ray.serve._private.build_app import build_app

    by_cli = {
        d.name: options_of(d) for d in build_app(captured["application"], name="hark").deployments
    }
    by_chart = {name: options_of(d) for name, d in build(app_config).items()}
    assert by_cli == by_chart

"""The Serve application on the session's local Ray, one app per test module.

`serve_instance` starts Serve's HTTP proxy once per session on a free port;
`deploy(args)` runs the `hark` application with a tiny model and small
replicas (the machine has two cores) and deletes it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures import audio

APP = "hark"

# Small enough to share two cores with the test process; one replica each, so
# results never depend on which replica answered.
SMALL = {
    "device": "cpu",
    "threads": 1,
    "worker_threads": 2,
    "ingress_num_cpus": 0.25,
    "worker_num_cpus": 0.5,
    "transcriber_num_cpus": 0.5,
    "ingress_min_replicas": 1,
    "ingress_max_replicas": 1,
    "worker_min_replicas": 1,
    "worker_max_replicas": 1,
    "transcriber_min_replicas": 1,
    "transcriber_max_replicas": 1,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`good_file` / `broken_file` arguments run once per file of the audio corpus."""
    for arg, pick in (("good_file", audio.good_files), ("broken_file", audio.broken_files)):
        if arg in metafunc.fixturenames:
            audio.build_corpus(fixtures_cache())  # cached; fills audio.CORPUS
            metafunc.parametrize(arg, pick())


def fixtures_cache() -> Path:
    return Path(os.environ.get("HARK_FIXTURES_DIR", Path.home() / ".cache/hark/fixtures"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def serve_instance(ray_local: Any) -> Iterator[str]:
    """Serve's proxy on a free local port; yields its base URL."""
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@contextlib.contextmanager
def deploy(base_url: str, args: dict[str, Any]) -> Iterator[str]:
    """Run the `hark` app built from `args` until the block ends; yields its URL."""
    from ray import serve

    from hark_serving.serve.app import APP_NAME, ROUTE_PREFIX, build_app

    assert APP_NAME == APP
    serve.run(build_app(args), name=APP_NAME, route_prefix=ROUTE_PREFIX)
    try:
        wait_ready(base_url)
        yield base_url
    finally:
        serve.delete(APP_NAME)


def wait_ready(base_url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base_url} not ready after {timeout:.0f}s")
        time.sleep(0.5)


def app_args(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {**SMALL, "model": str(model_dir), **overrides}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code, body
    assert set(body["error"]) >= {"code", "message"} and body["error"]["message"]
    return body


def ray_metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every series on the local Ray's metrics export port: (name, sorted labels) → value.

    The Serve app's `ray_hark_*` series are there, tagged per replica (docs/metrics.md).
    """
    import ray
    from prometheus_client.parser import text_string_to_metric_families

    (port,) = {n["MetricsExportPort"] for n in ray.nodes() if n["Alive"]}
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def ray_metric_sum(name: str, **labels: str) -> float:
    """The sum over replicas of one `ray_hark_*` series with these labels."""
    return sum(
        value
        for (n, tags), value in ray_metrics().items()
        if n == name and set(labels.items()) <= set(tags)
    )

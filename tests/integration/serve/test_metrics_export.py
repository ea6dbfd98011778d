"""`hark serve` exports the Serve app's metrics where the chart's PodMonitor looks.

A real `hark serve` (its own local Ray, the tiny model) is started with the
metrics export port the chart would give Ray; after a real transcription, the
`ray_hark_*` series of every deployment are on that port, tagged per replica,
and the HTTP API has no metrics route.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.env.build import tools_or_fail
from tests.unit.chart.helpers import CHART, REPO, Helm, render
from tests.unit.chart.promql import documented, series

from .conftest import _free_port

pytestmark = pytest.mark.timeout(600)


@contextmanager
def hark_serve(model: Path, port: int, metrics_port: int, log: Path) -> Iterator[str]:
    """`hark serve` in its own process until the block ends; yields its URL."""
    env = dict(
        os.environ,
        RAY_USAGE_STATS_ENABLED="0",
        HARK_METRICS_EXPORT_PORT=str(metrics_port),
        HARK_LOG_FORMAT="text",
    )
    cmd = [
        sys.executable, "-m", "hark_serving.cli.main", "serve", "--model", str(model),
        "--port", str(port), "--device", "cpu", "--threads", "1",
        "--workers", "1", "--transcribers", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            deadline = time.monotonic() + 300
            while True:
                assert proc.poll() is None, f"hark serve exited:\n{log.read_text()[-3000:]}"
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"not ready:\n{log.read_text()[-3000:]}"
                time.sleep(1)
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape(port: int) -> list[Sample]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def wait_for(port: int, wanted: set[tuple[str, str, str]], timeout: float = 120) -> list[Sample]:
    """Scrape until each (name, deployment, route) has a series with a value above 0.

    Replicas export what they recorded every few seconds, not at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        found = {
            (s.name, s.labels.get("deployment", ""), s.labels.get("route", ""))
            for s in samples
            if s.value > 0
        }
        if wanted <= found or time.monotonic() > deadline:
            return samples
        time.sleep(2)


def test_the_pod_monitor_port_is_where_hark_serve_exports_hark_metrics(
    tiny_model_dir: Path, audio_dir: Path, tmp_path: Path
) -> None:
    metrics_port = _free_port()
    helm = Helm(tools_or_fail().helm, tmp_path / "helm")
    chart = CHART
    values = {"monitoring": {"rayMetricsPort": metrics_port, "podMonitor": {"enabled": True}}}
    rendered = render(helm, chart, values=values, tmp=tmp_path)
    (endpoint,) = rendered.one("PodMonitor")["spec"]["podMetricsEndpoints"]
    cluster = rendered.rayservice()["spec"]["rayClusterConfig"]
    scraped = set()
    for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
        (container,) = group["template"]["spec"]["containers"]
        scraped |= {p["containerPort"] for p in container["ports"] if p["name"] == endpoint["port"]}
    (pod_monitor_port,) = scraped  # head and workers alike

    wanted = {
        ("ray_hark_http_requests_total", "Ingress", "/v1/transcribe"),
        ("ray_hark_http_request_duration_seconds_count", "Ingress", "/v1/transcribe"),
        ("ray_hark_files_total", "Worker", ""),
        ("ray_hark_audio_seconds_processed_total", "Worker", ""),
        ("ray_hark_decode_seconds_count", "Worker", ""),
        ("ray_hark_model_batches_total", "Transcriber", ""),
        ("ray_hark_model_batch_segments_count", "Transcriber", ""),
        ("ray_hark_model_ready", "Transcriber", ""),
        ("ray_serve_deployment_replica_healthy", "Transcriber", ""),
    }
    log = tmp_path / "hark-serve.log"
    with hark_serve(tiny_model_dir, _free_port(), metrics_port, log) as url:
        wav = audio_dir / "one_sentence_16k.wav"
        r = httpx.post(
            f"{url}/v1/transcribe", files={"file": (wav.name, wav.read_bytes())}, timeout=300
        )
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404  # not on the API
        samples = wait_for(pod_monitor_port, wanted)

    found = {
        (s.name, s.labels.get("deployment", ""), s.labels.get("route", ""))
        for s in samples
        if s.value > 0
    }
    assert wanted <= found, f"missing {wanted - found}; log tail:\n{log.read_text()[-2000:]}"
    hark = [s for s in samples if s.name.startswith("ray_hark_")]
    for s in hark:
        assert s.labels["application"] == "hark" and s.labels["replica"], s
    by_name = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in hark}
    worker_files = [
        v for (n, labels), v in by_name.items()
        if n == "ray_hark_files_total" and ("status", "succeeded") in labels and ("kind", "upload") in labels
    ]  # fmt: skip
    assert worker_files == [1.0]
    ok = [
        s for s in hark
        if s.name == "ray_hark_http_requests_total"
        and s.labels["route"] == "/v1/transcribe" and s.labels["code"] == "200"
    ]  # fmt: skip
    assert [s.value for s in ok] == [1.0]
    # Every hark series on the port is one docs/metrics.md (and so the dashboard) knows.
    assert {s.name for s in hark} <= series(documented())

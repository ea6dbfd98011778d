"""The elastic GPU pool, measured: a bursty trace on a real autoscaling Ray cluster.

Ray's own autoscaler with its fake multi-node provider (tests/env/ray_autoscaling.py)
launches a GPU-typed worker node for each Transcriber replica; the `hark` Serve app
runs on it with the tiny random model, the operator runs as `hark operator` against
the real API server and MinIO. The trace is a few bursts of uploads, each one
TranscriptionJob, with quiet gaps between them. Two runs on the same cluster:

    operator     the operator writes the GPU floor through the Serve REST API
    serve-only   no floor (HARK_SCALER=none): Ray Serve's request-based autoscaler alone

Prints one JSON object: per run, backlog_to_floor_s (job created until the floor
is written; null without a floor), backlog_to_first_replica_s, gpu_node_seconds,
gpu_nodes_max, gpu_nodes_end, items_total, items_lost, items_duplicated and
p95_time_to_result_s (upload until its transcript exists, from MinIO's times).

    python benchmarks/elastic_pool.py [--bursts 2] [--items 8] [--gap 20]

Uses the environment of HARK_TEST_ENV when set, else starts one (needs the tools
`python -m tests.env build` caches). Run it alone: it starts Ray processes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "serving"), str(REPO / "operator")]

from tests.env.environment import Environment  # noqa: E402
from tests.env.kube import apply_yaml, unique_name, wait_for  # noqa: E402
from tests.env.ray_autoscaling import (  # noqa: E402
    AutoscalingRay,
    NodeShape,
    Sample,
    Sampler,
    deploy_serve_config,
    start_autoscaling_ray,
    wait_serve_running,
)
from tests.integration.elastic.conftest import elastic_serve_config, serve_profiles  # noqa: E402
from tests.integration.operator.conftest import (  # noqa: E402
    CRDS,
    create_secret,
    get_job,
    hark_env,
    job_manifest,
    operator_environ,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_NODES = 2


@contextlib.contextmanager
def environment(root: Path) -> Iterator[Environment]:
    reuse = os.environ.get("HARK_TEST_ENV")
    if reuse:
        yield Environment.load(Path(reuse))
        return
    from tests.env.build import tools_or_fail
    from tests.env.cluster import Cluster

    cluster = Cluster(root / "env", tools_or_fail())
    env = cluster.start()
    try:
        yield env
    finally:
        cluster.stop()


@contextlib.contextmanager
def operator(environ: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hark_serving.cli.main", "operator"],
            cwd=REPO, env=hark_env(environ), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seconds_on(samples: list[Sample]) -> float:
    """GPU node-seconds: the node count integrated over the samples' times."""
    return sum(a.gpu_nodes * (b.t - a.t) for a, b in itertools.pairwise(samples))


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def first_after(samples: list[Sample], t0: float, check: Any) -> float | None:
    return next((s.t - t0 for s in samples if s.t >= t0 and check(s)), None)


def run_trace(
    mode: str,
    env: Environment,
    cluster: AutoscalingRay,
    s3: S3Client,
    wav: Path,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    namespace = unique_name(f"elastic-{mode}")
    bucket = args.buckets[mode]
    env.kubectl("create", "namespace", namespace)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_secret(env, namespace)
    scaling = (
        {"HARK_SCALER": "serve-api", "HARK_RAY_DASHBOARD_URL": cluster.dashboard_url}
        if mode == "operator"
        else {"HARK_SCALER": "none"}
    )
    environ = operator_environ(
        env, namespace, work, f"http://127.0.0.1:{cluster.serve_port}",
        HARK_ITEMS_PER_REPLICA="2", HARK_SCALE_MIN_REPLICAS="0",
        HARK_SCALE_MAX_REPLICAS=str(MAX_NODES), HARK_SCALE_DOWN_DELAY_SECONDS="3",
        HARK_SCALE_INTERVAL_SECONDS="0.5", HARK_STATUS_INTERVAL_SECONDS="1",
        **scaling,
    )  # fmt: skip
    starts: list[float] = []
    body = wav.read_bytes()
    with operator(environ, work / f"operator-{mode}.log"), Sampler(cluster, 0.25) as sampler:
        t_begin = time.monotonic()
        for burst in range(args.bursts):
            for i in range(args.items):
                s3.put_object(Bucket=bucket, Key=f"in/b{burst}/{i:03d}.wav", Body=body)
            name = f"burst-{burst}"
            manifest = job_manifest(
                name, bucket, parallelism=4,
                input={"uri": f"s3://{bucket}/in/b{burst}/"},
                output={"uri": f"s3://{bucket}/out/b{burst}/"},
            )  # fmt: skip
            starts.append(time.monotonic())  # the backlog exists from here on
            apply_yaml(env, manifest, namespace=namespace)
            wait_for(
                lambda n=name: (get_job(env, namespace, n).get("status") or {}).get("phase")
                in {"Succeeded", "Failed"},
                timeout=args.timeout, interval=0.5, message=f"{name} finished",
            )  # fmt: skip
            time.sleep(args.gap)  # the quiet part of the trace: the pool should shrink
        # Give the pool its chance to reach zero before the last count.
        with contextlib.suppress(TimeoutError):
            sampler.wait(lambda s: s.gpu_nodes == 0, args.settle, "no GPU node")
        samples = sampler.since(t_begin)
    inputs: dict[str, float] = {}
    outputs: Counter[str] = Counter()
    written: dict[str, float] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            key, when = v["Key"], v["LastModified"].timestamp()
            if key.startswith("in/"):
                inputs[key.removeprefix("in/")] = when
            elif key.startswith("out/") and key.endswith(".wav.json"):
                item = key.removeprefix("out/").removesuffix(".json")
                outputs[item] += 1
                written[item] = min(written.get(item, when), when)
    floor_after = [first_after(samples, t, lambda s: s.floor > 0) for t in starts]
    replica_after = [first_after(samples, t, lambda s: s.replicas > 0) for t in starts]
    return {
        "backlog_to_floor_s": _mean([x for x in floor_after if x is not None])
        if mode == "operator"
        else None,
        "backlog_to_first_replica_s": _mean([x for x in replica_after if x is not None]),
        "gpu_node_seconds": round(seconds_on(samples), 1),
        "gpu_nodes_max": max((s.gpu_nodes for s in samples), default=0),
        "gpu_nodes_end": samples[-1].gpu_nodes if samples else None,
        "items_total": len(inputs),
        "items_lost": sum(1 for k in inputs if k not in outputs),
        "items_duplicated": sum(n - 1 for n in outputs.values() if n > 1),
        "p95_time_to_result_s": _round(p95([written[k] - inputs[k] for k in written])),
        "wall_s": round(samples[-1].t - t_begin, 1) if samples else None,
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=2, help="bursts in the trace")
    parser.add_argument("--items", type=int, default=8, help="uploads per burst")
    parser.add_argument("--gap", type=float, default=20.0, help="quiet seconds after a burst")
    parser.add_argument("--settle", type=float, default=120.0, help="wait for zero at the end")
    parser.add_argument("--timeout", type=float, default=600.0, help="per burst")
    parser.add_argument("--modes", default="operator,serve-only")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from tests.fixtures import audio
    from tests.fixtures.sensevoice_model import build_model_dir

    with tempfile.TemporaryDirectory(prefix="hark-elastic-") as tmp:
        work = Path(tmp)
        model = build_model_dir(work / "model", "tiny", seed=0)
        cache = Path(os.environ.get("HARK_FIXTURES_DIR", Path.home() / ".cache/hark/fixtures"))
        wav = audio.build_corpus(cache) / "one_sentence_16k.wav"
        with environment(work) as env:
            env.kubectl("apply", "--server-side", "-f", str(CRDS))
            env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
            s3 = boto3.client(
                "s3", endpoint_url=env.s3_endpoint, region_name=env.s3_region,
                aws_access_key_id=env.s3_access_key, aws_secret_access_key=env.s3_secret_key,
            )  # fmt: skip
            # The Serve app only reaches the buckets its profile names: one per run.
            args.buckets = {m: unique_name(f"elastic-{m}") for m in args.modes.split(",")}
            profiles = serve_profiles(env, work, *args.buckets.values())
            path = os.pathsep.join([str(REPO / "serving"), str(REPO / "operator"), str(REPO)])
            results: dict[str, Any] = {
                "trace": {"bursts": args.bursts, "items_per_burst": args.items, "gap_s": args.gap},
            }
            for mode in args.modes.split(","):
                # A fresh cluster per run: both start from a head alone.
                cluster = start_autoscaling_ray(NodeShape(max_gpu_nodes=MAX_NODES),
                                                env={"PYTHONPATH": path})  # fmt: skip
                try:
                    config = elastic_serve_config(cluster, model, profiles, MAX_NODES)
                    deploy_serve_config(cluster, config)
                    wait_serve_running(cluster, "hark")
                    results[mode] = run_trace(mode, env, cluster, s3, wav, work, args)
                finally:
                    cluster.stop()
                print(json.dumps({mode: results[mode]}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Serving throughput: `hark serve` against the one-request-at-a-time funasr recipe.

Both servers run the same full-size random SenseVoiceSmall on this machine's
CPU, in their own processes, started here. For each N in --clients, N
concurrent clients post the same schedule of 5-60 s clips (16 kHz speech with
pauses) to (a) the baseline (benchmarks/serve_baseline.py) and (b) `hark
serve`; the runs alternate per N so both see the same machine. Printed per N:
throughput (audio seconds per second), p50/p95 latency, and hark/baseline ratios.

    python benchmarks/serve_throughput.py            # N = 1, 4, 16
    python benchmarks/serve_throughput.py --quick    # a short smoke run
    python benchmarks/serve_throughput.py --precision bfloat16   # hark in bfloat16
    python benchmarks/serve_throughput.py --precision bfloat16 --baseline-precision bfloat16

Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from serve_load import (
    DEVICE,
    ROOT,
    RunResult,
    clips,
    full_model,
    run_load,
    schedule,
    wait_healthy,
)


@contextmanager
def server(cmd: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Run a server process until the block ends; SIGINT first, so it shuts down cleanly."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            wait_healthy(health, timeout=600, proc_alive=lambda: proc.poll() is None)
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def row(name: str, r: RunResult) -> str:
    fail = f"  FAILED {len(r.failures)}" if r.failures else ""
    return (
        f"  {name:<9} {r.throughput:7.2f} audio-s/s   p50 {r.percentile(50):7.1f}s"
        f"   p95 {r.percentile(95):7.1f}s   ({len(r.latencies)} requests, "
        f"{r.audio:.0f} s audio, {r.wall:.0f} s){fail}"
    )


def batch_totals(metrics_url: str) -> tuple[float, float, float]:
    """(batches, segments, model seconds) so far, from Ray's metrics export port.

    Replicas export every second here (RAY_metrics_report_interval_ms below); wait
    for the latest export first.
    """
    time.sleep(2.5)
    text = httpx.get(metrics_url, timeout=30).text

    def value(name: str) -> float:
        found = re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)
        return sum(float(v) for v in found)

    return (
        value("ray_hark_model_batch_segments_count"),
        value("ray_hark_model_batch_segments_sum"),
        value("ray_hark_model_batch_seconds_sum"),
    )


def run_hark(
    url: str, metrics_url: str, clip_paths: dict[str, Path], order: list[str], n: int
) -> RunResult:
    before = batch_totals(metrics_url)
    result = asyncio.run(run_load(f"{url}/v1/transcribe", clip_paths, order, n, {}))
    after = batch_totals(metrics_url)
    batches, segments, seconds = (a - b for a, b in zip(after, before, strict=True))
    print(
        f"  {'':<9} {batches:.0f} model batches, {segments / max(batches, 1):.1f} segments each,"
        f" model busy {100 * seconds / result.wall:.0f}% of the run",
        flush=True,
    )
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short clips, N = 1 and 4")
    parser.add_argument("--clients", default=None, help="comma-separated N (default 1,4,16)")
    parser.add_argument(
        "--requests-per-client",
        type=int,
        default=None,
        help="requests each client sends (default: every clip once at N=1, 2 each above)",
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--baseline-threads",
        type=int,
        default=None,
        help="torch threads of the baseline (default: --threads); funasr runs its silero VAD "
        "on the same threads as the model",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16", "int8", "auto"),
        default="float32",
        help="`hark serve --precision` (auto: int8 on a CPU with fast int8 kernels, float16 on CUDA; float32: exact)",
    )
    parser.add_argument(
        "--baseline-precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="arithmetic of the baseline's model calls (float32: the published recipe)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report medians")
    parser.add_argument(
        "--hark-arg",
        action="append",
        default=[],
        help="extra `hark serve` flag, e.g. --hark-arg=--batch-frames=3000 (repeatable)",
    )
    parser.add_argument("--baseline-port", type=int, default=8101)
    parser.add_argument("--hark-port", type=int, default=8102)
    parser.add_argument("--metrics-port", type=int, default=8103, help="Ray's metrics export port")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/hark-serve-bench"))
    parser.add_argument("--device", default=DEVICE, help="where `hark serve` runs the model")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args()

    ns = [int(n) for n in (args.clients or ("1,4" if args.quick else "1,4,16")).split(",")]
    seconds = (5, 10) if args.quick else (5, 10, 20, 30, 45, 60)
    print("preparing the full-size model and clips ...", flush=True)
    model = full_model()
    clip_paths = clips(seconds)
    names = sorted(clip_paths)
    args.logs.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HARK_LOG_FORMAT="text")
    env |= {
        "HARK_METRICS_EXPORT_PORT": str(args.metrics_port),
        "RAY_metrics_report_interval_ms": "1000",
    }
    metrics_url = f"http://127.0.0.1:{args.metrics_port}/metrics"
    py = sys.executable
    baseline_cmd = [
        py, str(ROOT / "benchmarks/serve_baseline.py"),
        "--model", str(model), "--port", str(args.baseline_port),
        "--threads", str(args.baseline_threads or args.threads),
        "--precision", args.baseline_precision,
    ]  # fmt: skip
    hark_cmd = [
        py, "-m", "hark_serving.cli.main", "serve",
        "--model", str(model), "--port", str(args.hark_port), "--threads", str(args.threads),
        "--workers", "1", "--transcribers", "1", "--device", args.device,
        "--precision", args.precision, *args.hark_arg,
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{args.baseline_port}"
    hark_url = f"http://127.0.0.1:{args.hark_port}"

    print(
        f"model {model}\nclips {', '.join(names)}\nthreads: hark {args.threads}, "
        f"baseline {args.baseline_threads or args.threads}\nprecision: hark {args.precision}, "
        f"baseline {args.baseline_precision}",
        flush=True,
    )
    results: dict[int, list[tuple[RunResult, RunResult]]] = {n: [] for n in ns}
    with (
        server(baseline_cmd, f"{base_url}/healthz", args.logs / "baseline.log", env),
        server(hark_cmd, f"{hark_url}/readyz", args.logs / "hark.log", env),
    ):
        # One warm-up request each: lazy imports and first-call allocations are not load.
        warm = [names[0]]
        asyncio.run(run_load(f"{base_url}/v1/transcribe", clip_paths, warm, 1, {}))
        asyncio.run(run_load(f"{hark_url}/v1/transcribe", clip_paths, warm, 1, {}))
        for rnd in range(args.rounds):
            for n in ns:
                # Every clip once at N = 1; above, each client sends two (one in a quick run).
                count = len(names) if n == 1 else n * (1 if args.quick else 2)
                if args.requests_per_client:
                    count = n * args.requests_per_client
                order = schedule(names, count, seed=7 + rnd)
                print(f"\nround {rnd + 1}, N = {n}: {len(order)} requests", flush=True)

                def baseline_run(order: list[str] = order, n: int = n) -> RunResult:
                    url = f"{base_url}/v1/transcribe"
                    result = asyncio.run(run_load(url, clip_paths, order, n, {}))
                    print(row("baseline", result), flush=True)
                    return result

                def hark_run(order: list[str] = order, n: int = n) -> RunResult:
                    result = run_hark(hark_url, metrics_url, clip_paths, order, n)
                    print(row("hark", result), flush=True)
                    return result

                # Alternate who goes first, so a slow spell on a shared machine hits both.
                if rnd % 2 == 0:
                    base, hark = baseline_run(), hark_run()
                else:
                    hark, base = hark_run(), baseline_run()
                results[n].append((base, hark))

    print(f"\nsummary: medians over {args.rounds} round(s); ratio = hark / baseline")
    print(
        f"  {'N':>3}  {'baseline':>9}  {'hark':>9}  {'ratio':>6}   "
        f"{'p50 base':>8} {'p50 hark':>8}   {'p95 base':>8} {'p95 hark':>8}  {'p95 ratio':>9}"
    )
    summary: list[dict[str, object]] = []
    for n, runs in results.items():
        b_tp = median([b.throughput for b, _ in runs])
        h_tp = median([h.throughput for _, h in runs])
        b50 = median([b.percentile(50) for b, _ in runs])
        h50 = median([h.percentile(50) for _, h in runs])
        b95 = median([b.percentile(95) for b, _ in runs])
        h95 = median([h.percentile(95) for _, h in runs])
        print(
            f"  {n:>3}  {b_tp:9.2f}  {h_tp:9.2f}  {h_tp / b_tp:5.2f}x   "
            f"{b50:7.1f}s {h50:7.1f}s   {b95:7.1f}s {h95:7.1f}s  {h95 / b95:8.2f}x"
        )
        summary.append(
            {
                "clients": n,
                "baseline_audio_s_per_s": round(b_tp, 3),
                "hark_audio_s_per_s": round(h_tp, 3),
                "ratio": round(h_tp / b_tp, 3) if b_tp else None,
                "p50_s": {"baseline": round(b50, 2), "hark": round(h50, 2)},
                "p95_s": {"baseline": round(b95, 2), "hark": round(h95, 2)},
            }
        )
    print("  (throughput in audio seconds per second; latency per request)")
    pairs = [pair for runs in results.values() for pair in runs]
    failures = [f for b, h in pairs for f in (*b.failures, *h.failures)]
    for f in failures:
        print("failure:", f)
    print(f"\n(logs in {args.logs}; {time.strftime('%Y-%m-%d %H:%M:%S')})")
    if args.json:
        doc = {"device": args.device, "precision": args.precision, "runs": summary}
        args.json.write_text(json.dumps({**doc, "failures": len(failures)}, indent=2))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()

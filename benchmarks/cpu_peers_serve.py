"""The servers of benchmarks/cpu_peers.py: `funasr-server` and `hark serve`.

Each server is started here on the same model and threads, timed from process
start to healthy (cold start), warmed with one request, then loaded by N
concurrent clients, each posting the same ~20 s clip to the OpenAI-compatible
route `/v1/audio/transcriptions`, one request after another.

`funasr-server` is the OpenAI-compatible server that ships in the funasr
package, run through its own `main()` with `--model-path` (which loads the
folder as a model without a VAD, so each clip goes through the model whole)
and `--device cpu`; its requests are answered one at a time on the event loop.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from serve_load import RunResult, clips, run_load
from serve_throughput import server

CLIP_SECONDS = 20
ROUTE = "/v1/audio/transcriptions"


@dataclass
class ServerRun:
    server: str
    clients: int
    cold_start_s: float
    result: RunResult

    def summary(self) -> dict[str, object]:
        r = self.result
        return {
            "server": self.server,
            "clients": self.clients,
            "requests": len(r.latencies),
            "failures": r.failures,
            "audio_s": round(r.audio, 1),
            "wall_s": round(r.wall, 2),
            "audio_s_per_s": round(r.throughput, 3),
            "p50_s": round(r.percentile(50), 2),
            "p95_s": round(r.percentile(95), 2),
            "cold_start_s": round(self.cold_start_s, 1),
        }


def commands(model: Path, threads: int, ports: tuple[int, int]) -> dict[str, list[str]]:
    py, here = sys.executable, str(Path(__file__).with_name("cpu_peers.py"))
    return {
        # funasr's own server, its AutoModel pinned to `threads` like every other pipeline.
        "funasr-server": [
            py, here, "--run-funasr-server", str(threads),
            "--host", "127.0.0.1", "--port", str(ports[0]),
            "--device", "cpu", "--model-path", str(model),
        ],
        # hark serve with its defaults, but for the model, port, device and threads.
        "hark serve": [
            py, "-m", "hark_serving.cli.main", "serve",
            "--model", str(model), "--port", str(ports[1]),
            "--device", "cpu", "--threads", str(threads),
        ],
    }  # fmt: skip


def run_servers(
    model: Path,
    threads: int,
    ns: list[int],
    requests_per_client: int,
    ports: tuple[int, int],
    logs: Path,
    env: dict[str, str],
) -> list[ServerRun]:
    clip_paths = clips((CLIP_SECONDS,))
    name = next(iter(clip_paths))
    health = {"funasr-server": "/health", "hark serve": "/readyz"}
    # funasr-server answers `model=custom` from the --model-path folder; other names
    # select its hub models. hark serve has one model and ignores the field.
    data = {"funasr-server": {"model": "custom"}, "hark serve": {"model": "sensevoice"}}
    runs: list[ServerRun] = []
    for (label, cmd), port in zip(commands(model, threads, ports).items(), ports, strict=True):
        url = f"http://127.0.0.1:{port}"
        log = logs / f"{label.replace(' ', '-')}.log"
        started = time.perf_counter()
        with server(cmd, url + health[label], log, env):
            cold = time.perf_counter() - started
            print(f"{label}: healthy {cold:.1f} s after start", flush=True)
            asyncio.run(run_load(url + ROUTE, clip_paths, [name], 1, data[label]))  # warm-up
            for n in ns:
                order = [name] * (n * requests_per_client)
                result = asyncio.run(run_load(url + ROUTE, clip_paths, order, n, data[label]))
                runs.append(ServerRun(label, n, cold, result))
                print(
                    f"  N={n:<3} {result.throughput:7.2f} audio-s/s  p50 {result.percentile(50):6.1f}"
                    f" s  p95 {result.percentile(95):6.1f} s  failures {len(result.failures)}",
                    flush=True,
                )
    return runs


def markdown(runs: list[ServerRun]) -> list[str]:
    base = {r.clients: r.result.throughput for r in runs if r.server == "funasr-server"}
    lines = [
        "| server | clients | requests | audio-s/s | p50 s | p95 s | cold start s "
        "| throughput vs funasr-server |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        res = r.result
        ratio = f"{res.throughput / base[r.clients]:.2f}x" if base.get(r.clients) else "-"
        failed = f" ({len(res.failures)} failed)" if res.failures else ""
        lines.append(
            f"| {r.server} | {r.clients} | {len(res.latencies)}{failed} | {res.throughput:.2f} "
            f"| {res.percentile(50):.1f} | {res.percentile(95):.1f} | {r.cold_start_s:.1f} "
            f"| {ratio} |"
        )
    return lines

"""Inputs and load for the serving benchmark: the model, the clips, concurrent clients.

The clips are speech with pauses at 16 kHz, 5 to 60 s long, cut from one
generated recording (tests/fixtures/audio.py), and cached with the full-size
random model under ~/.cache/hark/fixtures. Every server gets the same
requests in the same order: a fixed schedule of clips dealt out to N clients,
each posting its share one after another.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hark_serving.engine.model_source import locked

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("HARK_FIXTURES_DIR", Path.home() / ".cache/hark/fixtures"))
CLIP_SECONDS = (5, 10, 20, 30, 45, 60)


# The benchmarks run the full-size model; a dry run of the GPU suite sets `tiny` here.
MODEL_SIZE = os.environ.get("HARK_BENCH_MODEL_SIZE", "full")
# Where the benchmark models run: `cpu` (default) or `cuda` (the GPU suite sets it).
DEVICE = os.environ.get("HARK_BENCH_DEVICE", "cpu")


def full_model(seed: int = 0) -> Path:
    """The full-size random SenseVoiceSmall, built once (atomic: a rename when complete).

    `HARK_BENCH_MODEL_SIZE=tiny` gives the tiny test model instead, for dry runs.
    """
    from tests.fixtures.sensevoice_model import build_model_dir

    target = CACHE / f"sensevoice-{MODEL_SIZE}-seed{seed}"
    return cached_dir(target, "model.pt", lambda tmp: build_model_dir(tmp, MODEL_SIZE, seed=seed))


def cached_dir(target: Path, last_file: str, build: Callable[[Path], object]) -> Path:
    """`target`, built once by `build(tmp)` into a temporary folder and renamed into place,
    so a folder holding `last_file` is complete; a lock keeps two builds apart."""
    with locked(CACHE / f".{target.name}.lock"):
        if not (target / last_file).is_file():
            tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
            try:
                build(tmp)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def clip_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def clips(seconds: tuple[int, ...] = CLIP_SECONDS) -> dict[str, Path]:
    """Speech clips of the given lengths at 16 kHz mono, cached."""
    from tests.fixtures import audio

    d = CACHE / "serve-bench-clips-v1"
    with locked(CACHE / ".serve-bench-clips.lock"):
        base = d / "base.wav"
        if not base.is_file():
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / ".base.tmp.wav"
            audio.long_speech(tmp, (max(CLIP_SECONDS) + 5) / 60)
            os.replace(tmp, base)
        out = {}
        for s in seconds:
            path = d / f"speech_{s:02d}s.wav"
            if not path.is_file():
                tmp = d / f".speech_{s:02d}s.tmp.wav"
                audio.run("sox", base, tmp, "trim", "0", str(s))
                os.replace(tmp, path)
            out[path.name] = path
    return out


def schedule(names: list[str], count: int, seed: int = 7) -> list[str]:
    """`count` clip names, every length equally often, in a fixed shuffled order."""
    order = [names[i % len(names)] for i in range(count)]
    random.Random(seed).shuffle(order)
    return order


@dataclass
class RunResult:
    clients: int
    wall: float = 0.0
    audio: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Audio seconds transcribed per wall-clock second."""
        return self.audio / self.wall if self.wall else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(p) - 1]


async def _client(
    http: httpx.AsyncClient,
    url: str,
    paths: list[Path],
    data: dict[str, str],
    result: RunResult,
) -> None:
    for path in paths:
        started = time.perf_counter()
        with open(path, "rb") as f:
            files = {"file": (path.name, f.read(), "audio/wav")}
        try:
            r = await http.post(url, files=files, data=data)
            ok = r.status_code == 200
            reason = f"{path.name}: HTTP {r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            ok, reason = False, f"{path.name}: {type(exc).__name__}: {exc}"
        if ok:
            result.latencies.append(time.perf_counter() - started)
            result.audio += clip_seconds(path)
        else:
            result.failures.append(reason)


async def run_load(
    url: str, clip_paths: dict[str, Path], order: list[str], clients: int, data: dict[str, str]
) -> RunResult:
    """Deal `order` round-robin to `clients` concurrent clients and time the whole run."""
    result = RunResult(clients)
    shares = [[clip_paths[n] for n in order[i::clients]] for i in range(clients)]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=None, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(_client(http, url, s, data, result) for s in shares))
        result.wall = time.perf_counter() - started
    return result


def wait_healthy(url: str, timeout: float, proc_alive: object = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(proc_alive) and not proc_alive():
            raise RuntimeError(f"the server for {url} exited before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")

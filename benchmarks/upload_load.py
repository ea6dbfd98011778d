"""Upload load against `hark serve` with the tiny model: memory, status codes, latency.

16 uploads of 100 MB of garbage and 8 WAVs of 25 minutes, all at once (about
2 GB), as a new user might send them. Prints the added peak memory of the
machine (MemTotal - MemAvailable, sampled every 100 ms, minus its level before
the load), the status codes, p95 latency, and whether the spool directory is
empty afterwards.

    PYTHONPATH=$PWD/serving:$PWD/operator:$PWD .venv/bin/python benchmarks/upload_load.py
    ... --garbage-mb 20 --wav-minutes 5    # a quicker, smaller run
    ... --retries 100                       # clients that come back after Retry-After
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("HARK_FIXTURES_DIR", Path.home() / ".cache/hark/fixtures"))


def used_bytes() -> int:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = used_bytes()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, used_bytes())


def inputs(garbage_mb: int, wav_minutes: float) -> tuple[Path, Path, Path]:
    from tests.fixtures import audio
    from tests.fixtures.sensevoice_model import build_model_dir

    CACHE.mkdir(parents=True, exist_ok=True)
    model = CACHE / "upload-load-tiny-model"
    if not (model / "model.pt").is_file():
        build_model_dir(model, "tiny", seed=0)
    garbage = CACHE / f"garbage-{garbage_mb}mb.wav"
    if not garbage.is_file() or garbage.stat().st_size != garbage_mb << 20:
        with open(garbage, "wb") as f:
            for _ in range(garbage_mb):
                f.write(os.urandom(1 << 20))
    wav = CACHE / f"speech-{wav_minutes:g}min.wav"
    if not wav.is_file():
        audio.long_speech(wav, wav_minutes)
    return model, garbage, wav


async def post(
    http: httpx.AsyncClient, url: str, path: Path, retries: int, refusals: Counter[str]
) -> tuple[int | str, float, str]:
    """One client's upload; with `retries`, a 429/503 is tried again after Retry-After."""
    started = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            with path.open("rb") as f:
                r = await http.post(url, files={"file": (path.name, f)})
        except httpx.HTTPError as exc:
            return type(exc).__name__, time.perf_counter() - started, ""
        retry = r.headers.get("retry-after", "")
        if r.status_code in (429, 503) and retry and attempt < retries:
            refusals[str(r.status_code)] += 1
            await asyncio.sleep(float(retry))
            continue
        return r.status_code, time.perf_counter() - started, retry
    raise AssertionError("unreachable")


async def load(
    url: str, files: list[Path], retries: int, refusals: Counter[str]
) -> list[tuple[int | str, float, str]]:
    limits = httpx.Limits(max_connections=len(files))
    async with httpx.AsyncClient(timeout=3600, limits=limits) as http:
        return await asyncio.gather(*(post(http, url, p, retries, refusals) for p in files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--garbage", type=int, default=16, help="garbage uploads")
    parser.add_argument("--garbage-mb", type=int, default=100)
    parser.add_argument("--wavs", type=int, default=8, help="WAV uploads")
    parser.add_argument("--wav-minutes", type=float, default=25)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--retries", type=int, default=0, help="times a client retries a 429/503 after Retry-After"
    )
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "upload-load.log")
    args = parser.parse_args()

    model, garbage, wav = inputs(args.garbage_mb, args.wav_minutes)
    spool = Path(tempfile.mkdtemp(prefix="hark-spool-"))
    env = dict(
        os.environ, RAY_USAGE_STATS_ENABLED="0", HARK_LOG_FORMAT="text", HARK_UPLOAD_DIR=str(spool)
    )
    cmd = [
        sys.executable, "-m", "hark_serving.cli.main", "serve", "--model", str(model),
        "--port", str(args.port), "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    files = [garbage] * args.garbage + [wav] * args.wavs
    total = sum(p.stat().st_size for p in files)
    print(
        f"{len(files)} uploads at once: {args.garbage} x {args.garbage_mb} MB garbage + "
        f"{args.wavs} x {args.wav_minutes:g} min WAV ({total / 1e9:.2f} GB)",
        flush=True,
    )
    with open(args.log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 600
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"hark serve exited; see {args.log}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("hark serve not ready after 600 s")
                time.sleep(1)
            time.sleep(5)  # let start-up allocations settle
            before = used_bytes()
            sampler = Sampler()
            sampler.start()
            started = time.perf_counter()
            refusals: Counter[str] = Counter()
            answers = asyncio.run(load(f"{base}/v1/transcribe", files, args.retries, refusals))
            wall = time.perf_counter() - started
            sampler.stop.set()
            sampler.join()
            ready = httpx.get(f"{base}/readyz", timeout=30).status_code
            time.sleep(2)
            left = sorted(p.name for p in spool.iterdir())
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(spool, ignore_errors=True)

    latencies = sorted(seconds for _, seconds, _ in answers)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    codes = Counter(str(code) for code, _, _ in answers)
    missing_retry = sum(1 for code, _, retry in answers if code in (429, 503) and not retry)
    print(f"added peak memory  {(sampler.peak - before) / 1e9:.2f} GB (target <= 1.5 GB)")
    print(f"status codes       {dict(sorted(codes.items()))}")
    print(f"429/503 without Retry-After: {missing_retry}")
    if args.retries:
        print(f"refusals retried   {dict(refusals)} (up to {args.retries} retries a client)")
    print(f"latency            p50 {statistics.median(latencies):.1f} s, p95 {p95:.1f} s")
    print(f"wall               {wall:.1f} s; /readyz after: {ready}; spool files left: {left}")


if __name__ == "__main__":
    main()

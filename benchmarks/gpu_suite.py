"""The GPU benchmark suite: every figure that needs a GPU, in one run, into one JSON.

Runs the existing benchmarks one after another, each in its own process with a
time budget, on the full-size random SenseVoiceSmall (same architecture and
cost as the real one):

    model        benchmarks/model_precision.py: model forward RTF by batch size,
                 float16 and bfloat16
    transcribe   benchmarks/engine_vs_funasr.py: `hark transcribe` against the
                 funasr recipe, with the CPU-side stages (decode, VAD) in audio
                 seconds per second, the stage that would starve the GPU
    serve        benchmarks/serve_throughput.py: `hark serve` at N = 1, 16, 64
                 clients against one request at a time

    python benchmarks/gpu_suite.py --out suite.json          # on a GPU machine
    python benchmarks/gpu_suite.py --dry-run --out dry.json  # on CPU, tiny sizes

`--dry-run` runs the same chain on CPU with the tiny model and few, short files,
to prove the suite works end to end without a GPU. A step that fails or runs out
of its budget is recorded with its exit status and output tail; the others run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    budget_s: float


def steps(dry_run: bool, device: str) -> list[Step]:
    """The benchmarks and their flags: GPU sizes, or tiny ones for a dry run on CPU."""
    if dry_run:
        return [
            Step("model", ["model_precision.py", "--precisions", "float32", "--lengths", "3",
                           "--batches", "1,2", "--seconds", "3", "--threads", "1"], 120),
            Step("transcribe", ["engine_vs_funasr.py", "--quick"], 240),
            Step("serve", ["serve_throughput.py", "--quick", "--clients", "1,2",
                           "--requests-per-client", "1", "--threads", "1"], 300),
        ]  # fmt: skip
    precisions = "float16,bfloat16" if device == "cuda" else "float32,bfloat16"
    serve_precision = "auto" if device == "cuda" else "float32"
    return [
        Step("model", ["model_precision.py", "--precisions", precisions,
                       "--lengths", "6,25", "--batches", "1,8,32,64", "--seconds", "60"], 120),
        Step("transcribe", ["engine_vs_funasr.py", "--quick"], 120),
        Step("serve", ["serve_throughput.py", "--clients", "1,16,64",
                       "--requests-per-client", "2", "--precision", serve_precision], 210),
    ]  # fmt: skip


PREPARE = (
    "import serve_load, engine_vs_funasr as e; serve_load.full_model(); serve_load.clips(); "
    "e.audio_files(e.QUICK_DURATIONS)"
)


def prepare(env: dict[str, str]) -> dict[str, Any]:
    """The model and the audio every step uses, built (or found cached) before the clocks."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", PREPARE], cwd=BENCH, env=env, capture_output=True, text=True
    )
    result: dict[str, Any] = {
        "rc": proc.returncode,
        "seconds": round(time.monotonic() - started, 1),
    }
    if proc.returncode:
        result["output_tail"] = _tail(proc.stdout + proc.stderr, 60)
    return result


def run_step(step: Step, env: dict[str, str], work: Path) -> dict[str, Any]:
    out = work / f"{step.name}.json"
    argv = [sys.executable, str(BENCH / step.argv[0]), *step.argv[1:], "--json", str(out)]
    print(f"== {step.name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=step.budget_s
        )
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = 124
        text = (exc.stdout or "") + (exc.stderr or "")
        text = text if isinstance(text, str) else text.decode(errors="replace")
    seconds = round(time.monotonic() - started, 1)
    print(text if rc else _tail(text, 40), flush=True)
    result: dict[str, Any] = {"rc": rc, "seconds": seconds}
    if rc == 0 and out.is_file():
        result["figures"] = json.loads(out.read_text())
    else:
        result["output_tail"] = _tail(text, 60)
    return result


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": len(os.sched_getaffinity(0)),
        "device": device,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if device == "cuda" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, few files")
    parser.add_argument("--out", type=Path, default=Path("gpu_suite.json"))
    parser.add_argument("--only", default="", help="comma-separated step names to run")
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    env = dict(
        os.environ,
        HARK_BENCH_DEVICE=device,
        HARK_BENCH_MODEL_SIZE="tiny" if args.dry_run else "full",
        RAY_USAGE_STATS_ENABLED="0",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "serving"), str(ROOT / "operator"), str(ROOT), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    wanted = set(filter(None, args.only.split(",")))
    started = time.monotonic()
    report: dict[str, Any] = {"dry_run": args.dry_run, "machine": machine(device), "steps": {}}
    with tempfile.TemporaryDirectory(prefix="hark-gpu-suite-") as tmp:
        report["prepare"] = prepare(env)
        for step in steps(args.dry_run, device) if report["prepare"]["rc"] == 0 else []:
            if wanted and step.name not in wanted:
                continue
            env["TMPDIR"] = tmp
            report["steps"][step.name] = run_step(step, env, Path(tmp))
    report["seconds"] = round(time.monotonic() - started, 1)
    report["ok"] = report["prepare"]["rc"] == 0 and all(
        s["rc"] == 0 for s in report["steps"].values()
    )
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()

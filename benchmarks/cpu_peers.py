"""Benchmark: Hark on a CPU against its peers, side by side, in one run.

Same machine, same full-size random-weight SenseVoiceSmall, same speech files,
same thread count (--threads) for every pipeline. Each batch pipeline is a
fresh process, timed whole (imports and model load included):

  sherpa-onnx float32 / int8   sherpa-onnx's VAD + SenseVoice pipeline on ONNX
                               files exported from the same weights with the
                               recipe sherpa-onnx documents (benchmarks/cpu_peers_sherpa.py)
  funasr recipe                AutoModel + silero VAD, batch_size_s=60, merge_vad,
                               merge_length_s=15 (benchmarks/engine_vs_funasr.py)
  hark auto (the default)      `hark transcribe DIR --out NEW --device cpu`; the row names the
                               precision and runtime auto chose on this CPU
  hark float32/bfloat16/int8   `hark transcribe DIR --out NEW --device cpu --precision P`
                               (int8 in ONNX Runtime, the export made by a cold run first)
  hark int8 in torch           the same with `--runtime torch --precision int8`
  hark first transcript        `hark transcribe` of one 1 s clip with the model cached: the
                               whole process, from its start to the transcript written

Printed per pipeline: wall seconds, RTF (wall / audio seconds), start (process
start to model ready) where it can be told, and the speed ratio to sherpa-onnx
int8 (the reference) and to the funasr recipe: reference wall / this wall, so
above 1 is faster. Then the servers (benchmarks/cpu_peers_serve.py):
`funasr-server` and `hark serve`, N concurrent clients each posting a ~20 s
clip to /v1/audio/transcriptions. Speed is reported, never asserted.

    python benchmarks/cpu_peers.py --json /tmp/cpu_peers.json   # ~11 min of audio, N = 1, 16
    python benchmarks/cpu_peers.py --quick                      # ~2 min, N = 1, 4
    python benchmarks/cpu_peers.py --only sherpa-int8,hark-int8

The sherpa-onnx pipelines need `pip install 'hark[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BATCH = (
    "sherpa-float32", "sherpa-int8", "recipe",
    "hark-auto", "hark-float32", "hark-bfloat16", "hark-int8", "hark-int8-torch",
    "hark-first",
)  # fmt: skip
PIPELINES = (*BATCH, "servers")
REFERENCE = "sherpa-onnx int8"
RECIPE = "funasr recipe"


@dataclass
class Row:
    pipeline: str
    wall_s: float
    start_s: float | None = None  # process start to model ready
    load_s: float | None = None  # the model load alone, where the pipeline says
    note: str = ""


def pin_funasr_threads(threads: int) -> None:
    """Every funasr AutoModel made in this process runs on `threads` threads (funasr's
    default is 4, and its VAD model resets the count), and says on stderr when ready."""
    import funasr

    base = funasr.AutoModel

    class Pinned(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: object) -> None:
            kwargs["ncpu"] = threads
            if kwargs.get("vad_model"):
                kwargs["vad_kwargs"] = {**(kwargs.get("vad_kwargs") or {}), "ncpu": threads}  # type: ignore[dict-item]
            super().__init__(**kwargs)
            print(f"READY {time.time()}", file=sys.stderr, flush=True)

    funasr.AutoModel = Pinned


def run_process(cmd: list[str], env: dict[str, str]) -> tuple[float, float | None, str]:
    """(wall seconds, seconds to the child's READY line if it printed one, stdout)."""
    launched = time.time()
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    ready = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("READY ")]
    return wall, (float(ready[0]) - launched if ready else None), proc.stdout


def run_sherpa(
    precision: str, model: Path, files: list[Path], threads: int, env: dict[str, str]
) -> Row:
    from cpu_peers_sherpa import export_onnx, silero_vad_onnx

    onnx_dir = export_onnx(model)
    name = "model.int8.onnx" if precision == "int8" else "model.onnx"
    cmd = [
        sys.executable, str(Path(__file__).with_name("cpu_peers_sherpa.py")),
        "--model", str(onnx_dir / name), "--tokens", str(onnx_dir / "tokens.txt"),
        "--vad", str(silero_vad_onnx()), "--threads", str(threads), *map(str, files),
    ]  # fmt: skip
    wall, start, out = run_process(cmd, env)
    segments = sum(json.loads(out)["segments"].values())
    return Row(f"sherpa-onnx {precision}", wall, start, note=f"{segments} VAD segments")


def run_recipe_row(
    model: Path, files: list[Path], threads: int, work: Path, env: dict[str, str]
) -> Row:
    cmd = [
        sys.executable, __file__, "--run-recipe", str(threads),
        str(model), str(work / "recipe.json"), *map(str, files),
    ]  # fmt: skip
    wall, start, _ = run_process(cmd, env)
    return Row(RECIPE, wall, start, note="start: until AutoModel (model + VAD) is built")


def run_hark(
    precision: str, model: Path, inputs: Path, out: Path, threads: int, env: dict[str, str],
    runtime: str = "auto",
) -> Row:  # fmt: skip
    cmd = [
        sys.executable, "-m", "hark_serving.cli.main", "transcribe", str(inputs),
        "--out", str(out), "--model", str(model), "--device", "cpu", "--runtime", runtime,
        "--precision", precision, "--threads", str(threads), "--json", "--quiet",
    ]  # fmt: skip
    wall, _, stdout = run_process(cmd, env)
    timings = json.loads(stdout)["timings"]
    # What ran, as each transcript records it.
    docs = [json.loads(f.read_text()) for f in out.rglob("*.json")]
    models = [d["model"] for d in docs if isinstance(d.get("model"), dict)]
    chosen = ", ".join(sorted({f"{m['dtype']} in {m.get('runtime')}" for m in models}))
    label = f"hark default ({chosen})" if precision == "auto" else f"hark {chosen or precision}"
    return Row(label, wall, timings["start_seconds"], timings["load_seconds"])


def first_transcript(source: Path, work: Path) -> Path:
    """A folder holding one 1 s clip of `source` (16 kHz mono WAV)."""
    import wave

    folder = work / "first"
    folder.mkdir(parents=True, exist_ok=True)
    with wave.open(str(source)) as src, wave.open(str(folder / "clip.wav"), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(src.getframerate()))
    return folder


def batch_table(rows: list[Row], audio_s: float) -> tuple[list[str], list[dict[str, object]]]:
    walls = {r.pipeline: r.wall_s for r in rows}

    def ratio(ref: str, wall: float) -> float | None:
        return round(walls[ref] / wall, 3) if ref in walls else None

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def times(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}x"

    lines = [
        f"| pipeline | wall s | RTF | start s | load s | speed vs {REFERENCE} "
        f"| speed vs {RECIPE} | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    figures: list[dict[str, object]] = []
    for r in rows:
        vs_ref, vs_recipe = ratio(REFERENCE, r.wall_s), ratio(RECIPE, r.wall_s)
        lines.append(
            f"| {r.pipeline} | {r.wall_s:.1f} | {r.wall_s / audio_s:.4f} | {num(r.start_s, '.1f')} "
            f"| {num(r.load_s, '.1f')} | {times(vs_ref)} | {times(vs_recipe)} "
            f"| {r.note} |"
        )
        figures.append(
            {
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(r).items()},
                "rtf": round(r.wall_s / audio_s, 5),
                "speed_vs_reference": vs_ref,
                "speed_vs_recipe": vs_recipe,
            }
        )
    return lines, figures


def main() -> None:
    # No abbreviations: funasr-server's own flags (--port) pass through to its child.
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="~2 minutes of audio, N = 1 and 4")
    parser.add_argument(
        "--only", default=",".join(PIPELINES), help=f"comma-separated, of {', '.join(PIPELINES)}"
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--ports", default="8111,8112", help="funasr-server,hark serve")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/hark-cpu-peers"))
    parser.add_argument("--run-recipe", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--run-funasr-server", type=int, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.run_recipe:  # a child: the funasr recipe on pinned threads
        threads, model, out, *files = args.run_recipe
        pin_funasr_threads(int(threads))
        from engine_vs_funasr import run_recipe

        run_recipe(Path(model), [Path(f) for f in files], Path(out))
        return
    if args.run_funasr_server:  # a child: funasr-server as shipped, on pinned threads
        pin_funasr_threads(args.run_funasr_server)
        from funasr.bin.server import main as funasr_server

        sys.argv = ["funasr-server", *rest]
        funasr_server()
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    if unknown := sorted(set(only) - set(PIPELINES)):
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(PIPELINES)}")
    if any(p.startswith("sherpa") for p in only):
        from cpu_peers_sherpa import require_bench_packages

        require_bench_packages()

    from engine_vs_funasr import FULL_DURATIONS, QUICK_DURATIONS, linked_inputs
    from serve_load import full_model

    model = full_model()
    durations = QUICK_DURATIONS if args.quick else FULL_DURATIONS
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"hark-cpu-peers-{os.getpid()}"
    files, inputs = linked_inputs(durations, work)
    audio_s = float(sum(durations))
    args.logs.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        HARK_LOG_FORMAT="text",
        # A new, empty model cache: the first int8 run exports (the cold run), the
        # next reads what it cached.
        HARK_MODEL_CACHE=str(work / "model-cache"),
        RAY_USAGE_STATS_ENABLED="0",
    )
    print(
        f"{len(files)} files, {audio_s:.0f} s of audio; model {model}; {args.threads} threads; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        flush=True,
    )

    rows: list[Row] = []
    cold_done = False
    for p in only:
        if p.startswith("sherpa"):
            rows.append(run_sherpa(p.split("-")[1], model, files, args.threads, env))
        elif p == "recipe":
            rows.append(run_recipe_row(model, files, args.threads, work, env))
        elif p.startswith("hark-"):
            precision = p.split("-")[1]
            if precision in ("int8", "auto", "first") and not cold_done:  # auto: int8 on most CPUs
                cold = run_hark("int8", model, inputs, work / "out-int8-cold", args.threads, env)
                cold.pipeline = f"{cold.pipeline}, cold"
                cold.note = "exports, checks and caches the ONNX graph"
                rows.append(cold)
                cold_done = True
            if p == "hark-first":
                clip = first_transcript(files[0], work)
                launched = time.time()
                row = run_hark("auto", model, clip, work / "out-first", args.threads, env)
                written = max(f.stat().st_mtime for f in (work / "out-first").glob("*.json"))
                row.pipeline = f"hark first transcript, 1 s clip ({row.pipeline[14:-1]})"
                row.note = (
                    f"transcript written {written - launched:.2f} s after launch; "
                    "wall: launch to the process's exit"
                )
            elif p == "hark-int8-torch":
                row = run_hark("int8", model, inputs, work / "out-int8-torch", args.threads, env,
                               runtime="torch")  # fmt: skip
                row.note = "quantizes at start (first) or reads torch's int8 weights"
            else:
                out = work / f"out-{precision}"
                row = run_hark(precision, model, inputs, out, args.threads, env)
                if "int8" in row.pipeline:
                    row.note = "reads the export the cold run cached"
            rows.append(row)
        else:
            continue
        print(f"{rows[-1].pipeline}: {rows[-1].wall_s:.1f} s", flush=True)

    server_runs = []
    if "servers" in only:
        from cpu_peers_serve import run_servers

        ns = [1, 4] if args.quick else [1, 16]
        ports = tuple(int(p) for p in args.ports.split(","))
        server_runs = run_servers(model, args.threads, ns, 2, ports, args.logs, env)  # type: ignore[arg-type]

    print(f"\n{len(files)} files, {audio_s:.0f} s of audio, {args.threads} threads\n")
    lines, figures = batch_table(rows, audio_s)
    print("\n".join(lines))
    if server_runs:
        from cpu_peers_serve import markdown

        print()
        print("\n".join(markdown(server_runs)))
    print(
        f"\n(work files in {work}; server logs in {args.logs}; {time.strftime('%Y-%m-%d %H:%M')})"
    )
    if args.json:
        doc = {
            "mode": "quick" if args.quick else "full",
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "model": str(model),
            "files": [f.name for f in files],
            "audio_s": audio_s,
            "reference": REFERENCE,
            "pipelines": figures,
            "servers": [r.summary() for r in server_runs],
        }
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()

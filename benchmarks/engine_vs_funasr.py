"""Benchmark: `hark transcribe` against the published funasr SenseVoice recipe.

Both run in fresh processes on the same files with the same full-size
random-weight SenseVoiceSmall (same architecture and cost as the real one):

  (a) recipe: funasr `AutoModel(model, vad_model=silero-vad)` and, per file,
      `generate(language="auto", use_itn=True, batch_size_s=60, merge_vad=True,
      merge_length_s=15)` (dithering off, so its output is deterministic);
  (b) hark:   `hark transcribe DIR --out OUT --model MODEL`.

Whole-process wall time (imports and model load included) gives each RTF
(wall seconds per audio second) and the speed-up. The recipe's per-segment
texts are captured while it runs, so each of Hark's segments is compared with
the recipe's output for the same span of audio. Hark's own timing fields give
the profile of where its time goes.

    python benchmarks/engine_vs_funasr.py            # ~11 min of audio
    python benchmarks/engine_vs_funasr.py --quick    # ~2 min, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from serve_load import CACHE, full_model

FULL_DURATIONS = [30, 45, 60, 90, 120, 300]  # 645 s: files of 30 s to 5 min
QUICK_DURATIONS = [30, 90]


def audio_files(durations: list[int]) -> Path:
    """Speech with pauses at 16 kHz mono, one file per duration (cached)."""
    from tests.fixtures.audio import long_speech

    d = CACHE / "bench-audio-v1"
    d.mkdir(parents=True, exist_ok=True)
    for i, seconds in enumerate(durations):
        out = d / f"talk_{seconds:03d}s.wav"
        if not out.exists():
            lang = ("en", "zh")[i % 2]
            long_speech(out, seconds / 60, lang=lang)
            subprocess.run(
                [
                    "sox",
                    str(out),
                    "-r",
                    "16000",
                    "-c",
                    "1",
                    str(out) + ".t.wav",
                    "trim",
                    "0",
                    str(seconds),
                ],
                check=True,
            )
            os.replace(str(out) + ".t.wav", out)
    return d


def linked_inputs(durations: list[int], work: Path) -> tuple[list[Path], Path]:
    """The cached files for `durations`, and a new folder `work/in` of links to them."""
    bench_dir = audio_files(durations)
    files = sorted(bench_dir / f"talk_{s:03d}s.wav" for s in durations)
    inputs = work / "in"
    inputs.mkdir(parents=True)
    for f in files:
        os.symlink(f, inputs / f.name)
    return files, inputs


def run_recipe(model: Path, files: list[Path], out: Path) -> None:
    """(a) in this process: the recipe, recording each span's text as it goes."""
    import funasr.auto.auto_model as auto_model
    from funasr import AutoModel

    spans: list[tuple[int, int]] = []
    captured: dict[str, list[list[object]]] = {}
    current = {"file": ""}
    slice_audio = auto_model.slice_padding_audio_samples

    def recording_slice(speech, lengths, segments):  # type: ignore[no-untyped-def]
        spans[:] = [(int(s[0][0]), int(s[0][1])) for s in segments]
        return slice_audio(speech, lengths, segments)

    auto_model.slice_padding_audio_samples = recording_slice
    model_obj = AutoModel(
        model=str(model),
        vad_model="silero-vad",
        vad_kwargs={"max_single_segment_time": 30000},
        # The recipe as published dithers features (random noise): its text changes
        # from run to run. Off, it is deterministic and comparable; speed is unchanged.
        frontend_conf={"dither": 0.0},
        device=os.environ.get("HARK_BENCH_DEVICE", "cpu"),  # the GPU suite sets cuda
        disable_update=True,
        disable_pbar=True,
    )
    asr_inference = model_obj.model.inference

    def recording_inference(*args, **kwargs):  # type: ignore[no-untyped-def]
        results, meta = asr_inference(*args, **kwargs)
        for span, r in zip(spans, results, strict=True):
            captured.setdefault(current["file"], []).append([span[0], span[1], r["text"]])
        return results, meta

    model_obj.model.inference = recording_inference
    for f in files:
        current["file"] = f.name
        model_obj.generate(
            input=str(f), cache={}, language="auto", use_itn=True,
            batch_size_s=60, merge_vad=True, merge_length_s=15,
        )  # fmt: skip
    out.write_text(json.dumps(captured))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stderr


def compare(
    files: list[Path], recipe: dict[str, list[list[object]]], out: Path
) -> tuple[int, int, int]:
    """(segments compared, identical, recipe spans without speech that Hark skipped).

    Hark's segments are planned again as `hark transcribe` planned them, from the
    same HARK_* settings: the recipe's spans (float32), or speech only (the
    faster precisions), whose spans rarely equal a recipe span.
    """
    from hark_serving.config import load_settings
    from hark_serving.engine.audio import decode_audio
    from hark_serving.engine.factory import segmenting
    from hark_serving.engine.vad import SileroDetector, plan_segments

    compared = identical = skipped = 0
    detector = SileroDetector()
    planning = segmenting(load_settings())
    for f in files:
        spans = {(int(a), int(b)): str(t) for a, b, t in recipe.get(f.name, [])}  # type: ignore[call-overload]
        doc = json.loads((out / f"{f.name}.json").read_text())
        with decode_audio(f) as decoded:
            plans = plan_segments(
                detector.detect(decoded.channels[0]),
                merge_seconds=planning.merge_seconds,
                max_segment_seconds=planning.max_segment_seconds,
                max_pause_seconds=planning.max_pause_seconds,
            )
        assert len(plans) == len(doc["segments"])
        for plan, seg in zip(plans, doc["segments"], strict=True):
            compared += 1
            identical += spans.get((plan.span_start_ms, plan.span_end_ms)) == seg["raw"]
        if planning.max_pause_seconds is None:  # the recipe's spans: Hark's are a subset
            skipped += len(spans) - len(plans)
    return compared, identical, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two files, ~2 minutes of audio")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--run-recipe", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_recipe:
        model, out, *files = args.run_recipe
        run_recipe(Path(model), [Path(f) for f in files], Path(out))
        return

    model = full_model()
    durations = QUICK_DURATIONS if args.quick else FULL_DURATIONS
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"hark-bench-{os.getpid()}"
    files, inputs = linked_inputs(durations, work)
    audio_seconds = float(sum(durations))
    env = {**os.environ, "HARK_LOG_LEVEL": "INFO", "HARK_LOG_FORMAT": "text"}
    env.setdefault("HARK_DEVICE", os.environ.get("HARK_BENCH_DEVICE", "cpu"))
    print(f"{len(files)} files, {audio_seconds:.0f} s of audio, model {model}", flush=True)

    recipe_out = work / "recipe.json"
    recipe_wall, _ = timed(
        [sys.executable, __file__, "--run-recipe", str(model), str(recipe_out), *map(str, files)],
        env,
    )
    print(f"recipe done in {recipe_wall:.1f} s", flush=True)
    hark_out = work / "out"
    hark = str(Path(sys.executable).with_name("hark"))
    hark_wall, log = timed(
        [hark, "transcribe", str(inputs), "--out", str(hark_out), "--model", str(model), "--quiet"],
        env,
    )
    print(f"hark done in {hark_wall:.1f} s", flush=True)

    load = re.search(r"model loaded from .* in ([0-9.]+)s", log)
    docs = [json.loads((hark_out / f"{f.name}.json").read_text()) for f in files]
    decode = sum(d["timing"]["decode_s"] for d in docs)
    vad = sum(d["timing"]["vad_s"] for d in docs)
    asr = sum(d["timing"]["asr_s"] for d in docs)
    load_s = float(load.group(1)) if load else float("nan")
    compared, identical, skipped = compare(files, json.loads(recipe_out.read_text()), hark_out)

    print()
    print(f"{'':28s}{'wall s':>9s}{'RTF':>9s}")
    print(f"{'(a) funasr recipe':28s}{recipe_wall:9.1f}{recipe_wall / audio_seconds:9.4f}")
    print(f"{'(b) hark transcribe':28s}{hark_wall:9.1f}{hark_wall / audio_seconds:9.4f}")
    print(f"speed-up (a)/(b): {recipe_wall / hark_wall:.2f}x")
    print(
        f"per-segment output: {identical}/{compared} of Hark's segments identical to the recipe's "
        f"text for the same span; {skipped} recipe spans held no speech and were not transcribed"
        " (HARK_VAD_SEGMENTS: with speech-only segments, the default but for float32, few "
        "spans are the recipe's)"
    )
    print("where hark's time goes:")
    other = hark_wall - load_s - decode - vad - asr
    for name, value in [
        ("model load", load_s),
        ("decode", decode),
        ("vad (overlaps asr)", vad),
        ("asr (model forward)", asr),
        ("imports, writing, rest", other),
    ]:
        print(f"  {name:24s}{value:8.1f} s  {100 * value / hark_wall:5.1f} %")
    # The CPU-side stages in audio seconds per second: the one that would starve a GPU.
    if decode > 0 and vad > 0:
        print(
            f"decode {audio_seconds / decode:.0f} audio-s/s, vad {audio_seconds / vad:.0f} audio-s/s"
        )
    if args.json:
        figures = {
            "files": len(files),
            "audio_s": audio_seconds,
            "recipe_wall_s": round(recipe_wall, 2),
            "hark_wall_s": round(hark_wall, 2),
            "recipe_rtf": round(recipe_wall / audio_seconds, 5),
            "hark_rtf": round(hark_wall / audio_seconds, 5),
            "speedup": round(recipe_wall / hark_wall, 3),
            "segments_identical": identical,
            "segments_compared": compared,
            "model_load_s": round(load_s, 2),
            "decode_s": round(decode, 3),
            "vad_s": round(vad, 3),
            "asr_s": round(asr, 3),
            "decode_audio_s_per_s": round(audio_seconds / decode, 1) if decode else None,
            "vad_audio_s_per_s": round(audio_seconds / vad, 1) if vad else None,
        }
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

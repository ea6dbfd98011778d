"""Where a CPU transcription's time goes, stage by stage, in audio seconds per second.

The same files `hark transcribe` would get (the benchmark speech, several files,
cached) go through the engine's own stages, each timed alone on the same
machine in one process with the full-size random SenseVoiceSmall:

    decode     PyAV to 16 kHz float samples (`engine.audio.decode_audio`)
    vad        the default silero detector, cutting the file into segments
    frontend   fbank + LFR + CMVN of each segment (funasr's WavFrontend, as
               `SenseVoice.recognize` calls it; for onnx-int8 the numpy frontend
               of `engine.features`)
    model      encoder, CTC and the greedy decode of those features, per
               precision (float32, bfloat16, int8 in torch, onnx-int8: the CPU
               default, int8 in ONNX Runtime), in the engine's batches

Each rate is audio seconds / stage seconds (speech seconds for the frontend and
the model, which see only the segments). `stage_over_model` is a stage's rate over
the model's, per precision: below 10, that stage costs more than a tenth of the
model's time, and would starve it.

    python benchmarks/cpu_stages.py [--quick] [--precisions float32,bfloat16,int8,onnx-int8]
                                    [--threads N] [--json PATH]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from engine_vs_funasr import FULL_DURATIONS, QUICK_DURATIONS, audio_files
from serve_load import CACHE, full_model

STAGES = ("decode", "vad", "frontend")


def prepared_files(files: list[Path]) -> tuple[list[Any], dict[str, float], float]:
    """Every file decoded and cut as the engine does; decode and VAD seconds; audio seconds."""
    from hark_serving.config import load_settings
    from hark_serving.engine.factory import build_detector, segmenting
    from hark_serving.engine.pipeline import prepare
    from hark_serving.options import TranscribeOptions

    settings = load_settings(vad="silero")
    detector = build_detector(settings)
    prepared, seconds, audio = [], {"decode": 0.0, "vad": 0.0}, 0.0
    for file in files:
        p = prepare(
            file,
            uri=str(file),
            options=TranscribeOptions(),
            detector=detector,
            settings=segmenting(settings),
        )
        seconds["decode"] += p.decode_s
        seconds["vad"] += p.vad_s
        audio += p.source.duration or 0.0
        prepared.append(p)
    return prepared, seconds, audio


def batches(waves: list[Any], frames: int) -> list[list[Any]]:
    """Waves in order, in batches of at most `frames` 10 ms frames, as the engine packs."""
    out: list[list[Any]] = [[]]
    used = 0
    for wave in waves:
        n = len(wave) // 160
        if out[-1] and used + n > frames:
            out.append([])
            used = 0
        out[-1].append(wave)
        used += n
    return out


def run_model(
    model_dir: Path, precision: str, threads: int, groups: list[list[Any]]
) -> dict[str, float]:
    """Seconds in the frontend and in the model over every batch, at one precision."""
    import torch

    from hark_serving.engine.recognition import DecodeRequest
    from hark_serving.engine.sensevoice import SenseVoice

    started = time.perf_counter()
    sv = SenseVoice(model_dir, device="cpu", threads=threads, precision=precision, cache=CACHE)
    load = time.perf_counter() - started
    frontend = model = 0.0
    for group in groups:
        requests = [DecodeRequest(words=True)] * len(group)
        t0 = time.perf_counter()
        with torch.inference_mode():
            sv._inputs(group, requests)  # the features alone, as recognize computes them
        t1 = time.perf_counter()
        sv.recognize(group, requests)  # features again, then encoder, CTC and decode
        t2 = time.perf_counter()
        frontend += t1 - t0
        model += max(0.0, (t2 - t1) - (t1 - t0))
    return {"load_s": load, "frontend_s": frontend, "model_s": model}


def run_onnx_model(model_dir: Path, threads: int, groups: list[list[Any]]) -> dict[str, float]:
    """As `run_model`, for the ONNX Runtime export (made first if the cache lacks it)."""
    from hark_serving.engine.onnx_export import build
    from hark_serving.engine.onnx_model import OnnxSenseVoice
    from hark_serving.engine.recognition import DecodeRequest

    build(model_dir, CACHE, threads)
    started = time.perf_counter()
    exported = build(model_dir, CACHE, threads)  # found: the start a replica makes
    sv = OnnxSenseVoice(exported.path, source=str(model_dir), threads=threads)
    load = time.perf_counter() - started
    frontend = model = 0.0
    for group in groups:
        requests = [DecodeRequest(words=True)] * len(group)
        t0 = time.perf_counter()
        sv._inputs(group, requests)  # the features alone, as recognize computes them
        t1 = time.perf_counter()
        sv.recognize(group, requests)
        t2 = time.perf_counter()
        frontend += t1 - t0
        model += max(0.0, (t2 - t1) - (t1 - t0))
    return {"load_s": load, "frontend_s": frontend, "model_s": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 2 minutes of audio")
    parser.add_argument("--precisions", default="float32,bfloat16,int8,onnx-int8")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-frames", type=int, default=None, help="frames per model batch")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    import torch

    from hark_serving.config import load_settings

    torch.set_num_threads(args.threads)
    frames = args.batch_frames or load_settings().batch_frames
    durations = QUICK_DURATIONS if args.quick else FULL_DURATIONS
    files = sorted(audio_files(durations) / f"talk_{s:03d}s.wav" for s in durations)
    model_dir = full_model()
    prepared, seconds, audio = prepared_files(files)
    waves = [w.samples() for p in prepared for w in p.segments]
    speech = sum(len(w) for w in waves) / 16000
    groups = batches(waves, frames)
    rows: dict[str, Any] = {
        "files": len(files),
        "audio_s": round(audio, 1),
        "speech_s": round(speech, 1),
        "segments": len(waves),
        "batches": len(groups),
        "threads": args.threads,
        "stages": {},
    }
    for p in prepared:
        p.audio.close()
    rate = {name: audio / seconds[name] if seconds[name] else None for name in ("decode", "vad")}
    per_precision: dict[str, Any] = {}
    for precision in args.precisions.split(","):
        if precision == "onnx-int8":
            got = run_onnx_model(model_dir, args.threads, groups)
        else:
            got = run_model(model_dir, precision, args.threads, groups)
        rate["frontend"] = speech / got["frontend_s"] if got["frontend_s"] else None
        model_rate = speech / got["model_s"] if got["model_s"] else None
        per_precision[precision] = {
            "load_s": round(got["load_s"], 2),
            "model_s": round(got["model_s"], 2),
            "model_audio_s_per_s": round(model_rate, 1) if model_rate else None,
            "frontend_s": round(got["frontend_s"], 2),
            "frontend_audio_s_per_s": round(rate["frontend"], 1) if rate["frontend"] else None,
            "stage_over_model": {
                name: round(rate[name] / model_rate, 1) if rate[name] and model_rate else None
                for name in STAGES
            },
        }
    rows["stages"] = {
        "decode": {"seconds": round(seconds["decode"], 2)},
        "vad": {"seconds": round(seconds["vad"], 2)},
        "frontend": {"seconds": per_precision[next(iter(per_precision))]["frontend_s"]},
    }
    for name in STAGES:
        rows["stages"][name]["audio_s_per_s"] = round(rate[name], 1) if rate[name] else None
    rows["model"] = per_precision

    print(f"{audio:.0f} s of audio in {len(files)} files, {len(waves)} segments, "
          f"{args.threads} threads")  # fmt: skip
    print(f"{'stage':<22}{'audio-s/s':>12}")
    for name in STAGES:
        print(f"{name:<22}{rows['stages'][name]['audio_s_per_s'] or 0:>12.1f}")
    for precision, row in per_precision.items():
        print(f"{'model ' + precision:<22}{row['model_audio_s_per_s'] or 0:>12.1f}"
              f"   stage rate / model rate: {row['stage_over_model']}")  # fmt: skip
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

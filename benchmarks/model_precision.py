"""The model alone, by precision and batch size: what a Transcriber can get out of this CPU.

One process loads the full-size random SenseVoiceSmall once per precision and
runs `SenseVoice.recognize` on equal-length cuts of the benchmark speech, so
no padding, VAD, decoding or serving is counted. Printed per precision,
segment length and batch size: throughput (audio seconds per second) and the
ratio to float32 at batch 1 for the same length, measured in this run. For
reduced precision it also prints how many batched transcripts equal the
cut's transcript alone, and how many of those equal the first precision's (the
random model's near-flat outputs make both far more fragile than a trained
model's).

    python benchmarks/model_precision.py                          # float32, bfloat16, int8
    python benchmarks/model_precision.py --threads 1 --lengths 6

int8 weights are built once into the fixtures cache (the load time printed per
precision includes it the first time, and the check against float32 every time).

Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import wave
from pathlib import Path

import numpy as np
from serve_load import CACHE, DEVICE, clips, full_model


def speech() -> np.ndarray:
    path = clips((60,))["speech_60s.wav"]
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768


def main() -> None:
    from hark_serving.engine.recognition import DecodeRequest
    from hark_serving.engine.sensevoice import SenseVoice, native_bfloat16

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precisions", default="float32,bfloat16,int8")
    parser.add_argument("--lengths", default="3,6,12,25", help="segment seconds")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=40.0, help="audio per measurement")
    parser.add_argument("--device", default=DEVICE, help="cpu or cuda (float16 runs on cuda)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    precisions = args.precisions.split(",")
    lengths = [int(x) for x in args.lengths.split(",")]
    batches = [int(x) for x in args.batches.split(",")]

    audio = speech()
    print(
        f"device {args.device}, threads {args.threads}; bfloat16 in hardware: {native_bfloat16()}",
        flush=True,
    )
    base: dict[int, float] = {}  # float32 (the first precision) at the first batch size
    reference: dict[int, list[str]] = {}  # the first precision's transcripts, cut by cut
    for precision in precisions:
        model = SenseVoice(
            full_model(), device=args.device, threads=args.threads, precision=precision, cache=CACHE
        )
        print(f"{precision:>9}  loaded in {model.load_seconds:.1f} s", flush=True)
        model.recognize([audio[: 16000 * 3]], [DecodeRequest()])  # first-call allocations
        for length in lengths:
            cuts = [audio[i * 16000 : (i + length) * 16000] for i in range(max(batches))]
            alone = [model.recognize([c], [DecodeRequest()])[0].raw for c in cuts]
            reference.setdefault(length, alone)
            agree = sum(a == b for a, b in zip(alone, reference[length], strict=True))
            for size in batches:
                batch = cuts[:size]
                reps = max(1, round(args.seconds / (length * size)))
                started = time.perf_counter()
                for _ in range(reps):
                    out = model.recognize(batch, [DecodeRequest()] * size)
                if args.device == "cuda":
                    import torch

                    torch.cuda.synchronize()  # the GPU's queue is done before the clock stops
                rate = reps * length * size / (time.perf_counter() - started)
                base.setdefault(length, rate)
                same = sum(r.raw == a for r, a in zip(out, alone, strict=False))
                rows.append(
                    {
                        "precision": precision,
                        "segment_s": length,
                        "batch": size,
                        "audio_s_per_s": round(rate, 2),
                        "rtf": round(1 / rate, 5),
                        "ratio": round(rate / base[length], 3),
                        "batched_equal_alone": same,
                    }
                )
                print(
                    f"{precision:>9}  {length:3d} s x {size:<2d} {rate:6.1f} audio-s/s"
                    f"  {rate / base[length]:5.2f}x   batched = alone {same}/{size}",
                    flush=True,
                )
            if precision != precisions[0]:
                print(f"{'':>9}  {length:3d} s: alone = {precisions[0]} {agree}/{len(cuts)}")
        del model
    print("(ratio: against the first precision at the first batch size, same segment length)")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

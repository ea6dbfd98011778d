"""The baseline server: the published SenseVoice recipe, one request at a time.

A small FastAPI app that calls funasr's `AutoModel(..., vad_model="silero-vad")
.generate(...)` per request with the options of SenseVoice's README
(`batch_size_s=60, merge_vad=True, merge_length_s=15`). The endpoint is
`async def` and calls the model directly, as SenseVoice's own `api.py` does,
so the event loop serves exactly one request at a time.

`--precision bfloat16` runs the recipe's model calls under CPU bfloat16
autocast, as `hark serve --precision bfloat16` runs its encoder: the same
arithmetic on both sides, so a comparison measures the serving alone.

    python benchmarks/serve_baseline.py --model DIR --port 8101 [--threads N] [--precision P]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, UploadFile


def build_app(model_dir: str, threads: int, precision: str = "float32") -> FastAPI:
    import torch
    from funasr import AutoModel

    model = AutoModel(
        model=model_dir,
        vad_model="silero-vad",
        device=os.environ.get("HARK_BENCH_DEVICE", "cpu"),  # the GPU suite sets cuda
        ncpu=threads,
        disable_update=True,
        disable_pbar=True,
        disable_log=True,
    )
    # funasr leaves torch at its default here (1 thread); give it the cores Hark gets.
    torch.set_num_threads(threads)
    app = FastAPI()

    def arithmetic() -> contextlib.AbstractContextManager[object]:
        if precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=getattr(torch, precision))

    @app.post("/v1/transcribe")
    async def transcribe(file: UploadFile, language: str = Form("auto")) -> dict[str, Any]:
        data = await file.read()
        suffix = Path(file.filename or "audio.wav").suffix
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            with arithmetic():
                result = model.generate(
                    input=tmp.name,
                    cache={},
                    language=language,
                    use_itn=True,
                    batch_size_s=60,
                    merge_vad=True,
                    merge_length_s=15,
                )
        return {"text": result[0]["text"] if result else ""}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.model, args.threads, args.precision),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()

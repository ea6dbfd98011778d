"""`hark serve`: the Serve application on a local Ray instance (or a cluster with --ray-address).

The same application a RayService deploys from `hark_serving.serve.app:build_app`;
the flags are `ServeSettings` fields and become the application's `args`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console

from hark_serving.cli import exits
from hark_serving.errors import HarkError
from hark_serving.options import Device, Precision, Runtime, Vad


def serve(
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local model folder or s3:// prefix.", envvar="HARK_MODEL"),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on. (default 127.0.0.1)", envvar="HARK_HOST"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on. (default 8000)", envvar="HARK_PORT")
    ] = None,
    device: Annotated[
        Device | None, typer.Option(help="auto, cpu or cuda.", envvar="HARK_DEVICE")
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            help="auto (float16 on CUDA; on a CPU int8 where it has int8 vector instructions, "
            "else float32), float32 (exact), float16, bfloat16 (2-3x float32 on CPUs with "
            "AVX512-BF16/AMX) or int8 (CPU only); reduced precision may change transcripts "
            "slightly.",
            envvar="HARK_PRECISION",
        ),
    ] = None,
    runtime: Annotated[
        Runtime | None,
        typer.Option(
            help="auto: ONNX Runtime for int8 on a CPU (exported once per model, then a start "
            "without torch), else torch. torch or onnx to choose.",
            envvar="HARK_RUNTIME",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for the model.", envvar="HARK_THREADS")
    ] = None,
    vad: Annotated[
        Vad | None, typer.Option(help="silero, fsmn or none.", envvar="HARK_VAD")
    ] = None,
    max_batch_segments: Annotated[
        int | None,
        typer.Option(help="Segments per model batch.", envvar="HARK_MAX_BATCH_SEGMENTS"),
    ] = None,
    batch_frames: Annotated[
        int | None,
        typer.Option(help="Frame budget of one model batch.", envvar="HARK_BATCH_FRAMES"),
    ] = None,
    batch_wait_seconds: Annotated[
        float | None,
        typer.Option(
            help="Wait for more segments before a batch.", envvar="HARK_BATCH_WAIT_SECONDS"
        ),
    ] = None,
    batch_max_padding: Annotated[
        float | None,
        typer.Option(
            help="Largest share of a batch that may be padding; default 0.1 on CPU, 0.5 on CUDA.",
            envvar="HARK_BATCH_MAX_PADDING",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker replicas (min = max). (HARK_WORKER_MIN/MAX_REPLICAS)"),
    ] = None,
    transcribers: Annotated[
        int | None,
        typer.Option(help="Transcriber replicas (min = max). (HARK_TRANSCRIBER_MIN/MAX_REPLICAS)"),
    ] = None,
    max_upload_bytes: Annotated[
        int | None, typer.Option(help="Largest accepted upload.", envvar="HARK_MAX_UPLOAD_BYTES")
    ] = None,
    max_audio_seconds: Annotated[
        float | None, typer.Option(help="Longest accepted audio.", envvar="HARK_MAX_AUDIO_SECONDS")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (e.g. auto) instead of starting a local one.",
            envvar="HARK_RAY_ADDRESS",
        ),
    ] = None,
    ray_num_cpus: Annotated[
        int | None, typer.Option(help="CPUs of the local Ray instance.", envvar="HARK_RAY_NUM_CPUS")
    ] = None,
) -> None:
    """Serve the HTTP API (routes in docs/cli.md) with Ray Serve until interrupted."""
    from hark_serving.logs import setup_logging
    from hark_serving.serve.settings import load_serve_settings

    console = Console(stderr=True)
    setup_logging()
    args: dict[str, Any] = {
        "model": model,
        "host": host,
        "port": port,
        "device": device,
        "precision": precision,
        "runtime": runtime,
        "threads": threads,
        "vad": vad,
        "max_batch_segments": max_batch_segments,
        "batch_frames": batch_frames,
        "batch_wait_seconds": batch_wait_seconds,
        "batch_max_padding": batch_max_padding,
        "max_upload_bytes": max_upload_bytes,
        "max_audio_seconds": max_audio_seconds,
        "ray_address": ray_address,
        "ray_num_cpus": ray_num_cpus,
    }
    for name, count in (("worker", workers), ("transcriber", transcribers)):
        if count is not None:
            args[f"{name}_min_replicas"] = args[f"{name}_max_replicas"] = count
    args = {k: v for k, v in args.items() if v is not None}
    try:
        settings = load_serve_settings(args)
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.USAGE) from None

    from hark_serving.serve.local import (
        run_until,  # imports Ray: only once the flags are known good
    )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def ready(url: str) -> None:
        console.print(f"hark is serving on {url} (Ctrl-C to stop)", highlight=False)

    try:
        run_until(stop, settings, args, on_ready=ready)
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.for_error(exc)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""`hark transcribe PATH... --out DEST`: the embedded default, in-process on one machine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from hark_serving.errors import HarkError

EXIT_FAILURES = 1
EXIT_USAGE = 2


def transcribe(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Audio files, folders (walked) or s3://bucket/prefix/ URIs.", show_default=False
        ),
    ],
    out: Annotated[
        str, typer.Option("--out", "-o", help="Destination folder or s3://bucket/prefix/.")
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local model folder or s3:// prefix. [env HARK_MODEL]"),
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="auto, zh, en, yue, ja or ko. [env HARK_LANGUAGE]")
    ] = None,
    itn: Annotated[
        bool | None,
        typer.Option("--itn/--no-itn", help="Inverse text normalisation (digits, punctuation)."),
    ] = None,
    vad: Annotated[str | None, typer.Option(help="silero, fsmn or none. [env HARK_VAD]")] = None,
    channels: Annotated[
        str | None, typer.Option(help="mix, or split: one transcript per channel (stereo calls).")
    ] = None,
    formats: Annotated[
        str, typer.Option(help="Comma-separated subset of json,srt,vtt,txt (json always written).")
    ] = "json",
    timestamps: Annotated[
        str | None, typer.Option(help="segment, or word for per-word times.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda. [env HARK_DEVICE]")] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto (float16 on CUDA, float32 on CPU), float32, float16 or bfloat16: 2-3x "
            "faster on CPUs with AVX512-BF16/AMX, transcripts may differ slightly. "
            "[env HARK_PRECISION]"
        ),
    ] = None,
    max_segment_seconds: Annotated[
        float | None,
        typer.Option(help="Split speech longer than this. [env HARK_MAX_SEGMENT_SECONDS]"),
    ] = None,
    batch_frames: Annotated[
        int | None, typer.Option(help="Frame budget of one model batch. [env HARK_BATCH_FRAMES]")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for inference.")] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            help="Glob of files to take (repeatable); default: audio and video extensions."
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Glob of files to leave out (repeatable).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Transcribe again even when a current output exists.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    roles: Annotated[
        str | None,
        typer.Option(
            help="Role of each channel with --channels split (default agent,customer); "
            "on mix, the one speaker's role, which adds a call report."
        ),
    ] = None,
    non_talk_min_seconds: Annotated[
        float, typer.Option(help="Shortest silence the call report lists as non-talk.")
    ] = 2.0,
    categories: Annotated[
        str | None, typer.Option(help="YAML file of call categories to match (and alert on).")
    ] = None,
    qa_report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Write the QA report (calls.csv, report.json, report.html) to DEST/_hark/.",
        ),
    ] = False,
    metadata_pattern: Annotated[
        str | None,
        typer.Option(
            help="Metadata from input paths for the report, e.g. '{date}/{agent}/{call_id}.wav'."
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Post alerts here, signed with HARK_WEBHOOK_SECRET. [env HARK_WEBHOOK_URL]"
        ),
    ] = None,
) -> None:
    """Transcribe audio into hark.transcript/v1 JSON (and SRT, VTT, TXT) in-process."""
    from hark_serving.cli.analytics import call_analytics, options_of
    from hark_serving.cli.progress import RunProgress
    from hark_serving.config import load_settings
    from hark_serving.engine.embedded import Outcome
    from hark_serving.logs import setup_logging
    from hark_serving.options import parse_formats
    from hark_serving.runs.local import Failure, gather_inputs, plan, transcribe_refs
    from hark_serving.storage.locations import output_location

    console = Console(stderr=True)
    setup_logging(json_logs=False)
    try:
        settings = load_settings(
            model=model,
            language=language,
            use_itn=itn,
            vad=vad,
            channels=channels,
            timestamps=timestamps,
            device=device,
            precision=precision,
            max_segment_seconds=max_segment_seconds,
            batch_frames=batch_frames,
            threads=threads,
            webhook_url=webhook_url,
        )
        wanted = parse_formats(formats)
        analytics = call_analytics(settings, categories, qa_report, metadata_pattern, console)
        options = options_of(settings, roles, non_talk_min_seconds, analytics.wanted)
        store = settings.s3_store()
        destination = output_location(out, store)
        refs = gather_inputs(paths, store, include or [], exclude or [])
        planned = plan(refs, destination, wanted, overwrite)
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None

    if not refs:
        console.print(f"[yellow]no audio files found under {', '.join(paths)}[/yellow]")
        raise typer.Exit(EXIT_USAGE)
    console.print(
        f"{len(refs)} file(s): {len(planned.todo)} to transcribe, "
        f"{len(planned.skipped)} already current"
        + (f", {len(planned.rerendered)} re-rendered" if planned.rerendered else ""),
        highlight=False,
        soft_wrap=True,
    )
    if not planned.todo:
        analytics.write_report(destination, refs)
        return

    from hark_serving.engine.factory import build_engine

    try:
        with console.status(f"loading {settings.model} ..."):
            engine = build_engine(settings)
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None

    with RunProgress(console, len(planned.todo), enabled=not quiet) as bar:

        def on_outcome(outcome: Outcome, failure: Failure | None) -> None:
            bar.file_done()
            if failure is not None:
                bar.note(f"[red]✗[/red] {failure.uri}: {failure.code}: {failure.message}")

        report = transcribe_refs(
            engine, planned.todo, destination, options, wanted, store,
            on_outcome=on_outcome, on_audio=bar.audio,
            finish=lambda ref, t: analytics.calls.finish(destination, ref, t),
        )  # fmt: skip
    analytics.write_report(destination, refs)

    console.print(
        f"done: {report.succeeded} transcribed ({report.audio_seconds:.1f} s of audio), "
        f"{len(planned.skipped)} skipped, {len(report.failures)} failed → {out}",
        highlight=False,
        soft_wrap=True,
    )
    if report.failures:
        console.print("[red]failed files:[/red]")
        for f in report.failures:
            console.print(f"  {f.uri}: {f.code}: {f.message}", highlight=False, soft_wrap=True)
        sys.stderr.flush()
        raise typer.Exit(EXIT_FAILURES)

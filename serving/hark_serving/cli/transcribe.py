"""`hark transcribe PATH... --out DEST`: the embedded default, in-process on one machine.

Every flag that overrides a setting names its `HARK_*` variable (typer reads it
too, so `--help` lists it); the values then go through the one settings object.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from hark_serving.cli import exits
from hark_serving.errors import HarkError, InvalidOption
from hark_serving.options import (
    Channels,
    Device,
    Language,
    Precision,
    Runtime,
    Segments,
    Timestamps,
    Vad,
)

if TYPE_CHECKING:
    from hark_serving.engine.embedded import Engine

STDOUT = "-"


def _fail(console: Console, exc: HarkError, as_json: bool) -> NoReturn:
    from hark_serving.cli.summary import error_summary

    code = exits.for_error(exc)
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(error_summary(exc, code)))
    raise typer.Exit(code)


def stdout_format(formats: str) -> str:
    """`--out -` prints one transcript in one format: the one `--formats` names."""
    from hark_serving.options import parse_formats

    parse_formats(formats)  # names a bad format first
    named = [f.strip().lower() for f in formats.split(",") if f.strip()]
    if len(named) != 1:
        raise InvalidOption(
            f"--out - prints one format, but --formats names {', '.join(named) or 'none'}; "
            "give one, e.g. --formats txt"
        )
    return named[0]


def transcribe(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Audio files, folders (walked), s3://bucket/prefix/ URIs, or - for standard input.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out", "-o", help="Destination folder, s3://bucket/prefix/, or - for standard output."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local model folder or s3:// prefix.", envvar="HARK_MODEL"),
    ] = None,
    language: Annotated[
        Language | None, typer.Option(help="Spoken language, or auto.", envvar="HARK_LANGUAGE")
    ] = None,
    itn: Annotated[
        bool | None,
        typer.Option(
            "--itn/--no-itn",
            help="Inverse text normalisation (digits, punctuation).",
            envvar="HARK_USE_ITN",
            show_default=False,
        ),
    ] = None,
    vad: Annotated[Vad | None, typer.Option(help="Speech detector.", envvar="HARK_VAD")] = None,
    vad_segments: Annotated[
        Segments | None,
        typer.Option(
            help="speech: only speech goes to the model; recipe: funasr's spans, pauses "
            "included (text identical to funasr's); auto: recipe with --precision float32.",
            envvar="HARK_VAD_SEGMENTS",
        ),
    ] = None,
    channels: Annotated[
        Channels | None,
        typer.Option(help="mix, or split: one transcript per channel.", envvar="HARK_CHANNELS"),
    ] = None,
    formats: Annotated[
        str,
        typer.Option(
            help="Comma-separated subset of json,srt,vtt,txt (json is always written to a "
            "folder; with --out - name exactly one)."
        ),
    ] = "json",
    timestamps: Annotated[
        Timestamps | None,
        typer.Option(help="segment, or word for per-word times too.", envvar="HARK_TIMESTAMPS"),
    ] = None,
    device: Annotated[
        Device | None, typer.Option(help="auto: cuda when usable.", envvar="HARK_DEVICE")
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            help="auto: float16 on CUDA; on a CPU int8 (checked against float32 at load) where "
            "the CPU has int8 vector instructions (AVX2, ARM), else float32. float32 is exact and reproducible; "
            "bfloat16 is 2-3x float32 on CPUs with AVX512-BF16/AMX; int8 and bfloat16 may "
            "change transcripts slightly.",
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
    max_segment_seconds: Annotated[
        float | None,
        typer.Option(help="Split speech longer than this.", envvar="HARK_MAX_SEGMENT_SECONDS"),
    ] = None,
    batch_frames: Annotated[
        int | None,
        typer.Option(help="Frame budget of one model batch.", envvar="HARK_BATCH_FRAMES"),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for inference.", envvar="HARK_THREADS")
    ] = None,
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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print a machine-readable run summary on standard output at the end."
        ),
    ] = False,
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
            help="Post alerts here, signed with HARK_WEBHOOK_SECRET.", envvar="HARK_WEBHOOK_URL"
        ),
    ] = None,
) -> None:
    """Transcribe audio into hark.transcript/v1 JSON (and SRT, VTT, TXT) in-process."""
    from hark_serving.cli.summary import process_seconds, run_summary
    from hark_serving.config import load_settings
    from hark_serving.engine.embedded import Outcome
    from hark_serving.engine.pending import PendingRecognizer
    from hark_serving.logs import setup_logging
    from hark_serving.options import parse_formats
    from hark_serving.runs.local import (
        Failure,
        Planned,
        RunReport,
        gather_inputs,
        plan,
        transcribe_refs,
        transcribe_to_stream,
    )
    from hark_serving.storage.locations import output_location
    from hark_serving.storage.uris import is_s3
    from hark_serving.transcript.schema import validator

    started = time.perf_counter()
    console = Console(stderr=True)
    setup_logging(json_logs=False)
    to_stdout = out == STDOUT
    try:
        if to_stdout and as_json:
            raise InvalidOption("--json and --out - both print to standard output; choose one")
        settings = load_settings(
            model=model,
            language=language,
            use_itn=itn,
            vad=vad,
            vad_segments=vad_segments,
            channels=channels,
            timestamps=timestamps,
            device=device,
            precision=precision,
            runtime=runtime,
            max_segment_seconds=max_segment_seconds,
            batch_frames=batch_frames,
            threads=threads,
            webhook_url=webhook_url,
        )
        wanted = parse_formats(formats)
        # A store (boto3, a client) only when an input or the destination is in S3.
        store = settings.s3_store() if any(map(is_s3, [*paths, out])) else None
        refs = gather_inputs(paths, store, include or [], exclude or [])
        if to_stdout:
            fmt = stdout_format(formats)
            if len(refs) > 1:
                raise InvalidOption(
                    f"--out - prints one transcript, but the inputs hold {len(refs)} files; "
                    "give one file, or a destination folder"
                )
            planned = Planned(todo=list(refs))
        else:
            destination = output_location(out, store)
            planned = plan(refs, destination, wanted, overwrite)
    except HarkError as exc:
        _fail(console, exc, as_json)

    if not refs:
        _fail(console, InvalidOption(f"no audio files found under {', '.join(paths)}"), as_json)
    engine: Engine | None = None
    pending: PendingRecognizer | None = None
    if planned.todo:
        from hark_serving.engine.factory import build_engine

        # The model loads on a thread (engine.pending) from here, in native code
        # that leaves the rest of the start (imports, options, the first files'
        # decoding) to the other core; a load that fails ends the run with its error.
        try:
            engine = build_engine(settings, clock=process_seconds)
        except HarkError as exc:
            _fail(console, exc, as_json)
        assert isinstance(engine.recognizer, PendingRecognizer)
        pending = engine.recognizer
    from hark_serving.cli.analytics import call_analytics, options_of
    from hark_serving.cli.progress import RunProgress

    try:
        analytics = call_analytics(settings, categories, qa_report, metadata_pattern, console)
        options = options_of(settings, roles, non_talk_min_seconds, analytics.wanted)
    except HarkError as exc:
        if pending is not None:
            pending.settle()  # no exit while the load runs in native code
        _fail(console, exc, as_json)
    if not to_stdout:
        console.print(
            f"{len(refs)} file(s): {len(planned.todo)} to transcribe, "
            f"{len(planned.skipped)} already current"
            + (f", {len(planned.rerendered)} re-rendered" if planned.rerendered else ""),
            highlight=False,
            soft_wrap=True,
        )

    def summary(
        report: Any, load_seconds: float, start_seconds: float, code: int
    ) -> dict[str, Any]:
        return run_summary(
            destination=out, files=len(refs), transcribed=report.succeeded,
            skipped=len(planned.skipped), rerendered=len(planned.rerendered),
            failures=report.failures, outputs=planned.outputs + report.outputs, audio_seconds=report.audio_seconds,
            load_seconds=load_seconds, start_seconds=start_seconds,
            total_seconds=time.perf_counter() - started, exit_code=code,
        )  # fmt: skip

    if engine is None or pending is None:
        if not to_stdout:
            analytics.write_report(destination, refs)
        if as_json:
            typer.echo(json.dumps(summary(RunReport(), 0.0, 0.0, exits.OK)))
        return

    if not (quiet or to_stdout):
        console.print(f"loading {settings.model} ...", highlight=False, soft_wrap=True)
    validator()  # compiled while the model loads, not after the first transcript

    try:
        with RunProgress(console, len(planned.todo), enabled=not (quiet or to_stdout)) as bar:

            def on_outcome(outcome: Outcome, failure: Failure | None) -> None:
                bar.file_done()
                if failure is not None:
                    bar.note(f"[red]✗[/red] {failure.uri}: {failure.code}: {failure.message}")

            if to_stdout:
                report = transcribe_to_stream(
                    engine, planned.todo, options, fmt, store, sys.stdout.write,
                    on_outcome=on_outcome, on_audio=bar.audio,
                )  # fmt: skip
                sys.stdout.flush()
            else:
                report = transcribe_refs(
                    engine, planned.todo, destination, options, wanted, store,
                    on_outcome=on_outcome, on_audio=bar.audio,
                    finish=lambda ref, t: analytics.calls.finish(destination, ref, t),
                )  # fmt: skip
    except HarkError as exc:
        if exc is not pending.load_error():  # an error of the run itself, not of the load
            raise
        _fail(console, exc, as_json)
    finally:
        if sys.exc_info()[0] is not KeyboardInterrupt:  # Ctrl-C does not wait for an export
            pending.settle()
    if not to_stdout:
        analytics.write_report(destination, refs)
    pending.wait()  # loaded: every file that reached the model waited for it
    load_seconds = pending.load_seconds or 0.0
    start_seconds = pending.ready_at or 0.0  # the start a user waits through, imports and all

    code = exits.FAILURES if report.failures else exits.OK
    console.print(
        f"done: {report.succeeded} transcribed ({report.audio_seconds:.1f} s of audio), "
        f"{len(planned.skipped)} skipped, {len(report.failures)} failed → {out} "
        f"(model ready {start_seconds:.1f} s after start, {load_seconds:.1f} s to load)",
        highlight=False,
        soft_wrap=True,
    )
    if report.failures:
        console.print("[red]failed files:[/red]")
        for f in report.failures:
            console.print(f"  {f.uri}: {f.code}: {f.message}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(summary(report, load_seconds, start_seconds, code)))
    sys.stderr.flush()
    if code:
        raise typer.Exit(code)

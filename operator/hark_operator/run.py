"""`hark run -f job.yaml`: a TranscriptionJob on this machine, without a cluster.

The manifest is defaulted and validated with the CRD's own schema and the
same models the operator uses, then the same planner, dispatcher and
reporter run it against an in-process processor (the model loaded here).
Outputs, `.error.json` files and the job summary land in S3 exactly as the
operator would write them. A Batch job ends when done (exit 1 if any file
failed); a Watch job runs until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from hark_operator.errors import ManifestError, OperatorError
from hark_operator.resource.models import JobRef, JobSpec, JobStatus
from hark_serving.cli import exits
from hark_serving.errors import HarkError
from hark_serving.options import Device, Vad

if TYPE_CHECKING:
    from hark_operator.jobs.lifecycle import JobRunner
    from hark_serving.config import Settings

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


class MemoryStatus:
    """The status kept in memory (`reporter.StatusWriter` without an API server)."""

    def __init__(self) -> None:
        self.status = JobStatus()
        self.version = 0

    async def read(self) -> tuple[JobStatus, str | None]:
        return self.status, str(self.version)

    async def write(self, status: JobStatus, resource_version: str | None) -> str | None:
        self.status, self.version = status, self.version + 1
        return str(self.version)


class ConsoleEvents:
    """Events printed above the progress bar."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def event(self, type_: str, reason: str, message: str) -> None:
        style = "yellow" if type_ == "Warning" else "cyan"
        self.console.print(
            f"[{style}]{reason}[/{style}] {message}", highlight=False, soft_wrap=True
        )


async def _progress(runner: JobRunner, bar: Progress, task: TaskID, stop: asyncio.Event) -> None:
    while not stop.is_set():
        c = runner.observation().counts
        bar.update(
            task,
            total=c.total or None,
            completed=c.succeeded + c.failed,
            detail=f"{c.in_flight} in flight, {c.failed} failed, {runner.phase}",
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def run_job(
    spec: JobSpec, ref: JobRef, console: Console, *, settings: Settings, quiet: bool = False
) -> JobStatus:
    """Run one job in-process until it finishes (Batch) or is cancelled (Watch)."""
    from hark_operator.clients.inprocess import InProcessProcessor
    from hark_operator.clients.storage import ErrorRecorder, Stores
    from hark_operator.jobs.dispatcher import Dispatcher
    from hark_operator.jobs.env import JobEnv, utcnow
    from hark_operator.jobs.lifecycle import JobRunner
    from hark_operator.jobs.reporter import Reporter

    stores = Stores(settings.profiles())
    processor = InProcessProcessor(settings, workers=spec.parallelism, profiles=stores.profiles)
    with console.status(f"loading {settings.model} ..."):
        await asyncio.get_running_loop().run_in_executor(None, processor.load)
    dispatcher = Dispatcher(
        processor, max_in_flight=spec.parallelism, item_timeout=24 * 3600.0,
        recorder=ErrorRecorder(stores),
    )  # fmt: skip
    dispatcher.start()
    memory = MemoryStatus()
    runner = JobRunner(
        ref,
        lambda: spec,
        Reporter(memory, ConsoleEvents(console)),
        JobEnv(dispatcher, stores, status_interval=0.5),
        created=utcnow(),
    )
    columns = (
        TextColumn("[bold]files"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
    )  # fmt: skip
    stop = asyncio.Event()
    with Progress(*columns, console=console, disable=quiet) as bar:
        task = bar.add_task("files", total=None, detail="scanning")
        shower = asyncio.create_task(_progress(runner, bar, task, stop))
        try:
            status = await runner.run()
            c = status.counts  # the last word, not the last poll
            bar.update(task, total=c.total, completed=c.succeeded + c.failed, detail=status.phase)
        finally:
            stop.set()
            await shower
            await dispatcher.close()
            await processor.aclose()
            stores.close()
    return status


@app.command(epilog=exits.EPILOG)
def run(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="TranscriptionJob manifest (YAML).", exists=True)
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local model folder or s3:// prefix.", envvar="HARK_MODEL"),
    ] = None,
    device: Annotated[
        Device | None, typer.Option(help="auto: cuda when usable.", envvar="HARK_DEVICE")
    ] = None,
    vad: Annotated[Vad | None, typer.Option(help="Speech detector.", envvar="HARK_VAD")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a TranscriptionJob manifest on this machine (no cluster needed)."""
    from hark_operator.resource.crd import load_manifest
    from hark_serving.config import load_settings
    from hark_serving.logs import setup_logging

    console = Console(stderr=True)
    setup_logging(json_logs=False)
    try:
        manifest, spec = load_manifest(file.read_text(), str(file))
        settings = load_settings(model=model, device=device, vad=vad)
    except (ManifestError, HarkError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.USAGE) from None
    meta = manifest["metadata"]
    ref = JobRef(namespace=meta.get("namespace") or "default", name=meta["name"])
    try:
        status = asyncio.run(run_job(spec, ref, console, settings=settings, quiet=quiet))
    except KeyboardInterrupt:
        console.print("stopped; outputs written so far are kept")
        raise typer.Exit(exits.INTERRUPTED) from None
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.for_error(exc)) from None
    except OperatorError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.USAGE) from None
    c = status.counts
    console.print(
        f"{status.phase}: {c.succeeded}/{c.total} transcribed ({c.skipped} already current), "
        f"{c.failed} failed, {status.audio_seconds:.1f} s of audio; summary {status.summary_uri}",
        highlight=False,
        soft_wrap=True,
    )
    for failure in status.recent_failures:
        console.print(
            f"  [red]✗[/red] {failure.key}: {failure.reason}: {failure.message}", highlight=False
        )
    sys.stderr.flush()
    if status.phase == "Failed" or c.failed:
        raise typer.Exit(exits.FAILURES)


def main(args: Sequence[str]) -> None:
    """Entry from `hark run ...` (hark_serving.cli.main)."""
    typer.main.get_command(app).main(args=list(args), prog_name="hark run")

"""Progress display for long runs: files done of total, audio transcribed, speed."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """A files bar plus a live line of audio seconds and real-time factor."""

    def __init__(self, console: Console, total_files: int, *, enabled: bool = True) -> None:
        self.console = console
        self.audio_seconds = 0.0
        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[audio]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task("files", total=total_files, audio="")

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def audio(self, seconds: float) -> None:
        self.audio_seconds += seconds
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        self.progress.update(
            self.task,
            audio=f"{_hms(self.audio_seconds)} speech, {self.audio_seconds / elapsed:.1f}x real time",
        )

    def file_done(self) -> None:
        self.progress.advance(self.task)

    def note(self, message: str) -> None:
        self.progress.console.print(message, highlight=False, soft_wrap=True)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

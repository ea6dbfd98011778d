"""The `--json` run summary of `hark transcribe`: plain data for scripts, one JSON object."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from hark_serving.errors import HarkError

SUMMARY_VERSION = "hark.run-summary/v1"
_IMPORTED = time.perf_counter()


def process_seconds() -> float:
    """Seconds since this process started: from /proc on Linux (interpreter start and every
    import included), else since this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22 (starttime, in clock ticks after boot) counts from after the
            # ")" that ends the command name, which may itself hold spaces.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def run_summary(
    *,
    destination: str,
    files: int,
    transcribed: int,
    skipped: int,
    rerendered: int,
    failures: Sequence[Any],
    outputs: Sequence[str],
    audio_seconds: float,
    load_seconds: float,
    start_seconds: float,
    total_seconds: float,
    exit_code: int,
) -> dict[str, Any]:
    """What one run did: counts, the files written, each failure, and where time went.

    `load_seconds`: building the model; `start_seconds`: from the process's start until
    the model was ready (0 when nothing needed it); `total_seconds`: the command's run."""
    return {
        "version": SUMMARY_VERSION,
        "exit_code": exit_code,
        "destination": destination,
        "counts": {
            "files": files,
            "transcribed": transcribed,
            "skipped": skipped,
            "rerendered": rerendered,
            "failed": len(failures),
        },
        "outputs": list(outputs),
        "failures": [{"uri": f.uri, "code": f.code, "message": f.message} for f in failures],
        "audio_seconds": round(audio_seconds, 3),
        "timings": {
            "load_seconds": round(load_seconds, 3),
            "start_seconds": round(start_seconds, 3),
            "total_seconds": round(total_seconds, 3),
        },
    }


def error_summary(error: HarkError, exit_code: int) -> dict[str, Any]:
    """A run that stopped before transcribing (bad flag, model, storage)."""
    return {
        "version": SUMMARY_VERSION,
        "exit_code": exit_code,
        "error": {"code": error.code, "message": str(error)},
    }

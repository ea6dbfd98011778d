"""The `--json` run summary of `hark transcribe`: plain data for scripts, one JSON object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hark_serving.errors import HarkError

SUMMARY_VERSION = "hark.run-summary/v1"


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
    total_seconds: float,
    exit_code: int,
) -> dict[str, Any]:
    """What one run did: counts, the files written, each failure, and where time went."""
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

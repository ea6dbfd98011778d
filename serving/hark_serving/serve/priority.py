"""A local Ray's worker processes at the model's own priority.

A local `hark serve` starts Ray's workers at niceness 0, not Ray's default of
15, so the model competes with the rest of the machine as any foreground server
does. The Worker's preparing threads lower themselves below it
(`hark_serving.engine.priority`).
"""

from __future__ import annotations

import os

# Ray's own knob for the niceness of the worker processes it starts (default 15).
RAY_WORKER_NICENESS = "RAY_worker_niceness"


def local_worker_niceness() -> None:
    """Before starting a local Ray: its workers at niceness 0 unless the user chose."""
    os.environ.setdefault(RAY_WORKER_NICENESS, "0")

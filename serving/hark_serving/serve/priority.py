"""CPU priority on a shared machine: the model's threads first.

On a CPU, the model splits every matrix product over its threads and waits
for the slowest. When another thread of the same priority takes a core, one
model thread is descheduled and the others wait for it. On two cores, one
busy thread of equal priority cut the model's throughput from 57 to 16
audio-s/s; at niceness 15 against the model's 0, it made no difference.

So the Worker's decode and VAD threads run at the lowest priority: they get
whatever the model leaves, which is plenty, because they need about 1% of the
audio's duration. Linux keeps a niceness per thread, and anyone may raise
their own, so this needs no privilege. The model keeps the priority its
process started with. A local `hark serve` starts Ray's workers at niceness
0, not Ray's default of 15, so the model competes with the rest of the
machine as any foreground server does.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

LOWEST = 19
# Ray's own knob for the niceness of the worker processes it starts (default 15).
RAY_WORKER_NICENESS = "RAY_worker_niceness"


def lower_this_thread() -> None:
    """Give the calling thread the lowest CPU priority (no-op where there is none)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST)
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids it
        log.debug("cannot lower the priority of a background thread: %s", exc)


def background_pool(max_workers: int, name: str) -> ThreadPoolExecutor:
    """A thread pool for CPU work that must never slow the model down."""
    return ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix=name, initializer=lower_this_thread
    )


def local_worker_niceness() -> None:
    """Before starting a local Ray: its workers at niceness 0 unless the user chose."""
    os.environ.setdefault(RAY_WORKER_NICENESS, "0")

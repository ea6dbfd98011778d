"""CPU priority on a shared machine: the model's threads first, preparation still fed.

On a CPU, the model splits every matrix product over its threads and waits
for the slowest. When another thread of the same priority takes a core, one
model thread is descheduled and the others wait for it. On two cores, one
busy thread of equal priority cut the model's throughput from 57 to 16
audio-s/s; at niceness 15 against the model's 0, it made no difference.

So the threads that decode and segment files (the Serve Worker's, the
embedded engine's) run at niceness 10: the model comes
first, and they need about 1% of the audio's duration. Not lower: at 19 a
thread gets about 1.5% of a busy core, too little to keep a model that runs
two passes at once (int8 on a CPU) fed. The Worker then prepared new requests
only when the model ran dry, in bursts, and the requests of a burst came
back together: at 16 clients, p95 20 s against 14 s at niceness 10, the same
throughput (float32 alike at 10 and 19). Linux keeps a niceness per thread,
and anyone may raise their own, so this needs no privilege. The model keeps
the priority its process started with.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

BACKGROUND = 10  # the niceness of preparing threads (the model keeps its own)


def lower_this_thread() -> None:
    """Give the calling thread the background CPU priority (no-op where there is none)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND)
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids it
        log.debug("cannot lower the priority of a background thread: %s", exc)


def background_pool(max_workers: int, name: str) -> ThreadPoolExecutor:
    """A thread pool for CPU work that must never slow the model down."""
    return ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix=name, initializer=lower_this_thread
    )

"""The request id of the work in progress, stamped on every log record of a replica.

The Ingress takes the id from `X-Request-ID` (or makes one), answers with it,
and passes it to the Worker; each sets it here, so JSON log lines from any
module carry `request_id` without threading it through every call.
Threads started with `run_in_context` see the id of the task that started them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from hark_serving.logs import setup_logging

T = TypeVar("T")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("hark_request_id", default="")


def set_request_id(rid: str) -> None:
    """Make `rid` the request id of the current task (and threads it starts)."""
    request_id.set(rid)


def new_request_id(given: str | None = None) -> str:
    """The client's id when it is sane (printable, short), else a fresh one."""
    if given and len(given) <= 128 and given.isprintable() and " " not in given:
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid and not hasattr(record, "request_id"):
            record.request_id = rid
        return True


def configure_replica_logging() -> None:
    """One logging set-up per replica process: `hark_serving.logs` plus request ids."""
    setup_logging()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())


async def run_in_context(executor: Executor, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """`fn(*args, **kw)` on `executor`, seeing this task's context variables."""
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kw)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


async def run_owned(
    executor: Executor, fn: Callable[..., T], close: Callable[[T], object], *args: Any
) -> T:
    """`run_in_context` for a call whose result must be closed: a lease, temp files.

    A request is cancelled when its client goes away (Serve cancels on disconnect).
    A thread cannot be interrupted, so a cancel that lands while `fn` runs would
    drop what it returns, unclosed: a lease renewed by nobody's request, spill
    files never deleted. Here the result still gets `close`d, on `executor`, once
    `fn` returns.
    """
    running = asyncio.ensure_future(run_in_context(executor, fn, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        loop = asyncio.get_running_loop()

        def close_late(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                loop.run_in_executor(executor, close, done.result())

        running.add_done_callback(close_late)
        raise

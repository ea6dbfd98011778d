"""Work handed to a thread pool by a request that is then cancelled."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hark_serving.serve.context import run_owned


def test_a_result_that_arrives_after_the_cancel_is_still_closed() -> None:
    """The client went away while the thread made a temp file: the file is removed."""
    started, finish = threading.Event(), threading.Event()
    made: list[Path] = []

    def make() -> Path:
        started.set()
        finish.wait(5)
        fd, name = tempfile.mkstemp(prefix="hark-test-")
        os.close(fd)
        made.append(Path(name))
        return Path(name)

    async def main(pool: ThreadPoolExecutor) -> None:
        task = asyncio.ensure_future(run_owned(pool, make, Path.unlink))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        finish.set()  # the thread returns only now, after its caller gave up
        for _ in range(100):
            if made and not made[0].exists():
                return
            await asyncio.sleep(0.02)

    with ThreadPoolExecutor(2) as pool:
        asyncio.run(main(pool))
    assert len(made) == 1 and not made[0].exists()


def test_a_result_that_arrives_in_time_is_the_callers_to_close() -> None:
    fd, name = tempfile.mkstemp(prefix="hark-test-")
    os.close(fd)

    with ThreadPoolExecutor(1) as pool:
        got = asyncio.run(run_owned(pool, Path, Path.unlink, name))
    assert got == Path(name) and got.exists()
    got.unlink()

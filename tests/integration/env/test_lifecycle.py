"""`python -m tests.env up` runs beside the session env and leaves nothing behind."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.env import versions
from tests.env.environment import Environment
from tests.env.services import port_is_free

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _process_groups() -> dict[int, list[int]]:
    """pgid -> pids of every live process, read from /proc."""
    groups: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue  # a zombie holds no port and runs nothing
        groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Lines of the process's output as they come (None at EOF), read by a thread."""
    out: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                out.put(line)
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_for_line(lines: queue.Queue[str | None], word: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"`up` exited before printing {word!r}:\n{''.join(seen)}")
        seen.append(line)
        if word in line:
            return seen
    raise AssertionError(f"no {word!r} from `up` within {timeout}s:\n{''.join(seen)}")


def test_up_serves_beside_the_session_env_and_cleans_up_on_sigint(
    test_env: Environment, tmp_path: Path
) -> None:
    directory = tmp_path / "up-env"
    env = {k: v for k, v in os.environ.items() if k != "HARK_TEST_ENV"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.env", "up", "--dir", str(directory)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _lines(proc)
        _wait_for_line(lines, "ready", timeout=180)
        state = json.loads((directory / "env.json").read_text())
        pids: dict[str, int] = state["pids"]
        ports = [p for group in state["ports"].values() for p in group]

        assert set(pids) == {"etcd", "kube-apiserver", "minio"}
        assert not set(ports) & {p for g in test_env.ports.values() for p in g}
        groups = _process_groups()
        assert all(pid in groups.get(pid, []) for pid in pids.values())  # own groups
        assert not any(port_is_free(p) for p in state["ports"]["kube-apiserver"])
        assert (directory / "data").is_dir()
        # The second environment answers on its own: source its env.sh and use kubectl.
        version = subprocess.run(
            ["bash", "-c", f". {directory}/env.sh && kubectl get --raw /version"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(version.stdout)["gitVersion"] == versions.KUBERNETES

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        _wait_for_line(lines, "stopped", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    remaining = _process_groups()
    assert [pgid for pgid in pids.values() if pgid in remaining] == []
    busy = {
        name: [p for p in group if not port_is_free(p)] for name, group in state["ports"].items()
    }
    assert busy == {name: [] for name in state["ports"]}
    assert not directory.exists()
    # The session env is untouched.
    assert test_env.kubectl("get", "--raw", "/readyz").stdout == "ok"

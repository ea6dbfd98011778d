"""Generic server-process plumbing: free ports, process groups, readiness polling."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path


class StartupError(RuntimeError):
    """A component did not become ready; the message ends with the tail of its log."""


def free_port() -> int:
    """A port that was free a moment ago (bind port 0, read it, release it).

    Another process may take it before our server binds it; callers retry on
    "address already in use" (see ``Server.port_conflict``).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """No socket listens on ``port`` (connections lingering in TIME_WAIT do not count:
    servers set SO_REUSEADDR, so they can bind such a port again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _load_prctl() -> Callable[[int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[[int, int], int] = libc.prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved before fork: preexec_fn must do almost nothing
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the test runner is SIGKILLed no finaliser runs; the kernel then sends
    # SIGTERM to our servers so they never outlive it.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Server:
    """One server process in its own process group, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        ports: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.ports = list(ports)
        self.env = dict(env) if env is not None else dict(os.environ)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"$ {' '.join(self.argv)}\n".encode())
            out.flush()
            # A new session: a terminal's Ctrl-C reaches only `up`, which then stops
            # the servers in order; and killpg() reaches any children they spawn.
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def port_conflict(self) -> bool:
        """Did the server die because another process grabbed one of its ports?"""
        if self.alive():
            return False
        tail = self.log_tail(60).lower()
        return "address already in use" in tail or "bind:" in tail

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, wait; SIGKILL whatever is left after ``timeout``."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # session leader: its pid is the group id
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader so the group can empty
                if not _group_exists(pgid):
                    return
                time.sleep(0.05)
        if _group_exists(pgid):
            raise RuntimeError(f"{self.name} (process group {pgid}) survived SIGKILL")


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """GET ``url``; True on a 2xx answer, False on any connection/HTTP error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def wait_ready(server: Server, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it passes; fail fast (with the log tail) if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not server.alive():
            code = server.proc.returncode if server.proc else None
            raise StartupError(
                f"{server.name} exited (code {code}) before {what}; log {server.log}:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.1)
    raise StartupError(
        f"{server.name} not ready after {timeout:.0f}s ({what}); log {server.log}:\n"
        f"{server.log_tail()}"
    )


def start_with_retry(
    launch: Callable[[], Server], ready: Callable[[Server], None], attempts: int = 3
) -> Server:
    """``launch()`` picks fresh free ports each time; retry only on a port conflict."""
    for attempt in range(1, attempts + 1):
        server = launch()
        server.start()
        try:
            ready(server)
            return server
        except StartupError:
            conflict = server.port_conflict()
            server.stop()
            if not conflict or attempt == attempts:
                raise
    raise AssertionError("unreachable")

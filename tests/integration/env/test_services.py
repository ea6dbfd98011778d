"""Process plumbing: a port stolen between choosing and binding is retried."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.env import services
from tests.env.services import Server, StartupError

pytestmark = pytest.mark.integration

# A tiny server: binds the port it is given, then serves forever. (It prints a
# marker assembled at run time: the log also holds the command line itself.)
SERVE = (
    "import socket,sys,time\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); print('serving-' + 'on-port', flush=True)\n"
    "time.sleep(600)\n"
)


def test_start_with_retry_picks_new_ports_after_a_conflict(tmp_path: Path) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    offered = iter([taken, services.free_port()])
    launched: list[Server] = []

    def launch() -> Server:
        port = next(offered)
        server = Server(
            "toy", [sys.executable, "-c", SERVE, str(port)], tmp_path / "toy.log", ports=[port]
        )
        launched.append(server)
        return server

    def ready(server: Server) -> None:
        services.wait_ready(server, lambda: "serving-on-port" in server.log_tail(), 30, "serving")

    try:
        server = services.start_with_retry(launch, ready)
        assert len(launched) == 2
        assert launched[0].ports[0] == taken
        assert server.ports[0] != taken
        assert not launched[0].alive()
        assert server.alive()
    finally:
        squatter.close()
        for s in launched:
            s.stop()
    assert all(not s.alive() for s in launched)
    assert services.port_is_free(server.ports[0])


def test_a_crash_that_is_not_a_port_conflict_is_reported_with_the_log(tmp_path: Path) -> None:
    attempts: list[Server] = []

    def launch() -> Server:
        code = "import sys; print('config is broken: no such flag --frobnicate'); sys.exit(3)"
        attempts.append(Server("broken", [sys.executable, "-c", code], tmp_path / "b.log"))
        return attempts[-1]

    def ready(server: Server) -> None:
        services.wait_ready(server, lambda: False, 30, "never")

    with pytest.raises(StartupError) as err:
        services.start_with_retry(launch, ready)

    assert len(attempts) == 1  # no retry: retrying cannot fix a broken configuration
    assert "broken exited (code 3)" in str(err.value)
    assert "no such flag --frobnicate" in str(err.value)

"""`hark operator`: run the TranscriptionJob operator (kopf) against the current cluster.

Flags mirror `HARK_*` settings (hark_operator.settings); everything else is read
from the environment. Scope: `--namespace` (repeatable, or
HARK_NAMESPACES=a,b) watches those namespaces, none watches the cluster.
Replicas peer through kopf (a KopfPeering or ClusterKopfPeering named
HARK_PEERING_NAME): each draws a random priority, so exactly one dispatches
and scales while the others stand by.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Sequence
from typing import Annotated, Any, cast

import typer
from rich.console import Console

from hark_serving.cli import exits
from hark_serving.errors import ConfigError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def _identity() -> str:
    """Unique per process, readable in the peering object: pod name when in a pod."""
    pod = os.environ.get("POD_ID") or os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{pod}/{os.getpid()}/{random.SystemRandom().randrange(16**4):04x}"


@app.command(epilog=exits.EPILOG)
def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace to watch (repeatable; the variable takes a,b).",
            envvar="HARK_NAMESPACES",
        ),
    ] = None,
    standalone: Annotated[
        bool | None,
        typer.Option(
            "--standalone/--peering",
            help="Run without peering.",
            envvar="HARK_STANDALONE",
            show_default=False,
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(help="Peering priority; random when unset.", envvar="HARK_PRIORITY"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the Hark operator: TranscriptionJobs, dispatch to the Serve app, the GPU floor."""
    from hark_operator.settings import load_operator_settings
    from hark_serving.logs import setup_logging

    console = Console(stderr=True)
    try:
        # typer reads HARK_NAMESPACES as one item; the settings object splits `a,b`.
        names = [n.strip() for item in namespace or [] for n in item.split(",") if n.strip()]
        settings = load_operator_settings(
            namespaces=names or None, standalone=standalone, priority=priority
        )
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.USAGE) from None
    setup_logging("DEBUG" if verbose else None)

    import kopf
    from prometheus_client import start_http_server

    from hark_operator import handlers  # noqa: F401  (registers the handlers)

    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    identity = _identity()
    chosen = settings.priority
    if chosen is None:
        chosen = random.SystemRandom().randint(1, 1_000_000_000)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.standalone,
        peering_name=None if settings.standalone else settings.peering_name,
        priority=chosen,
        identity=cast(Any, identity),  # kopf types it as a NewType of str
        liveness_endpoint=liveness,
        memo=kopf.Memo(identity=identity),
    )


def main(args: Sequence[str]) -> None:
    """Entry from `hark operator ...` (hark_serving.cli.main)."""
    typer.main.get_command(app).main(args=list(args), prog_name="hark operator")

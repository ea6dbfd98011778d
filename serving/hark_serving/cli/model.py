"""`hark model quantize`: build a model's int8 weights into the node cache ahead of time.

The same code path a `--precision int8` start takes (`hark_serving.engine.int8`):
the weights are quantized, checked against float32 and written to the cache, so
replicas that start later read them instead of quantizing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hark_serving.cli import exits
from hark_serving.errors import HarkError, ModelError

app = typer.Typer(
    help="Model weights: build int8 weights ahead of time.",
    epilog=exits.EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("quantize", epilog=exits.EPILOG)
def quantize(
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local model folder or s3:// prefix.", envvar="HARK_MODEL"),
    ] = None,
    model_cache: Annotated[
        Path | None,
        typer.Option(
            help="The node's model cache, where the int8 weights are written.",
            envvar="HARK_MODEL_CACHE",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for the check.", envvar="HARK_THREADS")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on standard output.")
    ] = False,
) -> None:
    """Quantize the model to int8 (CPU), check it against float32 and cache it.

    Later starts with --precision int8 on this machine (or on any that shares the
    cache) read the cached weights instead of quantizing. Weights already cached are
    read and checked again.
    """
    from hark_serving.config import load_settings
    from hark_serving.engine.factory import build_recognizer
    from hark_serving.logs import setup_logging

    console = Console(stderr=True)
    setup_logging(json_logs=False)
    try:
        settings = load_settings(
            model=model, model_cache=model_cache, threads=threads, device="cpu", precision="int8"
        )
        with console.status(f"quantizing {settings.model} ..."):
            weights = build_recognizer(settings).int8
        assert weights is not None  # precision int8 always sets it
        if not weights.path.is_file():
            raise ModelError(
                f"the int8 weights could not be written to {weights.path}; point --model-cache "
                "(HARK_MODEL_CACHE) at a writable directory"
            )
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.for_error(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "model": settings.model,
                    "path": str(weights.path),
                    "built": weights.built,
                    "difference": round(weights.difference, 6),
                    "tolerance": weights.tolerance,
                    "seconds": round(weights.seconds, 3),
                }
            )
        )
    console.print(
        f"int8 weights of {settings.model} {'quantized into' if weights.built else 'already in'} "
        f"{weights.path}; CTC logits within {weights.difference:.4f} of float32 "
        f"(tolerance {weights.tolerance})",
        highlight=False,
        soft_wrap=True,
    )

"""`hark model export` and `hark model quantize`: build a model's int8 forms into the node cache.

The same code paths a start takes: `export` the ONNX Runtime export (the CPU
default, `hark_serving.engine.onnx_export`), `quantize` torch's int8 weights
(`--runtime torch --precision int8`, `hark_serving.engine.int8`). Either is
checked against float32 and written to the cache, so replicas that start later
read it instead of building it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hark_serving.cli import exits
from hark_serving.errors import HarkError, ModelError

if TYPE_CHECKING:
    from hark_serving.config import Settings
    from hark_serving.engine.model_source import ResolvedModel

app = typer.Typer(
    help="Model weights: build the int8 export or int8 weights ahead of time.",
    epilog=exits.EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)


# The options both commands take.
ModelOption = Annotated[
    str | None,
    typer.Option(help="Hub id, local model folder or s3:// prefix.", envvar="HARK_MODEL"),
]
CacheOption = Annotated[
    Path | None,
    typer.Option(
        help="The node's model cache, where the int8 weights or the export are written.",
        envvar="HARK_MODEL_CACHE",
    ),
]
ThreadsOption = Annotated[
    int | None, typer.Option(help="CPU threads for the check.", envvar="HARK_THREADS")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on standard output.")
]


@app.command("quantize", epilog=exits.EPILOG)
def quantize(
    model: ModelOption = None,
    model_cache: CacheOption = None,
    threads: ThreadsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Quantize the model to int8 (CPU), check it against float32 and cache it.

    Later starts with --precision int8 on this machine (or on any that shares the
    cache) read the cached weights instead of quantizing. Weights already cached are
    read and checked again.
    """
    from hark_serving.config import load_settings
    from hark_serving.engine.factory import build_torch
    from hark_serving.logs import setup_logging

    console = Console(stderr=True)
    setup_logging(json_logs=False)
    try:
        settings = load_settings(
            model=model,
            model_cache=model_cache,
            threads=threads,
            device="cpu",
            precision="int8",
            runtime="torch",
        )
        with console.status(f"quantizing {settings.model} ..."):
            weights = build_torch(settings, _resolve(settings)).int8
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


def _resolve(settings: Settings) -> ResolvedModel:
    from hark_serving.engine.factory import model_store
    from hark_serving.engine.model_source import resolve_model

    return resolve_model(
        settings.model,
        settings.model_cache,
        store=model_store(settings.model, settings),
        hub=settings.model_hub,
    )


@app.command("export", epilog=exits.EPILOG)
def export(
    model: ModelOption = None,
    model_cache: CacheOption = None,
    threads: ThreadsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export the model to ONNX with int8 weights, check it against float32 and cache it.

    Later starts on a CPU (the default runtime, or --runtime onnx) on this machine, or
    on any that shares the cache, load the export without torch. An export already in
    the cache is kept as it is.
    """
    from hark_serving.config import load_settings
    from hark_serving.engine.cpu import default_threads
    from hark_serving.engine.onnx_export import build
    from hark_serving.logs import setup_logging

    console = Console(stderr=True)
    setup_logging(json_logs=False)
    try:
        settings = load_settings(
            model=model,
            model_cache=model_cache,
            threads=threads,
            device="cpu",
            precision="int8",
            runtime="onnx",
        )
        resolved = _resolve(settings)
        with console.status(
            f"exporting {settings.model} for ONNX Runtime (about a minute for the full model) ..."
        ):
            exported = build(
                resolved.path,
                settings.model_cache,
                settings.threads or default_threads(),
                resolved.weights_sha256,
            )
    except HarkError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exits.for_error(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "model": settings.model,
                    "path": str(exported.path),
                    "built": exported.built,
                    "difference": round(exported.difference, 6),
                    "tolerance": exported.tolerance,
                    "seconds": round(exported.seconds, 3),
                }
            )
        )
    console.print(
        f"ONNX export of {settings.model} {'written to' if exported.built else 'already in'} "
        f"{exported.path}; CTC logits within {exported.difference:.4f} of float32 "
        f"(tolerance {exported.tolerance})",
        highlight=False,
        soft_wrap=True,
    )

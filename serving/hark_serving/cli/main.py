"""`hark`: transcribe on one machine, serve the HTTP app, run the operator, check the install."""

from __future__ import annotations

from typing import Annotated

import typer

from hark_serving.cli import doctor, exits, model, serve, transcribe

app = typer.Typer(
    name="hark",
    help="Rich transcripts (text, language, emotion, sound events) with SenseVoiceSmall.",
    epilog=exits.EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: no `[...]` in them is taken for rich markup.
    rich_markup_mode=None,
)
app.command("transcribe", epilog=exits.EPILOG)(transcribe.transcribe)
app.command("serve", epilog=exits.EPILOG)(serve.serve)
app.command("doctor", epilog=exits.EPILOG)(doctor.doctor)
app.add_typer(model.app, name="model")


def _version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("hark")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hark {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the Hark version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Rich transcripts (text, language, emotion, sound events) with SenseVoiceSmall."""


@app.command("version")
def version() -> None:
    """Print the Hark version."""
    typer.echo(_version())


# The control plane's commands parse their own flags; importing them only when run keeps `hark` light.
_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command("operator", context_settings=_PASSTHROUGH)
def operator(ctx: typer.Context) -> None:
    """Run the Kubernetes operator (TranscriptionJobs, GPU floor). See `hark operator --help`."""
    from hark_operator.cli import main

    main(ctx.args)


@app.command("run", context_settings=_PASSTHROUGH)
def run(ctx: typer.Context) -> None:
    """Run a TranscriptionJob manifest on this machine: `hark run -f job.yaml`."""
    from hark_operator.run import main

    main(ctx.args)


if __name__ == "__main__":
    app()

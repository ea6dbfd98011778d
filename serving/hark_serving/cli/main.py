"""`hark`: transcribe on one machine, serve the HTTP app, run the operator."""

from __future__ import annotations

import typer

from hark_serving.cli import serve, transcribe

app = typer.Typer(
    name="hark",
    help="Rich transcripts (text, language, emotion, sound events) with SenseVoiceSmall.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("transcribe")(transcribe.transcribe)
app.command("serve")(serve.serve)


@app.command("version")
def version() -> None:
    """Print the Hark version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("hark"))


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

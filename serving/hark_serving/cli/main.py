"""`hark`: transcribe on one machine, serve the HTTP app, run the operator."""

from __future__ import annotations

import typer

from . import transcribe

app = typer.Typer(
    name="hark",
    help="Rich transcripts (text, language, emotion, sound events) with SenseVoiceSmall.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("transcribe")(transcribe.transcribe)


@app.command("version")
def version() -> None:
    """Print the Hark version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("hark"))


if __name__ == "__main__":
    app()

"""The `ophora` command. This package only parses arguments and calls library code; nothing imports it.

Each job lives in its own module and registers itself here. Heavy imports (ray, torch, diffusers) happen inside
the command functions so that `ophora --help` stays instant.
"""

from __future__ import annotations

import typer

from ophora import __version__

app = typer.Typer(
    name="ophora",
    help=(
        "Narrated ophthalmic-surgery videos -> privacy-filtered clip-instruction shards -> CogVideoX fine-tuning.\n\n"
        "Example: ophora demo --out demo-out"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ophora {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Ophora command line."""


def _register() -> None:
    from ophora.cli import demo, synth

    app.command("synth", help=synth.synth.__doc__, no_args_is_help=True)(synth.synth)
    app.command("demo", help=demo.demo.__doc__)(demo.demo)
    from ophora.cli import shards

    app.add_typer(shards.app, name="shards")
    from ophora.cli import evaluate, sample

    app.command("sample", help=sample.sample.__doc__)(sample.sample)
    app.command("evaluate", help=evaluate.evaluate.__doc__, no_args_is_help=True)(evaluate.evaluate)
    from ophora.cli import train

    app.add_typer(train.app, name="train")
    from ophora.cli import curate

    app.command("curate", help=curate.curate.__doc__, no_args_is_help=True)(curate.curate)


_register()


def main() -> None:
    app()

"""What every command shares: one console, clear fatal errors, the summary printer."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error a person can act on and exit non-zero (2 = bad usage or input). The message is
    plain text (it quotes file names and data): never read as markup, control characters removed."""
    from rich.text import Text

    from ophora.inspection.text import printable

    console.print(Text("error: ", style="bold red") + Text(printable(message)), soft_wrap=True)  # one line
    raise typer.Exit(code)


def config_error(error: BaseException) -> str:
    """A config problem as one line: each pydantic complaint as ``field: what (got value)``, anything else its
    message with line breaks folded."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        parts = []
        for err in error.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "config"
            got = f" (got {err['input']!r:.60})" if "input" in err and not isinstance(err["input"], dict) else ""
            parts.append(f"{where}: {err['msg']}{got}")
        more = f"; and {error.error_count() - 5} more" if error.error_count() > 5 else ""
        return "; ".join(parts) + more
    return " ".join(str(error).split())


def parse_set(text: str) -> tuple[str, Any]:
    """``--set section.field=value`` -> (dotted key, value parsed as plain YAML: ``yaml.safe_load``, so no tag
    ever builds a Python object); exits 2 with one line when it is not KEY=VALUE or not YAML."""
    from ophora.config import parse_override

    try:
        return parse_override(text)
    except ValueError as e:
        fail(f"--set: {e}")


def print_table(title: str, rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(x) for x in r))
    Console(file=sys.stdout).print(table)


def job_config(model, path, flags: dict, sets, what: str, show: bool):
    """A job's effective config (defaults <- ``--config`` <- the flags given <- ``--set``); exits 2 with one line
    when it is wrong. With ``show`` (``--print-config``) it is printed and None returned."""
    from ophora.config import load, to_yaml

    try:
        cfg = load(model, path, flags, dict(parse_set(x) for x in sets or []))
    except (ValueError, OSError) as e:
        fail(f"{what} config: {config_error(e)}")
    if show:
        typer.echo(to_yaml(cfg), nl=False)
        return None
    return cfg

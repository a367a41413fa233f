"""What every command shares: one console, clear fatal errors, the summary printer."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error a person can act on and exit non-zero (2 = bad usage or input)."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_table(title: str, rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(x) for x in r))
    Console(file=sys.stdout).print(table)

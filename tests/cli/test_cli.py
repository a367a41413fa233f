"""The `ophora` command itself: help that teaches, a version, clear refusals."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from ophora import __version__
from ophora.cli import app

runner = CliRunner()


def test_root_help_lists_every_job_with_an_example():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for command in ("synth", "demo"):
        assert command in res.output
    assert "Example" in res.output


def _command_paths(typer_app, prefix=()):
    """Every command path of the CLI: top-level commands, groups, and each group's commands."""
    paths = [prefix + (c.name or c.callback.__name__.replace("_", "-"),) for c in typer_app.registered_commands]
    for g in typer_app.registered_groups:
        paths.append(prefix + (g.name,))
        paths += _command_paths(g.typer_instance, prefix + (g.name,))
    return paths


def test_every_subcommand_help_has_an_example():
    paths = _command_paths(app)
    assert len(paths) >= 5, paths
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "xample" in res.output, f"`ophora {' '.join(path)} --help` shows no example"


def test_version_and_unknown_command():
    assert runner.invoke(app, ["--version"]).output.strip() == f"ophora {__version__}"
    res = runner.invoke(app, ["no-such-job"])
    assert res.exit_code != 0


def test_console_entry_point_starts_fast_without_heavy_imports():
    code = (
        "import sys, ophora.cli; heavy = [m for m in ('torch', 'ray', 'diffusers', 'transformers') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing the CLI pulled in heavy modules: {out}"

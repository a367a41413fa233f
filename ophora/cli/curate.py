"""`ophora curate`: parse arguments, build the job's config, call ophora.curation.pipeline.run_curation."""

from __future__ import annotations

import json
import logging
from typing import Optional

import typer

from ophora.cli.common import config_error, console, fail, parse_set, print_table
from ophora.curation import DEFAULT_PROFILE


def curate(
    inputs: Optional[list[str]] = typer.Argument(
        None,
        help="Videos, directories (searched recursively), globs, manifests (.txt/.csv of paths or "
        "http(s)/s3/gs URLs) or URLs. Put '--' before names that start with a dash.",
    ),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory or URL (shards, index, ledger)."),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="Ray cluster address; default: an embedded local Ray (or the cluster of `ray job submit`).",
    ),
    profile: str = typer.Option(DEFAULT_PROFILE, "--profile", help="Bundled config: default or offline."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="A YAML config merged over the profile."),
    overrides: Optional[list[str]] = typer.Option(
        None, "--set", help="Override one field, e.g. --set windows.fps=8 (repeatable; wins over --config)."
    ),
    force: bool = typer.Option(False, "--force", help="Redo every source, even those the ledger has settled."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or logs; only the summary."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the effective config and exit."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Process at most N pending inputs."),
) -> None:
    """Curate videos into clip shards (tpt/ and p2ft/), a clip index, a source ledger and summary.json.

    Rerunning with the same --out resumes: settled sources are skipped, the rest redone under the same keys.
    Exit codes: 0 = completed (even with rejected inputs), 1 = completed but some sources failed with errors,
    2 = bad usage or config (a stage whose model cannot be loaded included; nothing is lost, rerun to resume),
    or another run is writing the same --out (one run per --out at a time).

    Example: ophora curate corpus/videos --out curated/ --profile offline
    """
    from pydantic import ValidationError

    from ophora.curation.config import CurateConfig

    extra = dict(parse_set(o) for o in overrides or [])
    if limit is not None:
        extra["limit"] = limit
    try:
        cfg = CurateConfig.load(profile=profile, path=config, overrides=extra)
    except (ValueError, OSError, ValidationError) as e:
        fail(f"bad config: {config_error(e)}")
    if print_config:
        typer.echo(cfg.to_yaml(), nl=False)
        return
    if not inputs:
        fail("no inputs given (videos, directories, globs, manifests or URLs)")
    if not out:
        fail("--out is required")
    _quiet_logs(quiet)
    from ophora.curation.inputs import InputError
    from ophora.curation.out_lock import OutLocked
    from ophora.curation.pipeline import StageStartError, run_curation

    try:
        summary = run_curation(cfg, list(inputs), out, address=address, force=force, quiet=quiet)
    except (InputError, OutLocked) as e:
        fail(str(e))
    except StageStartError as e:
        fail(
            f"{e}\n(models come from a local path or a hub id in the config: --print-config shows them; "
            f"--profile offline uses only models that ship in packages)"
        )
    print_summary(summary)
    raise typer.Exit(summary["exit_code"])


def _quiet_logs(quiet: bool) -> None:
    if quiet:
        for name in ("ray", "ray.data", "ophora"):
            logging.getLogger(name).setLevel(logging.WARNING)
        return
    from rich.logging import RichHandler

    log = logging.getLogger("ophora")
    if not log.handlers:
        log.addHandler(RichHandler(console=console, show_path=False))
        log.setLevel(logging.INFO)


def print_summary(summary: dict) -> None:
    """The run summary as a table a person reads (summary.json holds the same numbers)."""
    rows = [
        ("sources processed", summary["processed"]),
        ("  done", summary["done"]),
        ("  rejected", summary["rejected"]),
        ("  failed", summary["failed"]),
        ("skipped (settled earlier)", summary["skipped_settled"]),
        ("inputs listed twice", len(summary["repeated_inputs"])),
        ("clips written", summary["clips_written"]),
        *((f"  in {k}/", v) for k, v in sorted(summary["clips_by_subset"].items())),
        ("p2ft/ holds", summary.get("p2ft_verdict", "")),
        ("windows dropped", summary["clips_dropped"]),
        ("source seconds", f"{summary['source_seconds']:.1f}"),
        ("wall seconds", f"{summary['wall_seconds']:.1f}"),
        ("clips / s", f"{summary['clips_per_second']:.2f}"),
        ("source s / s", f"{summary['source_seconds_per_second']:.2f}"),
    ]
    rows += [(f"why: {reason}", n) for reason, n in sorted(summary["reasons"].items(), key=lambda x: -x[1])]
    rows += [(f"drop: {reason}", n) for reason, n in sorted(summary["drops"].items(), key=lambda x: -x[1])]
    rows += [
        (f"not in p2ft/: {reason}", n)
        for reason, n in sorted(summary.get("kept_out_of_p2ft", {}).items(), key=lambda x: -x[1])
    ]
    rows += [(f"PHI scrubbed: {kind}", n) for kind, n in sorted(summary.get("phi_scrubbed", {}).items())]
    footage = summary.get("footage") or {}
    if footage.get("source_s"):
        rows.append(
            (
                "footage in clips",
                f"{footage['clip_s']:.1f} of {footage['source_s']:.1f} s ({100 * footage['share']:.1f} %)",
            )
        )
        rows += [(f"footage lost: {reason}", f"{s:.1f} s") for reason, s in footage["lost_s"].items()]
        shares = [f["share"] for f in footage["by_source"]]
        rows.append(("footage in clips per source", f"min {100 * min(shares):.0f} %, max {100 * max(shares):.0f} %"))
    print_table(f"ophora curate -> {summary['out']}", [(k, _plain(v)) for k, v in rows], ("what", "count"))


def _plain(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)

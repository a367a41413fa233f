"""`ophora shards`: look into a curation output (ls, stats, show, grep, validate, gallery, export).

Parses arguments and calls ophora.inspection; every heavy import happens inside a command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ophora.cli.common import console, fail

app = typer.Typer(
    help="Inspect, validate, browse and export Ophora shards.\n\n"
    "Example: ophora shards validate curated/ && ophora shards gallery curated/ --out site/",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

SHOWN_PROBLEMS = 20  # a big broken set should not scroll the summary away
DirArg = typer.Argument(..., help="A curation output directory (holds tpt/, p2ft/, index/, ledger/).")


def _out():
    from rich.console import Console

    return Console(file=sys.stdout)


_fail = fail  # messages quote shard names and members: common.fail prints them as plain text


def print_table(title: str, rows, columns: tuple[str, ...], caption: str | None = None) -> None:
    """A table of shard contents; every cell is plain printable text (shard text is data: never rich markup,
    never a terminal escape sequence)."""
    from rich.table import Table

    from ophora.inspection.text import cell

    table = Table(title=cell(title), caption=cell(caption) if caption else None)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(cell(x) for x in row))
    _out().print(table)


def warn_problems(problems: list[str], what: str = "problems", total: int | None = None) -> None:
    """The first SHOWN_PROBLEMS problems on stderr (plain text), then how many more of ``total`` (default: all
    of ``problems``); ``ophora shards validate`` lists every one."""
    from rich.text import Text

    from ophora.inspection.text import printable

    for problem in problems[:SHOWN_PROBLEMS]:
        console.print(Text("warning: ", style="yellow") + Text(printable(problem)), soft_wrap=True)
    more = (len(problems) if total is None else total) - min(len(problems), SHOWN_PROBLEMS)
    if more > 0:
        console.print(Text(f"... and {more} more {what} (ophora shards validate lists every one)", style="yellow"))


def _check_dir(root: str) -> None:
    if "://" not in root and not Path(root).is_dir():
        _fail(f"{root}: no such directory")


@app.command("ls")
def ls(
    root: str = DirArg,
    count: bool = typer.Option(False, "--count", help="Count samples by reading the tars, not the index."),
    per_shard: bool = typer.Option(False, "--shards", "-s", help="One row per shard."),
) -> None:
    """Shards per subset with sample counts and sizes.

    Example: ophora shards ls curated/
    """
    from ophora.dataset.shards import ShardError, refused_shards
    from ophora.inspection.catalog import listing, shard_name, subsets_in

    _check_dir(root)
    warn_problems(
        [
            f"{sub}/{shard_name(p)} is {why}; not read"
            for sub in subsets_in(root)
            for p, why in refused_shards(root, sub)
        ]
    )
    try:
        infos, counted_by = listing(root, count_tars=count)
    except ShardError as e:
        _fail(f"{e} (run `ophora shards validate` for every problem)", code=1)
    if per_shard:
        print_table(
            "Shards",
            [(i.subset, shard_name(i.path), i.samples, f"{i.bytes / 2**20:.2f}") for i in infos],
            ("subset", "shard", "samples", "MiB"),
            caption=f"{root} (samples from the {counted_by})",
        )
        return
    subsets = dict.fromkeys(i.subset for i in infos)
    rows = [
        (
            s,
            sum(1 for i in infos if i.subset == s),
            sum(i.samples or 0 for i in infos if i.subset == s),
            f"{sum(i.bytes for i in infos if i.subset == s) / 2**20:.2f}",
        )
        for s in subsets
    ]
    print_table(
        "Subsets", rows, ("subset", "shards", "samples", "MiB"), caption=f"{root} (samples from the {counted_by})"
    )


@app.command("stats")
def stats(
    root: str = DirArg,
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    plots: Path = typer.Option(None, "--plots", help="Write PNG plots into this directory."),
    source: str = typer.Option("auto", help="Clip facts from: auto | index | shards."),
) -> None:
    """Counts per subset, clip durations, instruction lengths, scores, phases and drop reasons per stage.

    Example: ophora shards stats curated/ --plots plots/   (or --json for programs)
    """
    from ophora.dataset.shards import ShardError
    from ophora.inspection.stats import collect_stats, plot_stats, stats_json, stats_tables

    _check_dir(root)
    try:
        data = collect_stats(root, source=source)
    except ShardError as e:
        _fail(f"{e} (run `ophora shards validate` for every problem)", code=1)
    except ValueError as e:
        _fail(str(e))
    if as_json:
        typer.echo(stats_json(data))
    else:
        out = _out()
        for table in stats_tables(data):
            out.print(table)
    warn_problems(data["problems"], "unreadable clips", total=data["problem_count"])
    if plots is not None:
        for path in plot_stats(data, plots):
            console.print(f"wrote {path}")


@app.command("show")
def show(
    root: str = DirArg,
    key: str = typer.Argument(..., help="Clip key, e.g. 75cf7377b6186dd5_000002."),
    frames: int = typer.Option(0, "--frames", help="Write a contact sheet of N frames (PNG)."),
    extract: bool = typer.Option(False, "--extract", help="Write the clip's mp4."),
    out_dir: Path = typer.Option(Path("."), "--out", help="Where --frames/--extract write."),
) -> None:
    """Metadata, instruction, scrubbed narration and scores of one clip; optionally frames and the mp4.

    Example: ophora shards show curated/ 75cf7377b6186dd5_000002 --frames 8 --extract
    """
    import av

    from ophora.dataset.shards import ShardError
    from ophora.inspection.catalog import clip_facts, find_sample
    from ophora.inspection.contact_sheet import contact_sheet
    from ophora.inspection.export import extract_clip, safe_output_path

    _check_dir(root)
    problems: list[str] = []
    sample = find_sample(root, key, problems=problems)
    if sample is None:
        warn_problems(problems)
        _fail(f"no clip {key!r} in {root}", code=1)
    try:
        meta, facts = sample.meta, clip_facts(sample)
    except (ShardError, KeyError) as e:
        _fail(f"{key}: unreadable metadata ({e})", code=1)
    rows = [(k, v) for k, v in meta.items() if k not in ("instruction", "narration", "scores", "flags", "words")]
    rows += [("shard", sample.shard), ("instruction", facts.instruction), ("narration", facts.narration)]
    rows += [(f"score: {k}", v) for k, v in sorted(facts.scores.items())]
    rows += [(f"flag: {k}", v) for k, v in sorted(facts.flags.items())]
    print_table(key, rows, ("field", "value"))
    try:
        if frames > 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = contact_sheet(sample.mp4, safe_output_path(out_dir, key, "png"), frames=frames)
            console.print(f"wrote {path}", markup=False)
        if extract:
            console.print(f"wrote {extract_clip(sample, out_dir)}", markup=False)
    except (ShardError, KeyError, ValueError, OSError, av.FFmpegError) as e:
        _fail(f"{key}: {e}", code=1)


@app.command("grep")
def grep(
    root: str = DirArg,
    text: str = typer.Argument(..., help="Text (or --regex pattern) to look for."),
    regex: bool = typer.Option(False, "--regex", "-E", help="TEXT is a regular expression."),
    case: bool = typer.Option(False, "--case", help="Match case."),
    field: list[str] = typer.Option(None, "--field", help="instruction and/or narration (default both)."),
    subset: list[str] = typer.Option(None, "--subset", help="Only these subsets (default all)."),
    limit: int = typer.Option(None, "--limit", help="Stop after this many clips."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search instructions and scrubbed narration; exits 1 when nothing matches.

    Example: ophora shards grep curated/ capsulorhexis
    """
    import json
    import re

    from ophora.inspection.search import FIELDS
    from ophora.inspection.search import grep as grep_clips

    _check_dir(root)
    problems: list[str] = []
    try:
        found = grep_clips(
            root,
            text,
            regex=regex,
            ignore_case=not case,
            fields=field or FIELDS,
            subsets=subset or None,
            limit=limit,
            problems=problems,
        )
    except (ValueError, re.error) as e:
        _fail(str(e))
    warn_problems(problems, "unreadable clips")
    if as_json:
        typer.echo(json.dumps([m.__dict__ for m in found], indent=2))
    else:
        print_table(
            f"{len(found)} clips match {text!r}",
            [(m.key, " ".join(m.subsets), m.field, m.snippet) for m in found],
            ("key", "subsets", "field", "match"),
        )
    if not found:
        raise typer.Exit(1)


@app.command("validate")
def validate(
    root: str = DirArg,
    quick: bool = typer.Option(False, "--quick", help="Skip decoding the videos."),
    workers: int = typer.Option(2, "--workers", help="Videos decoded at once."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check the shard contract; exits 1 with the list of findings when any error is found.

    Example: ophora shards validate curated/ --quick
    """
    from ophora.inspection.validate import findings_rows
    from ophora.inspection.validate import validate as run_validation

    _check_dir(root)
    with console.status("validating") as status:
        report = run_validation(root, quick=quick, workers=workers, progress=lambda s: status.update(f"reading {s}"))
    if as_json:
        typer.echo(report.to_json())
    else:
        if report.findings:
            print_table("Findings", findings_rows(report), ("severity", "code", "where", "message"))
        verdict = "[green]OK[/]" if report.ok else f"[red]{report.error_count} errors[/]"
        total = len(report.findings) + sum(report.suppressed.values())
        console.print(
            f"{verdict}: {report.shards} shards, {report.samples} samples, {report.decoded} videos decoded"
            f"{' (quick: no decoding)' if quick else ''}, {total} findings"
            f"{f' ({total - len(report.findings)} not listed)' if report.suppressed else ''}"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("gallery")
def gallery(
    root: str = typer.Argument(..., help="A curation output, or a folder of mp4 + json/txt."),
    out: Path = typer.Option(..., "--out", help="Directory for the static site."),
    title: str = typer.Option("Ophora clips", help="Page title."),
    page_size: int = typer.Option(200, help="Cards per page."),
    limit: int = typer.Option(None, help="Only the first N clips."),
    kind: str = typer.Option("auto", "--from", help="auto | shards | folder."),
    videos: bool = typer.Option(False, "--videos", help="Copy each mp4 into the site (cards link to it)."),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Animated preview on hover."),
    workers: int = typer.Option(2, "--workers", help="Clips decoded at once."),
) -> None:
    """A static offline HTML gallery: a card per clip, paginated, filterable by subset and phase.

    Example: ophora shards gallery curated/ --out site/   (then open site/index.html)
    """
    from ophora.inspection.catalog import subsets_in
    from ophora.inspection.gallery import build_gallery, folder_items, shard_items

    _check_dir(root)
    if kind == "auto":
        kind = "shards" if subsets_in(root) else "folder"
    if kind not in ("shards", "folder"):
        _fail(f"--from must be auto, shards or folder, not {kind!r}")
    items = shard_items(root, limit=limit) if kind == "shards" else folder_items(root, limit=limit)
    with console.status("building gallery"):
        result = build_gallery(
            items, out, title=title, page_size=page_size, preview=preview, copy_videos=videos, workers=workers
        )
    warn_problems(result.problems, "clips with a problem")
    pages = f"{len(result.pages)} page{'s' if len(result.pages) != 1 else ''}"
    console.print(f"wrote {result.cards} cards on {pages}: {result.pages[0]}", markup=False)


@app.command("export")
def export(
    root: str = DirArg,
    to: Path = typer.Option(..., "--to", help="A folder (mp4 + txt pairs) or a .csv (clip id,instruction)."),
    subset: list[str] = typer.Option(["tpt"], "--subset", help="Subsets to export (each key once)."),
    limit: int = typer.Option(None, help="Only the first N clips."),
) -> None:
    """Export clips as mp4 + txt pairs, or as a `clip id,instruction` CSV.

    Example: ophora shards export curated/ --to pairs/   or   --to clips.csv
    """
    from ophora.inspection.export import export_csv, export_pairs

    _check_dir(root)
    from ophora.dataset.shards import ShardError

    run = export_csv if to.suffix.lower() == ".csv" else export_pairs
    try:
        result = run(root, to, subsets=subset, limit=limit)
    except ShardError as e:
        _fail(f"export stopped: {e}", code=1)
    warn_problems([f"skipped: {why}" for why in result.skipped or []], "skipped")
    console.print(f"exported {result.written} clips to {result.target}", markup=False)

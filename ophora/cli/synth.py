"""`ophora synth`: write a synthetic narrated-surgery corpus with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from ophora.cli.common import console, fail, print_table


def synth(
    out: Path = typer.Argument(..., help="Folder to write videos/, truth/ and corpus.json into."),
    videos: int = typer.Option(10, "--videos", "-n", help="How many videos (>= 1)."),
    seed: int = typer.Option(1, "--seed", "-s", help="Same seed, same corpus."),
    minutes: float = typer.Option(1.0, "--minutes", "-m", help="Length of each video in minutes (> 0)."),
    max_height: int = typer.Option(None, "--max-height", help="Cap the resolution (default: 480p-1080p by seed)."),
    workers: int = typer.Option(2, "--workers", "-w", help="Videos rendered at the same time."),
) -> None:
    """Write a synthetic corpus of narrated cataract-surgery videos, each with a ground-truth JSON.

    Microscope scenes of an eye by phase, title slides, a presenter, black and frozen frames, teaching overlays,
    picture-in-picture and burned-in patient details; espeak-ng narration; mixed containers, codecs and rates.

    Example: ophora synth corpus --videos 10 --seed 1 --minutes 1
    """
    if videos < 1:
        fail(f"--videos must be at least 1, got {videos}")
    if not minutes > 0:
        fail(f"--minutes must be greater than 0, got {minutes}")
    if workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    if max_height is not None and max_height < 16:
        fail(f"--max-height must be at least 16 pixels, got {max_height}")

    import time

    from ophora.synthetic.corpus import generate_corpus, load_truth

    started = time.monotonic()
    try:
        generate_corpus(
            out, videos=videos, seed=seed, minutes=minutes, max_height=max_height, workers=workers, progress=True
        )
    except ValueError as e:
        fail(str(e))
    except RuntimeError as e:
        fail(f"generation failed: {e}", code=1)
    rows = [
        (
            t["name"],
            f"{t['duration']:.1f}",
            f"{t['width']}x{t['height']}",
            f"{t['fps']:g}",
            t["video_codec"] + (f"+{t['audio']['codec']}" if t["audio"] else ""),
            len(t["scenes"]),
            len(t["narration"]),
        )
        for t in load_truth(out)
    ]
    # narrow headers so the table fits an 80-column terminal without cutting names
    print_table(f"synthetic corpus (seed {seed})", rows, ("video", "secs", "size", "fps", "codecs", "scenes", "lines"))
    console.print(f"wrote {videos} videos in {time.monotonic() - started:.0f} s; manifest: {Path(out) / 'corpus.json'}")

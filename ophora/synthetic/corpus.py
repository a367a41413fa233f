"""The synthetic narrated-surgery corpus: videos that look and sound like narrated cataract-surgery uploads,
each with a ground-truth JSON of what is in it, for tests, the demo and the benchmarks.

    generate_corpus(out_dir, videos=10, seed=1, minutes=1.0)   # -> manifest, also written to out_dir/corpus.json
    load_truth(out_dir)                                         # -> every video's truth, in name order

Layout: out_dir/videos/<name>.<ext> (+ .srt/.vtt sidecars), out_dir/truth/<name>.json, out_dir/corpus.json.
Truth stays outside videos/ so curating out_dir/videos never sees it. The same seed gives the same truth. Each video
is made by ``render.py`` (``make_video``, re-exported here).
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path

from ophora.synthetic.render import TITLES, frame_count, make_video, video_name, write_json

__all__ = ["GENERATOR_VERSION", "TITLES", "frame_count", "generate_corpus", "load_truth", "make_video", "video_name"]

GENERATOR_VERSION = "2"  # 2: Faker identities in 11 locales, drawn overlay styles, recorder bars, face insets


def _check_args(out_dir: Path, videos: int, minutes: float, workers: int) -> None:
    if not isinstance(videos, int) or videos < 1:
        raise ValueError(f"videos must be a whole number >= 1, got {videos!r}")
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a directory")
    try:
        (out_dir / "videos").mkdir(parents=True, exist_ok=True)
        (out_dir / "truth").mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{out_dir}: cannot write the corpus there ({e.strerror or e})") from e


def generate_corpus(
    out_dir,
    videos: int,
    seed: int,
    minutes: float = 1.0,
    *,
    max_height: int | None = None,
    workers: int = 2,
    progress: bool = False,
) -> dict:
    """Write `videos` synthetic narrated-surgery videos of `minutes` each under out_dir; return the manifest.

    max_height caps the resolution (the default draws 480p-1080p per video). workers videos render at once in
    spawned processes (a script calling this with workers > 1 needs the usual `if __name__ == "__main__":`).
    progress shows a rich progress bar on stderr. Raises ValueError for bad arguments or an unwritable out_dir.
    """
    out_dir = Path(out_dir)
    _check_args(out_dir, videos, minutes, workers)
    _remove_previous_corpus(out_dir)
    truths: dict[int, dict] = {}
    bar = _Progress(seed, videos, minutes, max_height) if progress else None
    try:
        if workers == 1 or videos == 1 or not _can_spawn():
            for i in range(videos):
                truths[i] = make_video(out_dir, seed, i, minutes, max_height, bar.advance if bar else None)
        else:
            _generate_parallel(out_dir, seed, videos, minutes, max_height, workers, truths, bar)
    finally:
        if bar is not None:
            bar.close()
    manifest = {
        "generator": "ophora.synthetic.corpus",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "params": {"videos": videos, "minutes": minutes, "max_height": max_height},
        "videos": [
            {
                "name": truths[i]["name"],
                "file": truths[i]["file"],
                "truth": f"truth/{truths[i]['name']}.json",
                "duration": truths[i]["duration"],
            }
            for i in range(videos)
        ],
    }
    write_json(out_dir / "corpus.json", manifest)
    return manifest


def _can_spawn() -> bool:
    """Spawned workers re-import __main__; code piped on stdin has no file to re-import, so it runs serially."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _generate_parallel(out_dir, seed, videos, minutes, max_height, workers, truths, bar) -> None:
    ctx = get_context("spawn")  # never fork a process that may hold Ray's or torch's threads
    with ExitStack() as stack:
        queue = stack.enter_context(ctx.Manager()).Queue() if bar is not None else None
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=min(workers, videos), mp_context=ctx))
        futures = {
            pool.submit(_make_video_task, out_dir, seed, i, minutes, max_height, queue): i for i in range(videos)
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25 if queue is not None else None, return_when=FIRST_COMPLETED)
            while queue is not None and not queue.empty():
                bar.advance(queue.get())
            for f in done:
                truths[futures[f]] = f.result()


def _make_video_task(out_dir, seed, index, minutes, max_height, queue):
    return make_video(out_dir, seed, index, minutes, max_height, queue.put if queue is not None else None)


class _Progress:
    """A rich progress bar over every frame of the corpus."""

    def __init__(self, seed: int, videos: int, minutes: float, max_height: int | None):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        total = sum(frame_count(seed, i, minutes, max_height) for i in range(videos))
        self.progress = Progress(
            TextColumn("synth"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} frames"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task("frames", total=total)
        self.progress.start()

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def close(self) -> None:
        self.progress.stop()


def _remove_previous_corpus(out_dir: Path) -> None:
    """Delete what an earlier run listed in its corpus.json (only that), so no stale video or truth lingers."""
    manifest = out_dir / "corpus.json"
    if not manifest.exists():
        return
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8")).get("videos", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        entries = []
    for entry in entries:
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        if not name or "/" in name or name.startswith("."):
            continue
        for old in [*(out_dir / "videos").glob(f"{name}.*"), out_dir / "truth" / f"{name}.json"]:
            if old.suffix in (".mp4", ".mkv", ".webm", ".srt", ".vtt", ".json") and old.is_file():
                old.unlink()
    manifest.unlink()


def load_truth(corpus_dir) -> list[dict]:
    """Every video's ground truth, in name order: those corpus.json lists, else all under truth/.

    Raises FileNotFoundError if there is none, ValueError naming a file that does not parse.
    """
    truth_dir = Path(corpus_dir) / "truth"
    manifest = Path(corpus_dir) / "corpus.json"
    if manifest.exists():
        try:
            names = [v["name"] for v in json.loads(manifest.read_text(encoding="utf-8"))["videos"]]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{manifest}: unreadable corpus manifest ({e})") from e
        files = sorted(truth_dir / f"{name}.json" for name in names)
    else:
        files = sorted(truth_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{truth_dir}: no ground-truth files (is this a synthetic corpus?)")
    out = []
    for f in files:
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{f}: unreadable ground truth ({e})") from e
    return out

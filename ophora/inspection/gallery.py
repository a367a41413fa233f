"""A static, offline HTML gallery of clips: one card per clip (thumbnail strip, animated preview on hover,
instruction, subsets, phase, scores), paginated, filterable by subset and phase.

``build_gallery(items, out_dir, title)`` takes any iterable of :class:`GalleryItem`; ``shard_items`` adapts a
curation output and ``folder_items`` a plain folder of mp4 + json/txt (e.g. generated videos). The site needs no
network: its CSS/JS are copied next to the pages, and filter data is a small ``pages.js`` loaded by a script tag
(works from file://). Items are consumed one at a time; only small card records are kept in memory.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ophora.bounded_json import JSONRefused
from ophora.bounded_json import loads as bounded_loads
from ophora.dataset.shards import ShardError, iter_samples, list_shards, refused_shards
from ophora.inspection.catalog import clip_facts, shard_name, subsets_in

PAGE_SIZE = 200
STRIP_FRAMES = 4
PREVIEW_FRAMES = 8
THUMB_HEIGHT = 72
ASSETS = ("gallery.css", "gallery.js")


@dataclass
class GalleryItem:
    """One clip to show. ``video`` is mp4 bytes or a path; ``id`` is only displayed (files are numbered)."""

    id: str
    instruction: str
    video: bytes | Path | None
    subsets: list[str] = field(default_factory=list)
    phase: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


@dataclass
class GalleryResult:
    out_dir: Path
    cards: int
    pages: list[Path]
    problems: list[str]


# ---------------------------------------------------------------- adapters


def shard_items(root: str, subsets: Iterable[str] | None = None, limit: int | None = None) -> Iterator[GalleryItem]:
    """One item per clip of a curation output; a clip in several subsets is shown once, badged with each."""
    order = list(subsets or subsets_in(root))
    membership: dict[str, list[str]] = {}
    for subset in order[1:]:  # header-only pass: which later subsets hold each key
        for shard in list_shards(root, subset):
            try:
                for sample in iter_samples(shard, members=(), strict=False):
                    membership.setdefault(sample.key, []).append(subset)
            except ShardError:
                pass  # reported when the main pass reaches this shard
    shown, count = set(), 0
    for subset in order:
        for path, why in refused_shards(root, subset):
            yield GalleryItem(id=f"{subset}/{shard_name(path)}", instruction="", video=None, problem=f"is {why}")
        for shard in list_shards(root, subset):
            refused: list[str] = []  # one card per refused member, in the order met
            try:
                for sample in iter_samples(shard, members=("mp4", "txt", "json"), on_refused=refused.append):
                    yield from _problem_cards(subset, shard, refused)
                    if sample.key in shown:
                        continue
                    if limit is not None and count >= limit:
                        return
                    shown.add(sample.key)
                    count += 1
                    others = [s for s in membership.get(sample.key, []) if s != subset]
                    yield _sample_item(sample, [subset] + others)
                yield from _problem_cards(subset, shard, refused)
            except ShardError as e:  # a broken shard becomes one card saying so; the rest still shows
                yield GalleryItem(id=f"{subset}/{shard_name(shard)}", instruction="", video=None, problem=str(e))


def _problem_cards(subset: str, shard: str, problems: list[str]) -> Iterator[GalleryItem]:
    while problems:
        yield GalleryItem(id=f"{subset}/{shard_name(shard)}", instruction="", video=None, problem=problems.pop(0))


def _sample_item(sample, subsets: list[str]) -> GalleryItem:
    item = GalleryItem(id=sample.key, instruction="", video=sample.members.get("mp4"), subsets=subsets)
    try:
        facts = clip_facts(sample)
    except (KeyError, ShardError) as e:  # the card says why; the clip's pictures are still shown
        item.problem = f"unreadable metadata: {e}"
        return item
    item.instruction, item.phase, item.scores = facts.instruction, facts.phase, facts.scores
    item.details = {
        "source": facts.source_uri,
        "window": f"{facts.start:.1f}-{facts.end:.1f} s",
        "narration": facts.narration,
    }
    return item


def folder_items(folder: str | Path, limit: int | None = None) -> Iterator[GalleryItem]:
    """One item per ``*.mp4`` under ``folder`` (sorted, links skipped). ``<stem>.json`` may give instruction (or
    prompt), subset(s), phase and scores; ``<stem>.txt`` gives the instruction when the json does not."""
    base = Path(folder)
    if not base.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    count = 0
    for mp4 in sorted(base.rglob("*.mp4")):
        if mp4.is_symlink() or not mp4.is_file():
            continue
        if limit is not None and count >= limit:
            return
        count += 1
        item = GalleryItem(id=str(mp4.relative_to(base).with_suffix("")), instruction="", video=mp4)
        side_json, side_txt = mp4.with_suffix(".json"), mp4.with_suffix(".txt")
        if side_json.is_file() and not side_json.is_symlink():
            try:
                meta = bounded_loads(side_json.read_bytes(), side_json.name, want=dict)
                item.instruction = str(meta.get("instruction") or meta.get("prompt") or "")
                subsets = meta.get("subsets") or meta.get("subset") or []
                item.subsets = (
                    [subsets]
                    if isinstance(subsets, str)
                    else [str(s) for s in subsets]
                    if isinstance(subsets, list)
                    else []
                )
                item.phase = meta["phase"] if isinstance(meta.get("phase"), str) else None
                scores = meta.get("scores") if isinstance(meta.get("scores"), dict) else {}
                item.scores = {
                    k: float(v)
                    for k, v in scores.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                }
                item.details = {k: meta[k] for k in ("seed", "steps", "guidance", "model") if k in meta}
            except (JSONRefused, OSError) as e:
                item.problem = str(e)
        if not item.instruction and side_txt.is_file() and not side_txt.is_symlink():
            item.instruction = side_txt.read_text(encoding="utf-8", errors="replace").strip()
        yield item


# ---------------------------------------------------------------- builder


def _media(item: GalleryItem, seq: int, out: Path, preview: bool, copy_videos: bool) -> dict[str, str]:
    """Thumbnail strip (+ animated preview, + copied mp4) for one item; file names are sequence numbers."""
    from ophora.inspection.contact_sheet import animated_preview, sample_frames, thumbnail_strip

    files: dict[str, str] = {}
    if item.video is None:
        raise ValueError("no video")
    frames = sample_frames(item.video, PREVIEW_FRAMES if preview else STRIP_FRAMES, THUMB_HEIGHT)
    step = max(1, len(frames) // STRIP_FRAMES)
    thumbnail_strip(frames[::step][:STRIP_FRAMES], out / "thumbs" / f"{seq:07d}.jpg")
    files["strip"] = f"thumbs/{seq:07d}.jpg"
    if preview and len(frames) > 1:
        animated_preview(frames, out / "previews" / f"{seq:07d}.webp")
        files["preview"] = f"previews/{seq:07d}.webp"
    if copy_videos:
        target = out / "videos" / f"{seq:07d}.mp4"
        if isinstance(item.video, Path):
            shutil.copyfile(item.video, target)
        else:
            target.write_bytes(item.video)
        files["video"] = f"videos/{seq:07d}.mp4"
    return files


def _media_or_problem(
    item: GalleryItem, seq: int, out: Path, preview: bool, copy_videos: bool
) -> tuple[dict[str, str], str]:
    try:
        return _media(item, seq, out, preview, copy_videos), item.problem
    except Exception as e:  # an undecodable clip gets a card with the reason, not a failed build
        return {}, "; ".join(p for p in (item.problem, f"no preview: {e}") if p)


def build_gallery(
    items: Iterable[GalleryItem],
    out_dir: str | Path,
    title: str = "Ophora clips",
    page_size: int = PAGE_SIZE,
    preview: bool = True,
    copy_videos: bool = False,
    workers: int = 2,
) -> GalleryResult:
    """Write the site into ``out_dir`` (created; only files inside it are written): ``index.html`` is page 1,
    then ``page-0002.html``...; ``thumbs/``, ``previews/``, ``videos/`` (with ``copy_videos``), ``assets/`` and
    ``pages.js``. ``workers`` clips are decoded at once (threads), at most twice that many held in memory.
    A clip whose video will not decode still gets a card, marked with the problem."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    out = Path(out_dir)
    for sub in ("thumbs", "previews", "assets") + (("videos",) if copy_videos else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        (out / "assets" / name).write_bytes(resources.files("ophora.inspection").joinpath("static", name).read_bytes())
    cards: list[dict[str, Any]] = []
    problems: list[str] = []
    pending: deque[tuple[GalleryItem, Future]] = deque()

    def finish() -> None:
        item, future = pending.popleft()
        files, problem = future.result()
        if problem:
            problems.append(f"{item.id}: {problem}")
        cards.append(
            {
                "id": item.id,
                "instruction": item.instruction,
                "subsets": item.subsets,
                "phase": item.phase or "",
                "scores": item.scores,
                "details": item.details,
                "problem": problem,
                **files,
            }
        )

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for seq, item in enumerate(items, start=1):
            pending.append((item, pool.submit(_media_or_problem, item, seq, out, preview, copy_videos)))
            while len(pending) > 2 * max(1, workers):
                finish()
        while pending:
            finish()
    pages = [cards[i : i + page_size] for i in range(0, len(cards), page_size)] or [[]]
    names = ["index.html"] + [f"page-{n:04d}.html" for n in range(2, len(pages) + 1)]
    subsets = sorted({s for c in cards for s in c["subsets"]})
    phases = sorted({c["phase"] for c in cards if c["phase"]})
    facets = [{"file": name, "n": len(page), "combos": _combos(page)} for name, page in zip(names, pages)]
    (out / "pages.js").write_text(
        "window.GALLERY_PAGES = " + json.dumps(facets, separators=(",", ":")) + ";\n", encoding="utf-8"
    )
    written = []
    for number, (name, page) in enumerate(zip(names, pages), start=1):
        (out / name).write_text(render_page(title, page, number, names, subsets, phases, len(cards)), encoding="utf-8")
        written.append(out / name)
    return GalleryResult(out_dir=out, cards=len(cards), pages=written, problems=problems)


def _combos(page: list[dict[str, Any]]) -> list[list[Any]]:
    """[subsets, phase, cards] for each distinct (subsets, phase) on a page, so the pager can say which pages
    hold matches for a filter without loading them."""
    counts: dict[tuple[tuple[str, ...], str], int] = {}
    for c in page:
        k = (tuple(c["subsets"]), c["phase"])
        counts[k] = counts.get(k, 0) + 1
    return [[list(subsets), phase, n] for (subsets, phase), n in counts.items()]


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_card(c: dict[str, Any]) -> str:
    media = (
        f'<img class="strip" src="{_esc(c["strip"])}" alt="frames of {_esc(c["id"])}" loading="lazy"'
        + (f' data-preview="{_esc(c["preview"])}"' if c.get("preview") else "")
        + ">"
        if c.get("strip")
        else '<div class="strip missing">no preview</div>'
    )
    if c.get("video"):
        media = f'<a href="{_esc(c["video"])}">{media}</a>'
    badges = "".join(f'<span class="badge subset-{_esc(s)}">{_esc(s)}</span>' for s in c["subsets"])
    if c["phase"]:
        badges += f'<span class="badge phase">{_esc(c["phase"])}</span>'
    scores = "".join(f"<li>{_esc(k)} <b>{v:.3g}</b></li>" for k, v in sorted(c["scores"].items()))
    details = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in c["details"].items() if v != "")
    return (
        f'<article class="card" data-subsets="{_esc(" ".join(c["subsets"]))}" data-phase="{_esc(c["phase"])}">'
        f'{media}<div class="body"><div class="badges">{badges}</div>'
        f'<p class="instruction">{_esc(c["instruction"]) or "<i>(no instruction)</i>"}</p>'
        f'<code class="key">{_esc(c["id"])}</code>'
        + (f'<ul class="scores">{scores}</ul>' if scores else "")
        + (f"<details><summary>details</summary><dl>{details}</dl></details>" if details else "")
        + (f'<p class="problem">{_esc(c["problem"])}</p>' if c["problem"] else "")
        + "</div></article>"
    )


def render_page(
    title: str,
    cards: list[dict[str, Any]],
    number: int,
    names: list[str],
    subsets: list[str],
    phases: list[str],
    total: int,
) -> str:
    options = lambda values: "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)  # noqa: E731
    pager = "".join(
        f'<a href="{_esc(n)}" data-page="{i}"{" class=current" if i == number else ""}>{i}</a>'
        for i, n in enumerate(names, start=1)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)} — page {number}</title><link rel="stylesheet" href="assets/gallery.css"></head>
<body data-page="{number}">
<header><h1>{_esc(title)}</h1>
<p class="summary">{total} clips, page {number} of {len(names)}, <span id="shown">{len(cards)}</span> shown here</p>
<form id="filters">
<label>subset <select id="subset"><option value="">all</option>{options(subsets)}</select></label>
<label>phase <select id="phase"><option value="">all</option>{options(phases)}</select></label>
</form>
<nav class="pager">{pager}</nav></header>
<main class="grid">
{chr(10).join(render_card(c) for c in cards)}
</main>
<script src="pages.js"></script><script src="assets/gallery.js"></script>
</body></html>
"""

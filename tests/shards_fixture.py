"""A small, real curation output for the shard-inspection tests, built in view.

Four sources: three "done" with four clips each (tiny H.264 clips from ffmpeg lavfi, 49 frames at 8 fps, 96x160),
one "rejected" by probe. Every clip is in tpt/ (two shards); the privacy-clean ones are also in p2ft/. The index
and the ledger are written the way the curation job writes them (INDEX_COLUMNS, ledger.ledger_row/append_rows).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ophora.dataset.ledger import append_rows, ledger_row
from ophora.dataset.shards import (INDEX_COLUMNS, INDEX_DIR, ClipMeta, ShardWriter, clip_key, decide_subsets,
                                    encode_sample, source_id_from_stable_id)

FPS, FRAMES, WIDTH, HEIGHT = 8, 49, 160, 96
SOURCES = ("testsrc2", "smptebars", "mandelbrot", "rgbtestsrc")
PHASES = ("incision", "capsulorhexis", "hydrodissection", "phacoemulsification", "irrigation-aspiration",
          "lens implantation")
INSTRUCTIONS = (
    "Create a clear corneal incision with the keratome at the temporal limbus.",
    "Tear a continuous curvilinear capsulorhexis with the cystotome and forceps.",
    "Inject balanced salt solution under the anterior capsule to hydrodissect the lens.",
    "Sculpt the nucleus with the phaco tip and crack it into quadrants.",
    "Aspirate the remaining cortex with the irrigation-aspiration handpiece.",
    "Insert the folded intraocular lens into the capsular bag with the injector.",
)
CLIPS_PER_SOURCE = 4


def make_clip(lavfi: str, seconds_offset: int, frames: int = FRAMES, fps: int = FPS, pix_fmt: str = "yuv420p"
              ) -> bytes:
    """A real H.264 yuv420p mp4 from an ffmpeg test source (argument list, no shell)."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
           "-i", f"{lavfi}=size={WIDTH}x{HEIGHT}:rate={fps}", "-ss", str(seconds_offset), "-frames:v", str(frames),
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt, "-movflags", "+faststart",
           "-f", "mp4"]
    with tempfile.TemporaryDirectory() as tmp:  # mp4 needs a seekable output
        out = Path(tmp) / "clip.mp4"
        subprocess.run(cmd + [str(out)], check=True, capture_output=True)
        return out.read_bytes()


def clip_meta(source_index: int, clip_index: int) -> ClipMeta:
    source_id = source_id_from_stable_id(f"video-{source_index}")
    n = source_index * CLIPS_PER_SOURCE + clip_index
    reasons = ["text_overlay"] if n % 3 == 0 else (["face"] if n % 5 == 4 else [])
    start = 8.0 * clip_index + 1.5
    return ClipMeta(
        key=clip_key(source_id, clip_index), source_id=source_id, source_uri=f"file:///videos/video-{source_index}.mp4",
        clip_index=clip_index, scene_index=clip_index // 2, start=start, end=start + FRAMES / FPS, fps=FPS,
        num_frames=FRAMES, width=WIDTH, height=HEIGHT, instruction=INSTRUCTIONS[n % len(INSTRUCTIONS)],
        narration=f"now we {INSTRUCTIONS[n % len(INSTRUCTIONS)].lower()} [NAME] watch the wound",
        language="en", phase=PHASES[n % len(PHASES)], subsets=decide_subsets(reasons, identifying=False),
        p2ft_reasons=reasons, scores={"surgical_field": round(0.5 + 0.04 * n, 3), "motion": round(0.1 * (n % 7), 3),
                                      "sharpness": round(0.9 - 0.03 * n, 3)},
        flags={"text_overlay": "text_overlay" in reasons, "face": "face" in reasons},
        models={"refine": "smollm2@0.1.2"})


def build_shards(root: Path, sources: int = 3) -> Path:
    """Write the fixture curation output under ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    index_rows, ledger_rows = [], []
    writers = {s: ShardWriter(str(root), s, prefix="shard-w0", max_count=6) for s in ("tpt", "p2ft")}
    for s in range(sources):
        keys = []
        for c in range(CLIPS_PER_SOURCE):
            meta = clip_meta(s, c)
            mp4 = make_clip(SOURCES[(s + c) % len(SOURCES)], seconds_offset=c)
            for subset in meta.subsets:
                shard = writers[subset].write(meta.key, encode_sample(meta, mp4))
                index_rows.append({"key": meta.key, "subset": subset, "shard": str(Path(shard).relative_to(root)),
                                   "source_id": meta.source_id, "start": meta.start, "end": meta.end,
                                   "duration": meta.end - meta.start, "phase": meta.phase,
                                   "instruction": meta.instruction, "scores_json": json.dumps(meta.scores)})
            keys.append(meta.key)
        ledger_rows.append(ledger_row(f"file:///videos/video-{s}.mp4", clip_meta(s, 0).source_id, "done",
                                      duration=40.0, keys=keys,
                                      drops={"refine: not a surgical action": 2 + s, "privacy: face in frame": s,
                                             "quality: blurred": 1}))
    for w in writers.values():
        w.close()
    ledger_rows.append(ledger_row("file:///videos/broken.mp4", None, "rejected", stage="probe",
                                  reason="no video stream"))
    append_rows(str(root), ledger_rows)
    (root / INDEX_DIR).mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{c: r[c] for c in INDEX_COLUMNS} for r in index_rows]),
                   root / INDEX_DIR / "part-0.parquet")
    return root


_BUILT: dict[str, Path] = {}


def pristine_shards(tmp_path_factory) -> Path:
    """The fixture output, built once per test session (tests that corrupt it work on a copy)."""
    if "root" not in _BUILT:
        _BUILT["root"] = build_shards(tmp_path_factory.mktemp("shards") / "out")
    return _BUILT["root"]


def copy_of(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest)
    return dest


@pytest.fixture(scope="session")
def shard_root(tmp_path_factory) -> Path:
    """The pristine fixture output (read-only by convention: corrupt a ``copy_of`` it)."""
    return pristine_shards(tmp_path_factory)


def write_raw_tar(path: Path, members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> Path:
    """A tar written byte by byte with tarfile, bypassing ShardWriter's checks (to plant hostile members)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def sample_members(source_index: int, clip_index: int, **meta_changes) -> list[tuple[str, bytes]]:
    """The (name, bytes) members of one fixture sample, with optional metadata changes."""
    meta = clip_meta(source_index, clip_index).model_copy(update=meta_changes)
    encoded = encode_sample(meta, make_clip("testsrc2", 0))
    return [(f"{meta.key}.{ext}", encoded[ext]) for ext in ("json", "mp4", "txt")]

"""Test footage built from real microscope clips, and scene boundaries scored against what was built.

The product team's reference clips (49 frames of real-looking cataract surgery each, kept outside the repo) are too
short to hold a clip window, and nothing in them is a cut. Played forward then backward (ping-pong) a clip becomes
a ~12 s continuous shot; shots of different clips joined with hard cuts and cross-dissolves, rendered at a chosen
size and frame rate, make a video whose every boundary is known. A focus pull (a blur ramp in and out) and a
specular flash (a brief over-exposure) are continuous too: a detector must not call them cuts.

Used by tests/curation/test_footage_scenes.py and benchmarks/bench_footage.py; the detector never sees the truth.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ophora.video import raw_frames_input

REFERENCE_FPS = 8.0
TOLERANCE_S = 0.25


@dataclass
class Shot:
    """One continuous shot: a reference clip ping-ponged ``loops`` times, with an optional ``effect``
    ("focus_pull", "flash") centred in it."""

    clip: str
    loops: int = 1
    effect: str = ""

    def frames(self, clips: dict[str, np.ndarray]) -> np.ndarray:
        """The shot's frames at the reference rate (8 fps)."""
        f = clips[self.clip]
        once = np.concatenate([f, f[-2:0:-1]])  # forward, then back without repeating the turnaround frames
        out = np.concatenate([once] * self.loops + [f[:1]])
        return apply_effect(out, self.effect)


@dataclass
class Footage:
    """A video of shots joined by transitions (``("cut", 0)`` or ``("dissolve", seconds)``), and its truth."""

    name: str
    shots: list[Shot]
    transitions: list[tuple[str, float]] = field(default_factory=list)
    width: int = 720
    height: int = 480
    fps: float = 30.0


def load_clips(reference: str | Path) -> dict[str, np.ndarray]:
    """Every reference clip's frames (BGR, native size) by file stem."""
    import av

    clips = {}
    for path in sorted(Path(reference).glob("*.mp4")):
        with av.open(str(path)) as c:
            clips[path.stem] = np.stack([fr.to_ndarray(format="bgr24") for fr in c.decode(video=0)])
    if not clips:
        raise FileNotFoundError(f"no reference clips (*.mp4) in {reference}")
    return clips


def apply_effect(frames: np.ndarray, effect: str) -> np.ndarray:
    """A focus pull (Gaussian blur ramping to sigma 6 and back over the middle 2.5 s) or a specular flash (0.4 s
    of light washing out the field) on the middle of ``frames`` (8 fps)."""
    if not effect:
        return frames
    out, mid = frames.copy(), len(frames) // 2
    if effect == "focus_pull":
        half = int(1.25 * REFERENCE_FPS)
        for k in range(mid - half, mid + half + 1):
            sigma = 6.0 * (1 - abs(k - mid) / half)
            if sigma > 0.3:
                out[k] = cv2.GaussianBlur(frames[k], (0, 0), sigma)
    elif effect == "flash":
        for k, gain in zip(range(mid - 1, mid + 2), (0.5, 1.0, 0.5)):
            out[k] = cv2.addWeighted(frames[k], 1 - 0.7 * gain, np.full_like(frames[k], 255), 0.7 * gain, 0)
    else:
        raise ValueError(f"unknown effect {effect!r}")
    return out


def _timeline(
    footage: Footage, clips: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], list[float], list[dict], float]:
    shots = [s.frames(clips) for s in footage.shots]
    starts, cuts, t = [], [], 0.0
    for i, shot in enumerate(shots):
        starts.append(t)
        t += len(shot) / REFERENCE_FPS
        if i < len(footage.transitions):
            kind, dur = footage.transitions[i]
            cuts.append({"time": round(t, 4), "kind": kind, "duration": float(dur) if kind == "dissolve" else 0.0})
    return shots, starts, cuts, t


def frames(
    footage: Footage, clips: dict[str, np.ndarray], fps: float | None = None, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """The footage's frames (BGR) at ``fps`` (default its own) and ``size`` (w, h; default its own): each shows
    the 8 fps frame of its time, as a frame-rate conversion of real footage does."""
    shots, starts, cuts, duration = _timeline(footage, clips)
    fps = fps or footage.fps
    w, h = size or (footage.width, footage.height)
    for k in range(int(round(duration * fps))):
        yield cv2.resize(_frame_at((k + 0.5) / fps, shots, starts, cuts), (w, h), interpolation=cv2.INTER_AREA)


def truth_of(footage: Footage, clips: dict[str, np.ndarray]) -> dict:
    """What was built: ``cuts`` ({time, kind, duration}; a dissolve's time is its middle), ``continuous`` spans
    clear of any transition, the duration and the shots."""
    _, _, cuts, duration = _timeline(footage, clips)
    continuous, lo = [], 0.0
    for c in cuts:
        continuous.append([lo, c["time"] - c["duration"] / 2])
        lo = c["time"] + c["duration"] / 2
    continuous.append([lo, duration])
    return {
        "file": f"{footage.name}.mp4",
        "width": footage.width,
        "height": footage.height,
        "fps": footage.fps,
        "duration": round(duration, 4),
        "cuts": cuts,
        "continuous": [[round(a, 4), round(b, 4)] for a, b in continuous],
        "shots": [{"clip": s.clip, "loops": s.loops, "effect": s.effect} for s in footage.shots],
    }


def render(footage: Footage, clips: dict[str, np.ndarray], out_dir: str | Path) -> dict:
    """Encode ``footage`` as H.264 mp4 at its size and rate into ``out_dir`` (with its truth as .json beside it)
    and return the truth (:func:`truth_of`)."""
    path = Path(out_dir) / f"{footage.name}.mp4"
    args = [
        *raw_frames_input(footage.width, footage.height, footage.fps, "bgr24"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE)
    try:
        for frame in frames(footage, clips):
            proc.stdin.write(frame.tobytes())
    finally:
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg could not encode {path}")
    truth = truth_of(footage, clips)
    path.with_suffix(".json").write_text(json.dumps(truth, indent=1))
    return truth


def _shot_frame(shot: np.ndarray, t: float) -> np.ndarray:
    return shot[min(len(shot) - 1, max(0, int(t * REFERENCE_FPS)))]


def _frame_at(t: float, shots: list[np.ndarray], starts: list[float], cuts: list[dict]) -> np.ndarray:
    i = max(j for j, s in enumerate(starts) if s <= t) if t >= starts[0] else 0
    frame = _shot_frame(shots[i], t - starts[i])
    for j, c in enumerate(cuts):  # a centred cross-dissolve mixes the shots on either side of a boundary
        half = c["duration"] / 2
        if c["kind"] == "dissolve" and c["time"] - half <= t < c["time"] + half:
            a = _shot_frame(shots[j], min(t - starts[j], len(shots[j]) / REFERENCE_FPS - 1e-6))
            b = _shot_frame(shots[j + 1], max(0.0, t - starts[j + 1]))
            alpha = (t - (c["time"] - half)) / c["duration"]
            frame = cv2.addWeighted(a, 1 - alpha, b, alpha, 0)
    return frame


def score_boundaries(truth: dict, boundaries: list[tuple[float, float]], tol: float = TOLERANCE_S) -> dict:
    """How detected boundary intervals meet the truth: ``found`` and ``total`` by kind, ``false`` (boundaries that
    meet no true cut) and ``continuous_s`` (seconds of continuous footage). A boundary meets a cut when its
    interval overlaps the transition (a hard cut's instant, a dissolve's span) widened by ``tol``."""
    from ophora.curation.stages.scenes import merge_intervals

    merged = merge_intervals(boundaries)
    found, total, used = {}, {}, set()
    for c in truth["cuts"]:
        total[c["kind"]] = total.get(c["kind"], 0) + 1
        half = c.get("duration", 0.0) / 2
        lo, hi = c["time"] - half - tol, c["time"] + half + tol
        meet = [i for i, (a, b) in enumerate(merged) if a <= hi and b >= lo]
        if meet:
            found[c["kind"]] = found.get(c["kind"], 0) + 1
            used.update(meet)
    false = [merged[i] for i in range(len(merged)) if i not in used]
    continuous = sum(b - a for a, b in truth.get("continuous", []))
    return {
        "found": found,
        "total": total,
        "false": len(false),
        "false_at": false,
        "continuous_s": round(continuous, 3),
    }


# What a surgeon might say over each reference clip: two lines per ~12 s shot, for narrated test videos.
NARRATION = {
    "Anterio-Chamber-Flushing": [
        "Balanced salt solution is run through the side port to flush the anterior chamber.",
        "We keep irrigating until the chamber is completely clear of debris.",
    ],
    "Capsule-Pulishing": [
        "Now I polish the posterior capsule with the irrigation tip on low vacuum.",
        "The remaining epithelial cells are vacuumed off the capsule.",
    ],
    "Lens-Implantation": [
        "The folded lens is injected through the main incision into the capsular bag.",
        "I let the optic unfold and guide the haptics into the bag.",
    ],
    "hydrodissection": [
        "The cannula goes under the capsule edge and I inject fluid for hydrodissection.",
        "You can see the fluid wave pass behind the nucleus, so it rotates freely.",
    ],
}


def write_srt(truth: dict, out_dir: str | Path) -> Path:
    """A sidecar .srt beside the rendered video: each shot's two narration lines, spoken in its first and second
    half, well inside it."""

    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    entries, start = [], 0.0
    bounds = [c["time"] for c in truth["cuts"]] + [truth["duration"]]
    for shot, end in zip(truth["shots"], bounds):
        first, second = NARRATION[shot["clip"]]
        mid = (start + end) / 2
        entries += [(start + 0.8, mid - 0.8, first), (mid + 0.3, end - 1.0, second)]
        start = end
    path = (Path(out_dir) / truth["file"]).with_suffix(".srt")
    path.write_text(
        "".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(entries, 1)),
        encoding="utf-8",
    )
    return path


def clean_share(truth: dict, clips: list[tuple[float, float]]) -> float:
    """Share of the truth's continuous (clean surgical) seconds that ``clips`` (start, end) cover."""
    from ophora.dataset.ledger import minus_spans, union_spans

    spans = union_spans(map(tuple, truth["continuous"]))
    covered = union_spans(clips)
    total = sum(b - a for a, b in spans)
    missed = sum(b - a for a, b in minus_spans(spans, covered))
    return (total - missed) / total if total else 0.0

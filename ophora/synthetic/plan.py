"""What one synthetic video will be, decided from the seed before anything is drawn: its file format, its scenes
(kind, phase, length, transition) and where each narration line falls.

Small corpora still cover every container and every special scene kind: those rotate with the video index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ophora.synthetic.narration import (
    SPEECH_RATE,
    Identity,
    Line,
    action_lines,
    aside_line,
    aside_lines,
    filler_line,
    phases,
    phi_line,
)

# container -> (ffmpeg muxer, video codec as ffprobe names it, encoder arguments, [(audio codec, sample rates)])
CONTAINERS = {
    "mp4": (
        "mp4",
        "h264",
        ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"],  # ultrafast: 10x the bytes
        [("aac", [22050, 44100, 48000])],
    ),
    "mkv": (
        "matroska",
        "hevc",
        ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "28", "-x265-params", "log-level=error"],
        [("aac", [44100, 48000]), ("opus", [48000])],
    ),
    "webm": (
        "webm",
        "vp9",
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "0", "-crf", "40", "-row-mt", "1"],
        [("opus", [48000]), ("vorbis", [22050, 44100])],
    ),
}
AUDIO_ENCODERS = {
    "aac": ["-c:a", "aac", "-b:a", "96k"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
    "vorbis": ["-c:a", "libvorbis", "-q:a", "3"],
}
RESOLUTIONS = [((854, 480), 0.2), ((640, 480), 0.08), ((960, 540), 0.1), ((1280, 720), 0.42), ((1920, 1080), 0.2)]
FRAME_RATES = [("24", 0.15), ("25", 0.2), ("30000/1001", 0.3), ("30", 0.25), ("60", 0.1)]
# microscope view plus something on top (burned-in patient details or a recorder bar, teaching graphics, an OCT
# inset, the presenter's camera in a corner); each carries a phase
SPECIAL_KINDS = ("phi_text", "overlay", "pip", "face_pip")
PHASE_KINDS = ("surgical",) + SPECIAL_KINDS
# (belongs in TPT, belongs in P2FT): graphics keep a clip out of P2FT; identifying content keeps it out of both
EXPECT = {
    "surgical": (True, True),
    "overlay": (True, False),
    "pip": (True, False),
    "phi_text": (False, False),
    "face_pip": (False, False),
    "face": (False, False),
    "slide": (False, False),
    "black": (False, False),
    "frozen": (False, False),
}
_CORE_PHASES = {
    "incision",
    "capsulorhexis",
    "hydrodissection",
    "phacoemulsification",
    "irrigation_aspiration",
    "lens_implantation",
}


@dataclass
class VideoFormat:
    """File-level facts of one video."""

    container: str
    width: int
    height: int
    fps: Fraction
    audio: tuple[str, int, int] | None  # (codec, channels, sample rate)
    subtitles: list[str]  # suffixes of sidecar subtitle files
    voice_wpm: int
    voice_pitch: int

    @property
    def fps_text(self) -> str:
        return f"{self.fps.numerator}/{self.fps.denominator}" if self.fps.denominator != 1 else str(self.fps)


@dataclass
class ScenePlan:
    """One scene: its kind, phase, frame range and how it begins."""

    kind: str
    phase: str | None
    seconds: float
    transition: str | None = None  # cut | dissolve, None for the first scene
    dissolve_frames: int = 0
    speaks_phi: bool = False
    start_frame: int = 0
    end_frame: int = 0


def choose_format(rng: np.random.Generator, index: int, seed: int, max_height: int | None) -> VideoFormat:
    """Container rotates with the index; resolution, frame rate, audio and subtitles are drawn from the seed."""
    container = list(CONTAINERS)[(seed + index) % len(CONTAINERS)]
    sizes = [(wh, p) for wh, p in RESOLUTIONS if max_height is None or wh[1] <= max_height]
    if not sizes:  # below 480p only when a caller caps it there
        h = max(2, int(max_height) // 2 * 2)
        sizes = [((int(round(h * 16 / 9 / 2)) * 2, h), 1.0)]
    probs = np.array([p for _, p in sizes])
    width, height = sizes[rng.choice(len(sizes), p=probs / probs.sum())][0]
    rates = np.array([p for _, p in FRAME_RATES])
    fps = Fraction(FRAME_RATES[rng.choice(len(FRAME_RATES), p=rates)][0])
    if container == "mkv" and fps > 30:
        fps = Fraction(30)  # x265 at 60 fps would take most of a corpus's time budget
    codec, rates_hz = CONTAINERS[container][3][rng.integers(len(CONTAINERS[container][3]))]
    audio = (codec, int(rng.integers(1, 3)), int(rng.choice(rates_hz)))
    roll = rng.random()
    subtitles = {1: [".srt"], 2: [".vtt"]}.get(index % 4, [".srt"] if roll < 0.2 else [".vtt"] if roll < 0.35 else [])
    if index >= 3 and subtitles and rng.random() < 0.3:
        audio = None  # a silent upload whose narration lives only in its subtitles
    return VideoFormat(
        container, width, height, fps, audio, subtitles, int(rng.integers(145, 166)), int(rng.integers(35, 66))
    )


def _choose_phases(rng: np.random.Generator, count: int) -> list[str]:
    order = phases()
    weights = np.array([3.0 if p in _CORE_PHASES else 1.0 for p in order])
    if count <= len(order):
        picked = rng.choice(len(order), size=count, replace=False, p=weights / weights.sum())
    else:  # long videos: every phase, the core ones split over several scenes
        core = [i for i, p in enumerate(order) if p in _CORE_PHASES]
        picked = list(range(len(order))) + list(rng.choice(core, size=count - len(order)))
    return [order[i] for i in sorted(picked)]


def plan_scenes(rng: np.random.Generator, total: float, index: int, seed: int) -> list[ScenePlan]:
    """Scene kinds, phases and lengths (seconds) that add up to total; microscope scenes fill >= 60 %."""
    slot = seed + 2 * index
    has_face = index % 2 == 0 or rng.random() < 0.3
    speaks_phi = index % 3 != 2
    extras: list[ScenePlan] = []
    if total >= 20:
        extras.append(ScenePlan("slide", None, rng.uniform(2.5, 3.0)))
        if has_face:  # a presenter long enough to introduce the patient only where the video is long enough
            long_face = speaks_phi and total >= 50
            extras.append(
                ScenePlan(
                    "face", None, rng.uniform(5.5, 6.0) if long_face else rng.uniform(2.5, 3.0), speaks_phi=long_face
                )
            )
        extras += [ScenePlan("black", None, rng.uniform(0.8, 1.2)) for _ in range(1 + int(total // 120))]
        if slot % 3 != 1 or rng.random() < 0.5:
            extras += [ScenePlan("frozen", None, rng.uniform(1.5, 2.0)) for _ in range(1 + int(total // 180))]
    specials = [SPECIAL_KINDS[slot % 3]] if total >= 30 else []  # a face inset comes only as an extra
    specials += list(rng.choice(SPECIAL_KINDS, size=max(0, int(round(total / 45)) - 1)))
    special_scenes = [ScenePlan(str(k), None, rng.uniform(6.6, 7.4)) for k in specials]
    # keep the real microscope picture at 60 % of the time or more: drop decorations until it is
    for victim in ("frozen", "black", "face", "slide", "special"):
        while sum(s.seconds for s in extras + special_scenes) > 0.38 * total:  # margin for frame rounding
            pool = special_scenes if victim == "special" else [s for s in extras if s.kind == victim]
            if not pool:
                break
            (special_scenes if victim == "special" else extras).remove(pool[-1])
    phi_at_face = any(s.speaks_phi for s in extras)
    budget = total - sum(s.seconds for s in extras + special_scenes)
    n_surgical = max(1, int(budget // 8.0))
    shares = rng.uniform(0.85, 1.15, n_surgical)
    lengths = budget * shares / shares.sum()
    if lengths.min() < 7.0:
        lengths[:] = budget / n_surgical
    surgical = [ScenePlan("surgical", None, float(x)) for x in lengths]
    if speaks_phi and not phi_at_face:
        surgical[0].speaks_phi = True  # said over the opening microscope scene; that scene needs room for it
        if n_surgical > 1 and lengths[0] < 11.5:
            give = (lengths[1:] - 7.2).clip(0)
            extra = min(11.5 - lengths[0], give.sum())
            for s, g in zip(surgical[1:], give):
                s.seconds -= extra * g / max(give.sum(), 1e-9)
            surgical[0].seconds += extra
    body = surgical[:1]
    rest = surgical[1:] + special_scenes
    body += [rest[i] for i in rng.permutation(len(rest))]
    for scene, phase in zip(body, _choose_phases(rng, len(body))):
        scene.phase = phase
    opening = [s for s in extras if s.kind in ("slide", "face")]
    if len(opening) == 2 and rng.random() < 0.3:
        opening.reverse()
    for s in (s for s in extras if s.kind in ("black", "frozen")):
        at = int(rng.integers(1, len(body))) if len(body) > 1 else len(body)
        if s.kind == "black" and rng.random() < 0.25:
            opening.insert(0, s)
        else:
            body.insert(at, s)
    scenes = opening + body
    for prev, scene in zip(scenes, scenes[1:]):
        scene.transition = "dissolve" if rng.random() < 0.3 else "cut"
    return scenes


def place_frames(scenes: list[ScenePlan], total: float, fps: Fraction, rng: np.random.Generator) -> int:
    """Snap scene boundaries to whole frames and size each dissolve; returns the frame count."""
    n_frames = max(1, int(round(total * fps)))
    edges, acc = [0], 0.0
    for s in scenes[:-1]:
        acc += s.seconds
        edges.append(min(n_frames - 1, max(edges[-1] + 1, int(round(acc * fps)))))
    edges.append(n_frames)
    for s, a, b in zip(scenes, edges, edges[1:]):
        s.start_frame, s.end_frame = a, b
    for prev, s in zip(scenes, scenes[1:]):
        if s.transition == "dissolve":
            shortest = min(prev.end_frame - prev.start_frame, s.end_frame - s.start_frame)
            s.dissolve_frames = int(min(round(rng.uniform(0.4, 1.0) * fps), shortest // 4))
            if s.dissolve_frames < 2:
                s.transition, s.dissolve_frames = "cut", 0
    return n_frames


def _candidates(scene: ScenePlan, rng: np.random.Generator, who: Identity, last: bool) -> list[list[Line]]:
    """What the narrator may say during a scene: groups tried in order; from each group the first line that fits."""
    groups: list[list[Line]] = []
    if scene.speaks_phi:
        groups.append([phi_line(rng, who)])
    if scene.kind in PHASE_KINDS:
        groups.append(action_lines(rng, scene.phase))
        roll = rng.random()
        if roll < 0.3:
            groups.append(action_lines(rng, scene.phase))
        elif roll < 0.45:
            groups.append([filler_line(rng)])
        elif roll < 0.6:
            groups.append([aside_line(rng)])
    elif scene.kind in ("slide", "face") and not scene.speaks_phi and rng.random() < 0.8:
        groups.append(aside_lines(rng, "intros"))
    elif scene.kind == "frozen" and rng.random() < 0.5:
        groups.append([filler_line(rng)])
    if last and rng.random() < 0.5:
        groups.append(aside_lines(rng, "outros"))
    return groups


def plan_narration(
    scenes: list[ScenePlan], fps: Fraction, who: Identity, rng: np.random.Generator, say: Callable[[str], np.ndarray]
) -> list[tuple[float, np.ndarray, Line]]:
    """Place spoken lines inside the scenes they talk about, with silences between; say(text) gives the speech.

    A line is placed only where it ends before its scene does, so narration never spills over a cut.
    """
    placed = []
    for i, scene in enumerate(scenes):
        start, end = scene.start_frame / fps, scene.end_frame / fps
        cursor = float(start) + rng.uniform(0.25, 0.7)
        spoken_actions: set[str] = set()
        for group in _candidates(scene, rng, who, last=i == len(scenes) - 1):
            for line in group:
                if line.kind == "action" and line.text in spoken_actions:
                    continue
                pcm = say(line.text)
                if cursor + pcm.size / SPEECH_RATE <= float(end) - 0.25:
                    placed.append((cursor, pcm, Line(line.text, line.kind, scene.phase, line.phi_words)))
                    spoken_actions.add(line.text)
                    cursor += pcm.size / SPEECH_RATE + rng.uniform(0.5, 1.2)
                    break
    return placed

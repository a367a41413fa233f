"""One synthetic video: its scenes painted, its narration spoken and mixed, both encoded by ffmpeg, its subtitle
sidecars and its ground-truth JSON written. :mod:`ophora.synthetic.corpus` makes a corpus of them."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from ophora.synthetic import plan
from ophora.synthetic.eye import SurgicalView, make_eye_look
from ophora.synthetic.narration import SPEECH_RATE, make_identity, mix_track, speak, write_subtitles, write_wav
from ophora.synthetic.scenes import (
    BurnedInText,
    Overlay,
    PictureInPicture,
    Presenter,
    Still,
    black,
    dissolve,
    title_slide,
)
from ophora.video import raw_frames_input

TITLES = [
    "Phacoemulsification Cataract Surgery",
    "Cataract Surgery Step by Step",
    "Routine Phaco Case",
    "Small Incision Cataract Surgery",
]


def video_name(seed: int, index: int) -> str:
    return f"surgery_s{seed}_{index:03d}"


def _rngs(seed: int, index: int) -> list[np.random.Generator]:
    """Independent streams for format, scenes, pictures and speech, so one never shifts another."""
    return [np.random.default_rng([seed, index, k]) for k in range(4)]


def _scene_renderers(scenes: list[plan.ScenePlan], fmt: plan.VideoFormat, who, rng: np.random.Generator):
    """One frame source per scene, plus the identifying strings each shows."""
    look = make_eye_look(rng)
    w, h = fmt.width, fmt.height
    renderers, shown = [], []
    last_phase = next((s.phase for s in scenes if s.phase), "incision")
    for s in scenes:
        seconds = (s.end_frame - s.start_frame) / fmt.fps
        lines: list[tuple[str, list[str]]] = []
        if s.phase:
            last_phase = s.phase
            view = SurgicalView(look, s.phase, w, h, float(seconds), rng)
        if s.kind == "surgical":
            r = view
        elif s.kind == "overlay":
            r = Overlay(view, s.phase.replace("_", " ").title(), rng)
        elif s.kind in ("pip", "face_pip"):
            r = PictureInPicture(view, rng, face=s.kind == "face_pip")
        elif s.kind == "phi_text":
            bar = rng.random() < 0.5
            lines = [who.recorder_bar(rng)] if bar else who.burned_in_lines(rng)
            r = BurnedInText(view, [text for text, _ in lines], rng, bar=bar)
        elif s.kind == "slide":
            lines = who.slide_lines()[: int(rng.integers(2, 5))]
            r = title_slide(w, h, TITLES[rng.integers(len(TITLES))], [text for text, _ in lines], rng)
        elif s.kind == "face":
            caption = f"{who.surgeon_title}, {who.hospital}"
            lines = [(caption, [*who.surgeon.words, who.hospital])]
            r = Presenter(w, h, caption, rng)
        elif s.kind == "frozen":  # the picture stalls on one microscope frame from another moment
            r = Still(SurgicalView(look, last_phase, w, h, 5.0, rng).frame(float(rng.uniform(1.0, 4.0))))
        else:
            r = black(w, h)
        renderers.append(r)
        shown.append(lines)
    return renderers, shown


def _frames(scenes: list[plan.ScenePlan], renderers, fps: Fraction, n_frames: int):
    """Every output frame in order, with hard cuts and centred cross-dissolves at scene boundaries."""
    j = 0
    for k in range(n_frames):
        while k >= scenes[j].end_frame:
            j += 1
        s = scenes[j]
        img = renderers[j].frame(float((k - s.start_frame) / fps))
        nxt = scenes[j + 1] if j + 1 < len(scenes) else None
        if nxt is not None and nxt.dissolve_frames and k >= nxt.start_frame - nxt.dissolve_frames // 2:
            into = k - (nxt.start_frame - nxt.dissolve_frames // 2)
            other = renderers[j + 1].frame(float((k - nxt.start_frame) / fps))
            img = dissolve(img, other, (into + 0.5) / nxt.dissolve_frames)
        elif s.dissolve_frames and k < s.start_frame - s.dissolve_frames // 2 + s.dissolve_frames:
            into = k - (s.start_frame - s.dissolve_frames // 2)
            prev = renderers[j - 1].frame(float((k - scenes[j - 1].start_frame) / fps))
            img = dissolve(prev, img, (into + 0.5) / s.dissolve_frames)
        yield img


def _encode(
    path: Path,
    fmt: plan.VideoFormat,
    frames,
    audio_wav: Path | None,
    n_frames: int,
    on_frames: Callable[[int], None] | None,
) -> None:
    """Pipe raw frames (and the soundtrack) through ffmpeg into the container; raises with ffmpeg's message."""
    muxer, _, v_args, _ = plan.CONTAINERS[fmt.container]
    cmd = raw_frames_input(fmt.width, fmt.height, fmt.fps_text, "bgr24")
    if audio_wav is not None:
        cmd += ["-i", str(audio_wav)]
    cmd += ["-map", "0:v:0", *v_args, "-pix_fmt", "yuv420p", "-frames:v", str(n_frames)]
    if audio_wav is not None and fmt.audio is not None:
        codec, channels, rate = fmt.audio
        cmd += ["-map", "1:a:0", *plan.AUDIO_ENCODERS[codec], "-ar", str(rate), "-ac", str(channels)]
    cmd += ["-f", muxer, str(path)]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errors)
        try:
            for k, img in enumerate(frames, 1):
                proc.stdin.write(memoryview(np.ascontiguousarray(img)).cast("B"))
                if on_frames is not None and k % 30 == 0:
                    on_frames(30)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = proc.wait()
        if rc != 0:
            errors.seek(0)
            raise RuntimeError(f"ffmpeg failed writing {path.name}: {errors.read().decode(errors='replace')[-500:]}")
    if on_frames is not None:
        on_frames(n_frames % 30)


def frame_count(seed: int, index: int, minutes: float, max_height: int | None) -> int:
    fmt = plan.choose_format(_rngs(seed, index)[0], index, seed, max_height)
    return max(1, int(round(minutes * 60 * fmt.fps)))


def make_video(
    out_dir: Path,
    seed: int,
    index: int,
    minutes: float,
    max_height: int | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> dict:
    """Render, narrate and encode one video; write its sidecars and truth; return the truth."""
    name = video_name(seed, index)
    r_format, r_scenes, r_picture, r_speech = _rngs(seed, index)
    fmt = plan.choose_format(r_format, index, seed, max_height)
    total = minutes * 60.0
    who = make_identity(np.random.default_rng([seed, index, 4]))  # its own stream: plans stay as they were
    scenes = plan.plan_scenes(r_scenes, total, index, seed)
    n_frames = plan.place_frames(scenes, total, fmt.fps, r_scenes)
    duration = n_frames / fmt.fps
    speech_cache: dict[str, np.ndarray] = {}

    def say(text: str) -> np.ndarray:
        if text not in speech_cache:
            speech_cache[text] = speak(text, "en-us", fmt.voice_wpm, fmt.voice_pitch)
        return speech_cache[text]

    placed = plan.plan_narration(scenes, fmt.fps, who, r_speech, say)
    renderers, shown = _scene_renderers(scenes, fmt, who, r_picture)
    videos = out_dir / "videos"
    ext = fmt.container
    final = videos / f"{name}.{ext}"
    partial = videos / f".{name}.partial.{ext}"
    with tempfile.TemporaryDirectory(prefix="ophora-synth-") as tmp:
        wav = None
        if fmt.audio is not None:
            wav = Path(tmp) / "narration.wav"
            write_wav(wav, mix_track(float(duration), [(p[0], p[1]) for p in placed], r_speech))
        _encode(partial, fmt, _frames(scenes, renderers, fmt.fps, n_frames), wav, n_frames, on_frames)
    os.replace(partial, final)
    narration = [
        {
            "start": round(start, 3),
            "end": round(start + pcm.size / SPEECH_RATE, 3),
            "text": line.text,
            "phase": line.phase,
            "kind": line.kind,
            "phi_words": list(line.phi_words),
        }
        for start, pcm, line in placed
    ]
    subtitles = []
    for suffix in fmt.subtitles:
        write_subtitles(videos / f"{name}{suffix}", narration)
        subtitles.append(f"videos/{name}{suffix}")
    truth = _truth(name, f"videos/{name}.{ext}", seed, fmt, duration, scenes, shown, narration, subtitles, who)
    write_json(out_dir / "truth" / f"{name}.json", truth)
    return truth


def _truth(name, file, seed, fmt, duration, scenes, shown, narration, subtitles, who) -> dict:
    rows, phi_words = [], []
    for i, (s, lines) in enumerate(zip(scenes, shown)):
        tpt, p2ft = plan.EXPECT[s.kind]
        rows.append(
            {
                "index": i,
                "start": round(float(s.start_frame / fmt.fps), 6),
                "end": round(float(s.end_frame / fmt.fps), 6),
                "kind": s.kind,
                "phase": s.phase,
                "transition_in": s.transition,
                "transition_duration": round(float(s.dissolve_frames / fmt.fps), 6),
                "phi_text": [text for text, _ in lines],
                "expect_tpt": tpt,
                "expect_p2ft": p2ft,
            }
        )
        phi_words += [w for _, words in lines for w in words]
    for seg in narration:
        phi_words += seg["phi_words"]
    audio = None
    if fmt.audio is not None:
        audio = {"codec": fmt.audio[0], "channels": fmt.audio[1], "sample_rate": fmt.audio[2]}
    return {
        "name": name,
        "file": file,
        "seed": seed,
        "duration": round(float(duration), 6),
        "fps": round(float(fmt.fps), 6),
        "fps_fraction": f"{fmt.fps.numerator}/{fmt.fps.denominator}",
        "width": fmt.width,
        "height": fmt.height,
        "container": fmt.container,
        "video_codec": plan.CONTAINERS[fmt.container][1],
        "audio": audio,
        "subtitles": subtitles,
        "phase_order": [s.phase for s in scenes if s.phase],
        "scenes": rows,
        "cuts": [{"time": r["start"], "kind": r["transition_in"]} for r in rows[1:]],
        "narration": narration,
        "phi_words": _unique_ignoring_case(phi_words),
    }


def _unique_ignoring_case(words: list[str]) -> list[str]:
    seen: set[str] = set()
    return [w for w in words if not (w.lower() in seen or seen.add(w.lower()))]


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)

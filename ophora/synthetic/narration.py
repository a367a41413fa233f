"""Narration for the synthetic corpus: lines from the team's phase scripts and spoken identifying details of a
Faker identity (:mod:`ophora.synthetic.identity`), espeak-ng speech, the mixed audio track and sidecar
subtitles.

Everything random draws from a numpy Generator the caller seeds, so a seed always gives the same words.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from ophora.synthetic.identity import Identity, make_identity  # noqa: F401 - callers take them from here

SPEECH_RATE = 22050  # espeak-ng writes 16-bit mono at this rate
SCRIPTS_FILE = Path(__file__).with_name("narration_scripts.yaml")


@lru_cache(maxsize=1)
def scripts() -> dict:
    """The team's narration scripts (phases in canonical surgical order, fillers, asides, intros, PHI lines)."""
    with SCRIPTS_FILE.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def phases() -> list[str]:
    """Cataract-surgery phases in the order a surgeon performs them."""
    return list(scripts()["phases"])


@dataclass
class Line:
    """One thing the narrator says: text plus what kind of speech it is."""

    text: str
    kind: str  # action | filler | aside | phi
    phase: str | None = None
    phi_words: tuple[str, ...] = ()


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def action_lines(rng: np.random.Generator, phase: str) -> list[Line]:
    """This phase's lines in a seeded order; some start with a spoken filler ("Um, ...")."""
    s = scripts()
    out = []
    for i in rng.permutation(len(s["phases"][phase])):
        text = s["phases"][phase][i]
        if rng.random() < 0.3:
            text = _pick(rng, s["filler_prefixes"]) + text[0].lower() + text[1:]
        out.append(Line(text, "action", phase))
    return out


def filler_line(rng: np.random.Generator) -> Line:
    return Line(_pick(rng, scripts()["fillers"]), "filler")


def aside_line(rng: np.random.Generator, group: str = "asides") -> Line:
    """An aside, intro or outro: speech that is not about the action on screen."""
    return Line(_pick(rng, scripts()[group]), "aside")


def aside_lines(rng: np.random.Generator, group: str) -> list[Line]:
    """Every line of a group (intros, outros, asides) in a seeded order, to try until one fits."""
    options = scripts()[group]
    return [Line(options[i], "aside") for i in rng.permutation(len(options))]


def phi_line(rng: np.random.Generator, who: Identity) -> Line:
    """A spoken identifying sentence, with or without a cue word ("Thanks to ... for the referral", "... will
    take over the closing"); phi_words are the identifying substrings exactly as in the text."""
    template = _pick(rng, scripts()["phi"])
    values = who.spoken_values()
    text = template.format(**{k: v for k, (v, _) in values.items()})
    words = [w for key, (_, ws) in values.items() if "{" + key + "}" in template for w in ws]
    return Line(text, "phi", None, tuple(dict.fromkeys(words)))


def speak(text: str, voice: str = "en-us", words_per_minute: int = 155, pitch: int = 50) -> np.ndarray:
    """espeak-ng speech for text as float32 mono at SPEECH_RATE, leading and trailing silence trimmed."""
    with tempfile.TemporaryDirectory(prefix="ophora-speak-") as tmp:
        wav_path = Path(tmp) / "line.wav"
        result = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-w", str(wav_path), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0 or not wav_path.exists():
            raise RuntimeError(f"espeak-ng failed on {text!r}: {result.stderr.decode(errors='replace')[-300:]}")
        with wave.open(str(wav_path), "rb") as w:
            if w.getframerate() != SPEECH_RATE or w.getsampwidth() != 2:
                raise RuntimeError(
                    f"espeak-ng wrote {w.getframerate()} Hz / {w.getsampwidth()} bytes, "
                    f"expected {SPEECH_RATE} Hz 16-bit"
                )
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(pcm) > 0.02)
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r}")
    return pcm[loud[0] : loud[-1] + 1]


def mix_track(duration: float, placed: list[tuple[float, np.ndarray]], rng: np.random.Generator) -> np.ndarray:
    """The whole soundtrack at SPEECH_RATE: theatre hum and hiss under speech placed at its start times."""
    n = int(round(duration * SPEECH_RATE))
    t = np.arange(n, dtype=np.float32) / SPEECH_RATE
    # a quiet bed (about -50 dBFS) so silences are realistic rather than digital zero
    track = 0.002 * np.sin(2 * np.pi * 50.0 * t, dtype=np.float32)
    track += rng.normal(0.0, 0.002, n).astype(np.float32)
    for start, pcm in placed:
        i = int(round(start * SPEECH_RATE))
        seg = pcm[: max(0, n - i)]
        track[i : i + seg.size] += 0.8 * seg
    return np.clip(track, -1.0, 1.0)


def write_wav(path: Path, pcm: np.ndarray, rate: int = SPEECH_RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((pcm * 32767.0).astype("<i2").tobytes())


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_subtitles(path: Path, cues: list[dict]) -> None:
    """Sidecar subtitles (.srt or .vtt chosen by the suffix) with one cue per narration segment."""
    if path.suffix == ".srt":
        blocks = [
            f"{i}\n{_stamp(c['start'], ',')} --> {_stamp(c['end'], ',')}\n{c['text']}\n" for i, c in enumerate(cues, 1)
        ]
        body = "\n".join(blocks)
    elif path.suffix == ".vtt":
        blocks = [f"{_stamp(c['start'], '.')} --> {_stamp(c['end'], '.')}\n{c['text']}\n" for c in cues]
        body = "WEBVTT\n\n" + "\n".join(blocks)
    else:
        raise ValueError(f"{path}: subtitles must be .srt or .vtt")
    path.write_text(body, encoding="utf-8")

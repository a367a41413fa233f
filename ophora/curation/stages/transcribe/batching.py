"""Speech from several sources decoded in shared batches.

faster-whisper's batched pipeline decodes up to ``batch_size`` 30 s clips at once, but one short source has few
clips (a 1-minute narration packs into 2–3), so decoding source by source leaves most of each batch empty. Here the
packed speech of several sources is laid end to end, decoded in one call with explicit clip boundaries (no clip
spans two sources, and each clip is decoded on its own, so a source's words do not depend on its neighbours), and
every segment is mapped back to the source and the source time it came from.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ophora.curation.stages.transcribe.audio import SAMPLE_RATE, TimeMap


@dataclass
class Piece:
    """Packed speech of one stretch of one source."""

    source: int  # the source's index in the call
    offset: float  # where the stretch starts in the source (s)
    audio: np.ndarray  # packed speech (pauses shortened)
    clips: list[dict]  # whisper clips in ``audio`` (s)
    tmap: TimeMap  # packed time -> time in the stretch

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


def full(pending: list[Piece], batch_size: int, max_audio_s: float) -> bool:
    """Whether the pieces waiting fill several whisper batches, or hold as much audio as one streamed chunk."""
    return sum(len(p.clips) for p in pending) >= 4 * batch_size or sum(p.seconds for p in pending) >= max_audio_s


def segment_row(s: Any, at) -> dict:
    """One faster-whisper segment as the transcript stores it; ``at(t, is_end)`` maps a time to source time."""
    return {
        "start": at(s.start),
        "end": at(s.end, True),
        "text": s.text.strip(),
        "avg_logprob": float(s.avg_logprob),
        "compression_ratio": float(s.compression_ratio),
        "no_speech_prob": float(s.no_speech_prob),
        "words": [
            {
                "word": w.word,
                "start": at(w.start),
                "end": at(w.end, True),
                "probability": round(float(w.probability), 4),
            }
            for w in (s.words or [])
        ],
    }


def decode(pipeline: Any, pieces: list[Piece], language: str, options: dict) -> list[list[dict]]:
    """Each piece's segments (times in its source's clock), the pieces decoded in one batched call."""
    if not pieces:
        return []
    # each piece starts on a whole second: faster-whisper floors a clip's word-time origin to 10 ms frames, so a
    # piece decoded here gets the word times it gets decoded alone
    starts, pos = [], 0
    for p in pieces:
        starts.append(pos)
        pos += -(-p.audio.size // SAMPLE_RATE) * SAMPLE_RATE
    audio = np.zeros(pos, np.float32)
    clips, bases = [], [start / SAMPLE_RATE for start in starts]
    for p, start, base in zip(pieces, starts, bases):
        audio[start : start + p.audio.size] = p.audio
        clips += [{"start": base + c["start"], "end": base + c["end"]} for c in p.clips]
    segments, _ = pipeline.transcribe(audio, language=language, clip_timestamps=clips, **options)
    out: list[list[dict]] = [[] for _ in pieces]
    for s in segments:
        if not s.text.strip():
            continue
        j = max(0, bisect.bisect_right(bases, (s.start + s.end) / 2) - 1)  # the piece its middle lies in
        p, base = pieces[j], bases[j]

        def at(t: float, is_end: bool = False, p=p, base=base) -> float:
            return round(p.offset + p.tmap(float(t) - base, is_end), 3)

        out[j].append(segment_row(s, at))
    return out


def by_language(pieces: Iterable[Piece], language_of) -> dict[str, list[Piece]]:
    """Pieces grouped by their source's language (one decoder language per call)."""
    groups: dict[str, list[Piece]] = {}
    for p in pieces:
        groups.setdefault(language_of(p.source), []).append(p)
    return groups

"""Hallucination guards: the segments whisper makes up (decoding loops, low confidence over non-speech) are dropped
before any window reads them, with a count per guard."""

from __future__ import annotations

import re
import zlib
from typing import Any


def repeats_a_phrase(text: str, times: int) -> bool:
    """True when some phrase of 1-8 words occurs ``times`` times in a row (whisper's decoding loops)."""
    words = re.findall(r"[\w']+", text.lower())
    for n in range(1, 9):
        for i in range(0, len(words) - n * times + 1):
            phrase = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == phrase for k in range(1, times)):
                return True
    return False


def guard_segments(segments: list[dict], cfg: Any) -> tuple[list[dict], dict[str, int]]:
    """Segments that pass the hallucination guards, and how many each guard dropped."""
    kept, dropped = [], {}
    for seg in segments:
        why = None
        lp, cr, ns = seg.get("avg_logprob"), seg.get("compression_ratio"), seg.get("no_speech_prob")
        if lp is not None and lp < cfg.min_avg_logprob:
            why = "low_logprob"
        elif cr is not None and cr > cfg.max_compression_ratio:
            why = "compression_ratio"
        elif ns is not None and lp is not None and ns > cfg.max_no_speech_prob and lp < cfg.min_avg_logprob / 2:
            why = "no_speech"
        elif repeats_a_phrase(seg["text"], cfg.max_phrase_repeats):
            why = "repetition"
        elif len(kept) >= 2 and all(k["text"].strip().lower() == seg["text"].strip().lower() for k in kept[-2:]):
            why = "repetition"
        if why:
            dropped[why] = dropped.get(why, 0) + 1
        else:
            kept.append(seg)
    return kept, dropped


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))

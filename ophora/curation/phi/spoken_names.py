"""Names as a speech recogniser writes them: a capitalised given name and a surname in lower case ("Quillan
tavorsk will take over", "Oriel van brakvenn is assisting"). The NER model rarely tags these (a lower-case word
does not look like a name to it), and at the start of a sentence the capital of the given name says nothing.

What marks the surname is generic: a lower-case word right after a capitalised name word, that is not English
(absent from the pipeline's vocabulary, :mod:`.vocabulary`) or that the tagger calls a proper noun, closing a noun
phrase (a verb, a preposition or the end follows). A surname that is an English word ("gill") is taken only as the
subject of a verb after a given name that is itself a proper noun, not English, or an entity the model tagged. Surgical vocabulary
(``surgical_terms.yaml``) is never a name.
"""

from __future__ import annotations

from ophora.curation.phi.names import (
    _PARTICLES,
    _TITLES,
    TokenRecognizer,
    _acronym,
    _name_word,
    date_bound,
    grow_name,
    is_surgical,
    split_word,
    wordlike,
)
from ophora.curation.phi.vocabulary import Vocabulary

_NOUNISH = {"NOUN", "PROPN", "X", "ADJ"}
# what may follow a name that closes a noun phrase ("... tavorsk will", "... tavorsk, who", "... tavorsk.")
_AFTER = {"VERB", "AUX", "PUNCT", "ADP", "CCONJ", "PART", "SCONJ"}


class LowerCaseSurnames(TokenRecognizer):
    """A given name and the lower-case surname after it (particles between: "van", "da"), as one NAME."""

    NAME = "lowercase_surnames"

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        super().__init__()

    def _lower(self, doc, i: int) -> bool:
        tok = doc[i]
        return (
            tok.text.islower()
            and wordlike(tok)
            and len(tok) > 1
            and not tok.is_stop
            and tok.lower_ not in _TITLES
            and tok.lower_ not in _PARTICLES
            and (tok.pos_ in _NOUNISH or not self.vocabulary.known(tok))
            and not date_bound(doc, i)
            and not is_surgical(doc, i, i + 1)
        )

    def _given(self, doc, i: int) -> bool:
        # a function word ("My", "So") opening a sentence is not a given name here
        return not doc[i].is_stop and _name_word(doc, i, lower_ok=False)

    def _foreign(self, tok) -> bool:
        return tok.pos_ == "PROPN" or not self.vocabulary.known(tok)

    def find(self, doc, nlp_artifacts):
        out, i = [], 1
        while i < len(doc):
            if not self._lower(doc, i):
                i += 1
                continue
            given = i - 1
            while given > 0 and doc[given].lower_ in _PARTICLES:
                given -= 1
            glued = split_word(doc, given)  # "Theres" read as "There s"
            given = glued[0] if glued else given
            end = i + 1
            while end < len(doc) and (
                self._lower(doc, end)
                or (doc[end].lower_ in _PARTICLES and end + 1 < len(doc) and self._lower(doc, end + 1))
            ):
                end += 1
            after = doc[end].pos_ if end < len(doc) else "PUNCT"
            if (glued or self._given(doc, given)) and after in _AFTER and self._evidence(doc, given, i, end):
                out.append(self.span("NAME", doc[slice(*grow_name(doc, given, end))], 0.6, "lower-case surname"))
            i = end
        return out

    def _evidence(self, doc, given: int, first: int, end: int) -> bool:
        if any(self._foreign(doc[k]) for k in range(first, end) if doc[k].lower_ not in _PARTICLES):
            return True
        # an English word as surname: the subject of a verb, after a given name that is a proper noun, not
        # English, or a person or place the model tagged (it takes many given names for places)
        g = doc[given]
        subject = doc[end - 1].dep_ in ("nsubj", "nsubjpass") and end < len(doc) and doc[end].pos_ in ("AUX", "VERB")
        return subject and (g.ent_type_ in ("PERSON", "GPE", "LOC") or self._foreign(g))


class UnknownCapitalised(TokenRecognizer):
    """Capitalised words that are not English in any part of speech (a name the NER model does not know, or one
    heard slightly wrong): two or more in a row ("Tavrin das Olvekk"), or one inside a sentence ("from Velmorre"),
    where the capital is the writer's, not the sentence's. Surgical vocabulary is left alone."""

    NAME = "unknown_capitalised"

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        super().__init__()

    def _candidate(self, doc, i: int) -> bool:
        tok = doc[i]
        return (
            tok.text[:1].isupper()
            and wordlike(tok)
            and len(tok) > 1
            and not tok.is_stop
            and not _acronym(tok)
            and tok.lower_ not in _TITLES
            and not self.vocabulary.known(tok, as_tagged=False)
            and not date_bound(doc, i)
            and not is_surgical(doc, i, i + 1)
        )

    def find(self, doc, nlp_artifacts):
        out, i = [], 0
        while i < len(doc):
            if not self._candidate(doc, i):
                i += 1
                continue
            end, words = i + 1, 1
            while end < len(doc):
                if self._candidate(doc, end):
                    end, words = end + 1, words + 1
                elif doc[end].lower_ in _PARTICLES and end + 1 < len(doc) and self._candidate(doc, end + 1):
                    end, words = end + 2, words + 1
                else:
                    break
            if (words >= 2 or not doc[i].is_sent_start) and not is_surgical(doc, i, end):
                out.append(self.span("NAME", doc[slice(*grow_name(doc, i, end))], 0.5, "capitalised, not English"))
            i = end
        return out

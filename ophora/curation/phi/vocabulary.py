"""English vocabulary for telling a word from a name: the WordNet lemma index (nouns, verbs, adjectives, adverbs)
and irregular forms that the spaCy pipeline ships for its rule lemmatizer, so nothing is downloaded and no list
is written here. A word absent from it (after lemmatising), or absent as the part of speech the tagger gave it
(a given name tagged an adjective), is not ordinary English: a name, a misheard name, or surgical jargon (which
``surgical_terms.yaml`` lists and the recognizers leave alone).

WordNet holds some famous surnames as nouns ("gandhi"), so being in it never clears a word; being absent from it
is one signal among the tagger's and the parser's. Function words (spaCy's stop words) count as known.
"""

from __future__ import annotations

from spacy.strings import hash_string

_POS = ("noun", "verb", "adj", "adv")
_TAGGED = {"NOUN": "noun", "PROPN": "noun", "VERB": "verb", "AUX": "verb", "ADJ": "adj", "ADV": "adv"}
_SUFFIXES = ("'s", "’s", "s", "es", "ed", "ing", "ly")


def pipeline_words(nlp) -> dict[str, frozenset[str]]:
    """Part of speech -> the words of the lemma index and the irregular forms of ``nlp``'s lemmatizer, lower-cased
    (empty when the pipeline has no lookup tables: then every word counts as known)."""
    lookups = getattr(nlp.get_pipe("lemmatizer"), "lookups", None) if "lemmatizer" in nlp.pipe_names else None
    out: dict[str, set[str]] = {pos: set() for pos in _POS}
    for name in ("lemma_index", "lemma_exc"):
        if lookups is None or not lookups.has_table(name):
            continue
        table = lookups.get_table(name)
        for pos in _POS:
            value = table.get(hash_string(pos)) or table.get(pos) or []
            if isinstance(value, dict):  # lemma_exc: form -> lemmas
                out[pos].update(value)
                out[pos].update(w for lemmas in value.values() for w in lemmas)
            else:
                out[pos].update(value)
    return {pos: frozenset(w.lower() for w in words if isinstance(w, str)) for pos, words in out.items() if words}


class Vocabulary:
    """``known(token)``: whether a spaCy token is an English word (in any inflection) of the pipeline's tables, as
    the part of speech the tagger gave it."""

    def __init__(self, by_pos: dict[str, frozenset[str]]):
        self.by_pos = by_pos
        self.any = frozenset().union(*by_pos.values()) if by_pos else frozenset()

    def known(self, tok, as_tagged: bool = True) -> bool:
        if not self.any or tok.is_stop:
            return True  # no tables: nothing can be called unknown
        words = self.by_pos.get(_TAGGED.get(tok.pos_, ""), self.any) if as_tagged else self.any
        lower = tok.lower_
        if lower in words or tok.lemma_.lower() in words:
            return True
        return any(lower.endswith(s) and lower[: -len(s)] in words for s in _SUFFIXES if len(lower) > len(s) + 2)

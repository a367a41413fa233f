"""Narration lines with no clause in which the surgeon acts, read for the action they still name: a noun of action
("a couple of injections of BSS at two clock hours"), a wish ("what we want is a round rhexis"), a substance or a
device sent somewhere ("point one mil of cefuroxime into the chamber", "a nylon suture across the wound"), a
purpose ("a little hydrodelineation, to separate the endonucleus"), or a procedure named ("hydrodissection now")."""

from __future__ import annotations

from ophora.curation.cataract_actions import INSTRUMENTS, SUBSTANCES, SURGICAL_NOUNS
from ophora.curation.stages.refine.clauses import _MOTION, _clause_tokens, _infinitive, _sentence, _word
from ophora.curation.stages.refine.instruction_form import NON_ACTION, _phrase, verb_lemma

# Things a surgeon makes: a verbless line that places one ("paracentesis at the limbus") means making it.
_MADE = frozenset("incision paracentesis port sideport rhexis capsulorhexis groove trench tunnel wound stab".split())
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


_WHERE = frozenset([*_MOTION, "along", "over", "around", "at", "from"])


def _named_actions(sentence) -> list[str]:
    """A verbless sentence whose action is a noun with what it acts on: "A couple of small injections of BSS at
    two clock hours." -> "Inject BSS at two clock hours."."""
    out = []
    for noun in sentence:
        verb = _NOMINAL.get(noun.lemma_.lower()) if noun.pos_ == "NOUN" else None
        of = next((c for c in noun.children if c.dep_ == "prep" and c.lower_ == "of"), None) if verb else None
        acted_on = next((g for g in of.children if g.dep_ == "pobj"), None) if of is not None else None
        if acted_on is None and verb and noun.dep_ == "ROOT":
            # the line's own noun with where it happens: "a weck-cel sweep along the wound"
            where = [c for c in noun.children if c.dep_ == "prep" and c.lower_ in _WHERE]
            if where:
                words = [(t.i, _word(t)) for c in where for t in _phrase(list(c.subtree))]
                out.append(_sentence(verb, sorted(words)))
            continue
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


_SUBORDINATE = frozenset("advcl relcl acl ccomp csubj".split())
# Things a surgeon puts somewhere: a verbless line that sends one somewhere ("a single nylon suture across the
# wound", "the chopper through the side port") puts it there (the place word chooses the verb, as in _MOTION).
_PLACED = INSTRUMENTS | frozenset("suture stitch ring hook lens iol implant shield drape".split())


# Nouns that name a procedure: a verbless line naming one ("hydrodissection now") asks to perform it.
# Where a substance is sent, and so what is done with it: into the eye it is injected, onto a surface applied.
_SENT = {"into": "inject", "through": "inject", "in": "inject", "under": "inject", "over": "apply", "onto": "apply"}
_PRAISE = frozenset("lovely nice good great perfect beautiful excellent fine neat".split())
_PROCEDURES = ("ectomy", "otomy", "rhexis", "dissection", "delineation", "emulsification")


def _finite_main(sentence) -> bool:
    """Whether the sentence's main clause has a finite verb (a reason or a relative clause does not count:
    "Trypan blue under air, because I can't see any red reflex")."""
    return any(
        t.tag_ in ("VBD", "VBP", "VBZ", "MD") and not any(x.dep_ in _SUBORDINATE for x in (t, *t.ancestors))
        for t in sentence
    )


def _verbless(sentence) -> list[str]:
    """A line with no finite verb: a purpose ("a little hydrodelineation, to separate the endonucleus ...") is
    the action; a substance sent somewhere ("point one mil of cefuroxime into the chamber") or named alone
    ("subconj steroid and antibiotic at the end") is injected; a thing the surgeon makes, placed somewhere
    ("paracentesis at the limbus"), is made there; a device sent somewhere ("a nylon suture across the wound")
    is put there."""
    if _finite_main(sentence):
        return []
    root = sentence.root
    sent_to = [c for c in root.children if c.dep_ == "prep" and c.lower_ in _SENT]
    named = {root, *root.conjuncts} if root.pos_ in ("NOUN", "PROPN") else set()  # "steroid and antibiotic"
    if any(t.lemma_.lower() in SUBSTANCES for t in (root.subtree if sent_to else named)):
        keep = [t for t in root.subtree if t.dep_ not in ("intj", "punct") and t.i < _next_step(sentence)]
        keep = [t for t in keep if not _in_clause(t, root) and (t in named or t.dep_ != "conj" or t.head not in named)]
        lemma = _SENT[sent_to[0].lower_] if sent_to else "inject"
        return [_sentence(lemma, [(t.i, t.lower_ if t.i == root.i else _word(t)) for t in keep])]
    for verb in sentence:
        if (
            verb.tag_ == "VB"
            and _infinitive(verb)
            and not any(x.dep_ in _SUBORDINATE - {"advcl"} for x in verb.ancestors)
        ):
            if verb_lemma(verb) not in NON_ACTION and (words := _clause_tokens(verb)):
                return [_sentence(verb_lemma(verb), words)]
    for noun in sentence:
        if noun.dep_ == "pobj" or not any(c.dep_ in ("prep", "acl", "appos") for c in noun.children):
            continue  # "paracentesis at the limbus", "second port, ninety degrees away, made with a blade"
        way = next((c.lower_ for c in noun.children if c.dep_ == "prep" and c.lower_ in _MOTION), "")
        lemma = "make" if noun.lemma_.lower() in _MADE else _MOTION.get(way) if noun.lemma_.lower() in _PLACED else None
        if lemma:
            words = [(t.i, _word(t)) for t in _phrase(list(noun.subtree)) if t.dep_ not in ("punct", "intj")]
            words = [(i, w) for i, w in words if not _in_clause(sentence.doc[i], noun)]
            if not any(c.dep_ in ("det", "poss") for c in noun.children):
                words.insert(0, (noun.i - 0.5, "a"))
            return [_sentence(lemma, words)]
    return []


def _procedure(sentence) -> list[str]:
    """A line built on a noun that names a procedure asks to perform it: "hydrodissection now, nice gentle wave",
    "gentle hydrodissection, and you can see the wave", "anterior vitrectomy now, you can see the strands"."""
    root = sentence.root
    if root.pos_ == "NOUN":
        places = (root, *root.children)
    elif verb_lemma(root) in NON_ACTION:  # a remark follows the named procedure ("..., you can see the edge")
        places = tuple(c for c in root.children if c.dep_ in ("dep", "npadvmod") and c.i < root.i)
    else:
        return []
    named = next((t for t in places if t.pos_ == "NOUN" and t.lower_.endswith(_PROCEDURES)), None)
    if named is None or any(c.lower_ in _PRAISE for c in named.children):
        return []  # "lovely rhexis, nice and round" is a remark on what was done
    words = [(t.i, _word(t)) for t in named.lefts if t.dep_ in ("amod", "compound")] + [(named.i, _word(named))]
    return [_sentence("perform", words if len(words) > 1 else [(named.i - 0.5, "the"), *words])]


def _next_step(sentence) -> int:
    """Where ", then ..." starts the next step of a verbless line ("steroid at the end, then a shield")."""
    return next(
        (t.i for t in sentence if t.lower_ == "then" and t.i > sentence.start and t.nbor(-1).is_punct),
        sentence.end,
    )


def _in_clause(token, top) -> bool:
    """Whether ``token`` sits in a subordinate clause below ``top`` ("... because it wasn't holding")."""
    for x in (token, *token.ancestors):
        if x.i == top.i:
            return False
        if x.dep_ in _SUBORDINATE:
            return True
    return False

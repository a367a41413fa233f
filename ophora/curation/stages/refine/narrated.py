"""Which actions a narration describes, read by spaCy's parser: each clause in which the surgeon acts on something,
as an imperative ("... the lens is loaded into the injector and inserted through the main incision into the
capsular bag, where it slowly unfolds." -> "Insert the lens through the main incision into the capsular bag.").
Used by the rule-based refiner (its candidates) and by the validator (what the narration does)."""

from __future__ import annotations

import re
from functools import lru_cache

from ophora.curation.cataract_actions import ACTION_VERBS
from ophora.curation.stages.refine.clauses import _purpose, _verb_action
from ophora.curation.stages.refine.instruction_form import nlp
from ophora.curation.stages.refine.verbless import _named_actions, _procedure, _verbless, _wanted

_STEPS = re.compile(r"\s*[:;]\s+")
_DISFLUENCY = re.compile(r"\b(?:[Uu]+[mh]+|[Ee]rm+|[Hh]mm+|er)\b,?\s*")


def narrated_actions(narration: str) -> list[str]:
    """Each clause of ``narration`` in which the surgeon acts on something, as an imperative ("Insert the lens
    ..."), in the order spoken; passive clauses are turned round ("the lens is inserted" -> "Insert the lens"),
    "it" becomes what it stands for, and a carrier's complement is the action ("I'm going to inject ...")."""
    return list(_narrated_actions(narration))


@lru_cache(maxsize=1024)  # the validator asks for one narration's actions twice per answer
def _narrated_actions(narration: str) -> tuple[str, ...]:
    out = []
    for sentence in _sentences(_DISFLUENCY.sub("", narration)):
        found = {verb.i: a for verb in sentence if (a := _verb_action(verb))}
        # a purpose ("... goes in to bring the pupil down") is not an action of its own when its verb's is one
        actions = [a for i, a in found.items() if not (_purpose(sentence.doc[i]) and sentence.doc[i].head.i in found)]
        out += actions or _named_actions(sentence) or _wanted(sentence) or _verbless(sentence) or _procedure(sentence)
    return tuple(out)


def _sentences(text: str):
    """The narration's sentences as parsed; one that opens with a surgical verb the tagger took for a noun
    ("Press on the posterior lip", a command the small model often misreads) is parsed again after "you"; a colon
    or semicolon ends a part ("Vertical chop: bury the tip deep, bring the chopper down ...")."""
    for sentence in (s for part in _STEPS.split(text) for s in nlp()(part).sents):
        first = next((t for t in sentence if t.is_alpha), None)
        if first is None or first.tag_.startswith("VB") or first.lower_ not in ACTION_VERBS:
            yield sentence
            continue
        at = first.idx - sentence.start_char
        yield from nlp()(f"{sentence.text[:at]}you {first.lower_}{sentence.text[at + len(first) :]}").sents

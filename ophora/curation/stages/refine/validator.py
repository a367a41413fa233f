"""The refine stage's validator: why an answer is not an acceptable instruction, said so that an LLM can fix it
(length, first person, talk of the video, PHI, a description, the parser's reading of its form, a surgical action
of its own, and what its narration says)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ophora.curation import phi
from ophora.curation.cataract_actions import ACTION_VERBS, names_action, phase_of, phase_scores, surgical_nouns
from ophora.curation.stages.refine.extractive import base_verb
from ophora.curation.stages.refine.instruction_form import form_complaint, lemmas, parse_imperative
from ophora.curation.stages.refine.narrated import narrated_actions

if TYPE_CHECKING:
    from ophora.curation.stages.refine import RefineConfig

_FIRST_PERSON = re.compile(
    r"\bI(?:'m|'ll|'ve|'d)?\b(?!/)|\b(?i:me|my|mine|myself|we|we're|we'll|we've|our|ours|us|"
    r"let's)\b"
)
_META_TALK = re.compile(
    r"\b(?:this|the) video\b|\bviewers?\b|\bwatch(?:ing)?\b|\bsubscribe\b|\bcamera\b|"
    r"\btoday\b|\bin this (?:case|clip)\b",
    re.I,
)
# a scrubber placeholder, whole or as a parser's rewrite leaves it ("Bear NAME on [ DATE."): a bracket, or a kind
# word in capitals
_PLACEHOLDER = re.compile(r"[\[\]]|\b(?:" + "|".join(phi.KINDS) + r")\b")
_ARTICLES = frozenset("the a an".split())
_SUBJECT_WORDS = frozenset("the a an this that these those it its there here he she they you your".split())
_STOP = frozenset(
    """with from into onto then that this there their they them your have when while where which
what after before under over about around through until again more some each every very just like well also
gently slowly carefully""".split()
)


def content_stems(text: str) -> set[str]:
    """The words of ``text`` that carry meaning (4+ letters, not a function word), cut to 5 letters so that
    "inject", "injected" and "injection" meet."""
    return {w[:5] for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOP}


def is_description(text: str) -> bool:
    """True for a description rather than an instruction: "The lens is ...", "Lens implantation is a ..."."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return False
    return words[0] in _SUBJECT_WORDS or (
        base_verb(words[0]) is None and bool({"is", "are", "was", "were"} & set(words[1:4]))
    )


def ungrounded(instruction: str, narration: str) -> str | None:
    """Why ``instruction`` does not say what ``narration`` says (a small model copies its few-shot examples), or
    None: when the narration names cataract phases, the instruction must name one of them; else it must share a
    meaningful word with the narration."""
    said, wrote = phase_scores(narration), phase_scores(instruction)
    if said and wrote and not set(said) & set(wrote):
        return (
            f"the instruction describes {' / '.join(p.replace('_', ' ') for p in wrote)}, but the narration "
            f"describes {' / '.join(p.replace('_', ' ') for p in said)}; instruct the narration's own action"
        )
    if not (said and wrote) and not content_stems(instruction) & content_stems(narration):
        return "the instruction shares no word with the narration; instruct what the narration says"
    action, _ = parse_imperative(instruction)
    if action is None:
        return None
    # what the narration does: its verbs, and the surgeon's verbs its clauses turn into ("the lens goes in": insert)
    done = lemmas(narration) | {a.split()[0].lower() for a in narrated_actions(narration)}
    if action.verb not in done and not (set(said) & set(wrote) and action.verb in ACTION_VERBS):
        return f'the narration does not "{action.verb}" anything; instruct the narration\'s own action with its verb'
    return None


def acts_on_the_eye(instruction: str, narration: str = "") -> bool:
    """True when the instruction's verb (by the parser) is a surgical action on the eye or an instrument: a
    surgical noun is in the instruction ("Stain the anterior capsule."), or the verb is one the surgeon performs
    in the narration and the narration names the part of the eye ("Rub the plaque off with the scratcher." for
    "A little plaque here on the posterior capsule, we gently rub it off ..."). A verb the narration does not
    perform is not enough: "Avoid a pressure spike" for "... remove it to avoid a pressure spike in the chamber"."""
    action, _ = parse_imperative(instruction)
    if action is None:
        return False
    if surgical_nouns(instruction):
        return True
    return bool(surgical_nouns(narration)) and action.verb in {
        a.split()[0].lower() for a in narrated_actions(narration)
    }


def complaint(answer: Any, cfg: RefineConfig, narration: str = "") -> str | None:
    """Why an answer is unacceptable (said so the LLM can fix it), or None when it is fine. With ``narration``, an
    instruction must be grounded in it (:func:`ungrounded`), and with ``cfg.recheck_irrelevant`` "not relevant"
    is refused when the narration names a cataract action."""
    if not isinstance(answer, dict):
        return "the answer is not a JSON object"
    if not isinstance(answer.get("relevant"), bool):
        return "'relevant' must be true or false"
    if not answer["relevant"]:
        if narration and cfg.recheck_irrelevant and phase_of(narration):
            return f"the narration describes a surgical action ({phase_of(narration).replace('_', ' ')})"
        if narration and cfg.recheck_irrelevant and names_action(narration):
            return "the narration describes a surgical action"
        return None
    text = answer.get("instruction")
    if not isinstance(text, str) or not text.strip():
        return "'instruction' must be a non-empty sentence when relevant is true"
    n = len(text.split())
    if not cfg.min_words <= n <= cfg.max_words or len(text) > 12 * cfg.max_words:
        return f"the instruction has {n} words; use {cfg.min_words} to {cfg.max_words}"
    if _FIRST_PERSON.search(text):
        return "the instruction uses first person (I, we, my, our); write an imperative"
    if _META_TALK.search(text):
        return "the instruction talks about the video, the viewer or today; keep only the surgical action"
    # the first word is read in lower case: NER takes a sentence-initial verb ("Sculpt", "Occlude") for a name
    if _PLACEHOLDER.search(text) or phi.find_phi(text[:1].lower() + text[1:]):
        return "the instruction contains identifying details or placeholders; leave them out"
    if is_description(text):
        return 'the instruction is a description; start with the verb of the action ("Insert ...")'
    form = form_complaint(text)
    if form:
        return form
    if not names_action(text) and not acts_on_the_eye(text, narration):
        return "the instruction names no cataract-surgery action; say what the surgeon does to which part of the eye"
    return ungrounded(text, narration) if narration else None

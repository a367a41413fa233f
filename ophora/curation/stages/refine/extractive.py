"""The refine stage's rule-based backend: narration -> one imperative instruction without an LLM (the fallback
when an LLM answer fails validation, and the fast path of the offline tests). It answers ``answer(narration) ->
dict`` in the JSON shape the LLMs are asked for."""

from __future__ import annotations

import re

from ophora.curation.cataract_actions import ACTION_VERBS, names_action, phase_of, phase_scores

_LEAD_FILLER = re.compile(
    r"^(?:um+|uh+|er+|okay|ok|alright|all right|so|now|next|then|and|but|well|right|here|"
    r"you know|let's see|good|great|yeah|just|first|finally|also)\b[,\s]*",
    re.I,
)
_SUBJECT = re.compile(
    r"^(?:i|we|you)(?:'m| am| are|'re)? (?:going to |gonna |want to |need to |will |can |"
    r"would like to |just |now |then |also |first |gently |carefully |slowly )*",
    re.I,
)
_SUBJECT_CONTRACTED = re.compile(r"^(?:i'll|we'll|let's|let us) ", re.I)
_PASSIVE = re.compile(r"^((?:the|a|an|each|both|all|every) [^,]+?) (?:is|are|gets|get) (\w+)\b(.*)$", re.I)
_GOES_IN = re.compile(r"^((?:the|a|an) [^,]+?) goes in(?:to| through)?\b(.*)$", re.I)
_SHOULD_BE = re.compile(r"^((?:the|a|an) [^,]+?) (?:should|must|needs? to) be\b(.*)$", re.I)
_IMPORTANT_TO = re.compile(r"^it(?: is|'s) (?:important|essential|crucial|necessary|best) to (.+)$", re.I)
_MOVES = re.compile(
    r"^((?:the|a|an) [^,]+?) (unfold|open|rotate|turn|move|slide|settle|center|centre|"
    r"deepen|fill|sink|float|spin)s\b(.*)$",
    re.I,
)
_SEE = re.compile(r"^(?:you can see|as you can see|you see|we can see|see how)\s+(?:that\s+|how\s+)?", re.I)
_IRREGULAR = {
    "brought": "bring",
    "cut": "cut",
    "made": "make",
    "put": "put",
    "held": "hold",
    "split": "split",
    "torn": "tear",
    "kept": "keep",
    "taken": "take",
    "done": "do",
}
_EXTRA_VERBS = ACTION_VERBS | {
    "start",
    "finish",
    "use",
    "take",
    "hold",
    "put",
    "go",
    "do",
    "move",
    "turn",
    "tap",
    "sweep",
    "nudge",
    "open",
    "complete",
    "continue",
    "check",
    "push",
    "slide",
}


def base_verb(word: str) -> str | None:
    """The base form of a verb as narrated (makes, making, injected, emulsified, brought), or None if unknown."""
    w = word.lower()
    if w in _EXTRA_VERBS:
        return w
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    for suffix, repl in (
        ("ies", "y"),
        ("ied", "y"),
        ("es", ""),
        ("s", ""),
        ("ing", ""),
        ("ing", "e"),
        ("ed", ""),
        ("ed", "e"),
        ("d", ""),
    ):
        if w.endswith(suffix):
            stem = w[: -len(suffix)] + repl
            for cand in (stem, stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else None):
                if cand and cand in _EXTRA_VERBS:
                    return cand
    return None


def imperative(sentence: str) -> str:
    """A narrated sentence rewritten by rules as an instruction: fillers cut, "I/we (are going to) X" -> "X",
    "the lens is rotated ..." -> "Rotate the lens ...", "the rhexis should be round" -> "Make the rhexis round",
    "it is important to X" -> "X", "the lens unfolds ..." -> "Let the lens unfold ...", "you can see the wave" ->
    "Confirm the wave", "my/our" -> "the"."""
    s = sentence.strip().strip(".!?").strip()
    seen = False
    for _ in range(4):
        s = _LEAD_FILLER.sub("", s).strip(" ,")
        seen, s = seen or bool(_SEE.match(s)), _SEE.sub("", s).strip(" ,")
    s = _SUBJECT_CONTRACTED.sub("", s)
    m = _SUBJECT.match(s)
    if m and m.end() < len(s):
        rest = s[m.end() :]
        verb, _, tail = rest.partition(" ")
        base = base_verb(verb)
        s = (base + (" " + tail if tail else "")) if base else rest
    else:
        p, g, b = _PASSIVE.match(s), _GOES_IN.match(s), _SHOULD_BE.match(s)
        t, mv = _IMPORTANT_TO.match(s), _MOVES.match(s)
        if p and base_verb(p.group(2)):
            s = f"{base_verb(p.group(2))} {p.group(1).lower()}{p.group(3)}"
        elif g:
            s = f"insert {g.group(1).lower()}{g.group(2)}"
        elif b:
            s = f"make {b.group(1).lower()}{b.group(2)}"
        elif t:
            s = t.group(1)
        elif mv:
            s = f"let {mv.group(1).lower()} {mv.group(2).lower()}{mv.group(3)}"
        elif seen and re.match(r"(?:the|a|an)\b", s, re.I):  # "you can see the fluid wave ..." -> confirm it
            s = f"confirm {s[:1].lower()}{s[1:]}"
    s = re.sub(r"\b(?:my|our)\b", "the", s, flags=re.I)
    s = re.sub(r"\s+", " ", s).strip(" ,")
    return (s[:1].upper() + s[1:] + ".") if s else ""


_CLAUSE_BREAK = re.compile(r",\s+|;\s+|\s+-\s+|\s+(?:so|while|because|as|when|and|but)\s+(?=(?:I|we)\b)")


def _clauses(sentence: str) -> list[str]:
    """A sentence's clauses (at commas, dashes, and conjunctions before "I"/"we"); [] when it has only one."""
    parts = _CLAUSE_BREAK.split(sentence)
    return parts if len(parts) > 1 else []


class ExtractiveBackend:
    """No LLM: the narration's actions as imperatives, best first, the first the validator accepts. Candidates are
    each clause that acts on something, read by spaCy's parser and turned round when passive
    (:func:`~ophora.curation.stages.refine.narrated.narrated_actions`), then the rule rewrites of whole sentences and
    their clauses (:func:`imperative`); they rank by how much cataract-surgery action they name, a verb of the
    surgical vocabulary first ("Insert the lens ..." before "Load the lens into the injector.")."""

    name = "extractive"
    model_id = "rules-v2"

    def candidates(self, narration: str) -> list[str]:
        from ophora.curation.stages.refine.narrated import narrated_actions

        sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+", narration) if x.strip()]
        parsed = [a for x in sentences for a in narrated_actions(x)]
        rewritten = [imperative(x) for x in sentences] + [
            imperative(c) for x in sentences for c in _clauses(x) if c.strip()
        ]

        def score(text: str) -> int:
            first = re.match(r"[A-Za-z]+", text)
            return (
                sum(phase_scores(text).values())
                + names_action(text)
                + 2 * bool(first and first.group().lower() in ACTION_VERBS)
            )

        def ranked(texts: list[str]) -> list[str]:
            return [t for _, _, t in sorted(((score(t), -i, t) for i, t in enumerate(texts) if t), reverse=True)]

        # what the parser read comes first; the rule rewrites of whole sentences are the last resort
        return list(dict.fromkeys(ranked(parsed) + ranked(rewritten)))

    def answer(self, narration: str, accept=lambda a: None) -> dict:
        complaint = "no sentence names a surgical action"
        for instruction in self.candidates(narration):
            answer = {
                "relevant": True,
                "instruction": instruction,
                "phase": phase_of(instruction) or phase_of(narration),
            }
            complaint = accept(answer)
            if complaint is None:
                return answer
        return {"relevant": False, "instruction": "", "phase": None, "reason": complaint}

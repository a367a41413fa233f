"""PHI scrubbing: the one place that knows what identifying text looks like (names, dates, ages over 89, record
and ID numbers, phone numbers, e-mail and street addresses, institution names).

Every text Ophora stores (narration, instructions, OCR'd overlays) goes through :func:`scrub` first. What it
returns for summaries is counts by kind, never the clear text. Detection is rules only (no model): regular
patterns, title and label patterns ("Dr", "Mrs", "PT:", "MRN:"), a list of common given names, and a
capitalised-word heuristic inside sentences that talk about a person ("patient", "born", "record number").
"""

from __future__ import annotations

import re
from functools import lru_cache

KINDS = ("NAME", "DATE", "AGE", "ID", "PHONE", "EMAIL", "ADDRESS", "INSTITUTION")

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December|"
           "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec")
_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_ORDINAL_WORDS = (r"(?:(?:twenty|thirty)[- ])?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|tenth|"
                  r"eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|"
                  r"twentieth|thirtieth")
_YEAR_WORDS = r"(?:nineteen|twenty)[- ](?:hundred|oh[- ]\w+|\w+(?:[- ]\w+)?)"
_TITLES = r"(?:Mr|Mrs|Ms|Mx|Miss|Dr|Doctor|Prof|Professor|Sister|Nurse|Sir|Dame|Madam)"
_NAME_WORD = r"[A-Z][a-z'\u00C0-\u017F]+(?:-[A-Z][a-z'\u00C0-\u017F]+)?"
_CAPS_WORD = r"[A-Z][A-Za-z'\u00C0-\u017F-]+"
_INSTITUTION_SUFFIX = (r"(?:Hospitals?|Clinics?|Centre|Center|Institute|Infirmary|University|College|"
                       r"Medical\s+Cent(?:er|re)|Health(?:\s+System)?|Foundation|Trust|Surgery\s+Cent(?:er|re)|"
                       r"Eye\s+Unit|Polyclinic|Sanatorium)")
_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Boulevard|Blvd|Court|Ct|Way|Place|Pl|"
                  r"Terrace|Crescent|Close|Square|Sq|Highway|Hwy|Parkway|Pkwy)")

# Words that announce a person nearby: inside such a sentence capitalised runs are treated as names.
_PERSON_CUES = re.compile(
    r"\b(?:patient|pt|mr|mrs|ms|miss|dr|doctor|born|record|mrn|chart|name|named|called|surgeon|"
    r"colleague|fellow|resident|nurse|professor|prof|years?\s+old|aged?|dob|birthday|husband|wife|son|daughter|"
    r"mother|father|family|referred|hello|welcome|thanks|thank)\b", re.I)

_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("PHONE", re.compile(r"(?<![\w/])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{3,4}[\s.-])\d{3}[\s.-]\d{3,4}\b")),
    ("DATE", re.compile(rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+(?:\d{{4}}|{_YEAR_WORDS}))?\b"
                        rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?(?:,?\s+\d{{4}})?\b"
                        rf"|\b(?:{_MONTHS})\.?,?\s+(?:19|20)\d{{2}}\b"
                        r"|\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b"
                        r"|\b(?:19|20)\d{2}[/.-]\d{1,2}[/.-]\d{1,2}\b"
                        r"|\bborn\s+(?:in\s+)?(?P<v>(?:19|20)\d{2})\b"
                        rf"|\b(?:the\s+)?(?:{_ORDINAL_WORDS})\s+of\s+(?:{_MONTHS})\b(?:,?\s+(?:\d{{4}}|{_YEAR_WORDS}))?"
                        rf"|\b(?:{_MONTHS})\s+(?:the\s+)?(?:{_ORDINAL_WORDS})\b(?:,?\s+(?:\d{{4}}|{_YEAR_WORDS}))?"
                        rf"|\bborn\s+(?:in\s+)?(?P<w>{_YEAR_WORDS})", re.I)),
    ("AGE", re.compile(r"\b(?:9\d|1[0-4]\d)(?:\s*|-)(?:years?|yrs?|y/?o)\b(?:[\s-]+old)?"
                       r"|\b(?:aged?|age\s+of)\s+(?:9\d|1[0-4]\d)\b"
                       r"|\b(?:ninety|one\s+hundred)(?:[\s-]+(?:and\s+)?(?:one|two|three|four|five|six|seven|eight|"
                       r"nine|ten|\w+teen))?[\s-]+years?[\s-]+old\b", re.I)),
    ("ID", re.compile(r"\b(?:MRN|NHS|SSN|ID|record|chart|case|patient|account|hospital|insurance|medicare|policy)"
                      r"(?:\s+(?:number|no\.?|num|#|ID))?\s*[:#]?\s*"
                      r"(?:[A-Z]{0,3}\d[\dA-Z-]{2,}|(?:\d[\s-]){3,}\d|(?:(?:" + _DIGIT_WORDS + r")[\s,-]+){3,}"
                      r"(?:" + _DIGIT_WORDS + r"))", re.I)),
    ("ID", re.compile(r"(?<![\w.,])\d{5,}(?![\w.,]\d)|(?<![\w.])\d(?:(?:,\s*|[\s-])\d){4,}\b"
                      r"|\b(?:(?:" + _DIGIT_WORDS + r")[\s,-]+){4,}(?:" + _DIGIT_WORDS + r")\b", re.I)),
    ("ADDRESS", re.compile(rf"\b\d{{1,5}}\s+(?:{_CAPS_WORD}\s+){{1,3}}{_STREET_SUFFIX}\b\.?")),
    ("ADDRESS", re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b")),  # UK postcode
    ("INSTITUTION", re.compile(rf"\b(?:(?:Saint|St\.?|Mount|Mt\.?|{_CAPS_WORD})\s+(?:of\s+|the\s+|&\s+)?){{1,5}}"
                               rf"(?i:{_INSTITUTION_SUFFIX})\b"
                               rf"|\b(?i:University|Hospital|Institute|College)\s+of\s+(?:the\s+)?"
                               rf"(?:{_CAPS_WORD}\s?){{1,4}}")),
    # Speech recognisers often lower-case a place: "from riverside vision center", "at the mercy vale clinic".
    ("INSTITUTION", re.compile(rf"\b(?:from|at|of)\s+(?:the\s+)?(?P<v>(?:(?!(?:the|a|an|this|that|its|our|my)\b)"
                               rf"[a-z'\u00C0-\u017F-]{{3,}}\s+){{1,4}}(?:{_INSTITUTION_SUFFIX}))\b", re.I)),
    # Labelled fields of burned-in overlays: "PT: OKAFOR, MARGARET", "NAME: ..."; the label stays.
    ("NAME", re.compile(r"\b(?:PT|NAME|PATIENT|SURGEON|PHYSICIAN)\s*[:.]\s*(?P<v>[A-Za-z][A-Za-z' ,.-]*[A-Za-z])",
                        re.I)),
    ("NAME", re.compile(rf"\b{_TITLES}\.?\s+(?P<v>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})")),
    ("NAME", re.compile(r"\b(?:MR|MRS|MS|DR)\.?\s+(?P<v>[A-Z][A-Z'-]+(?:,?\s+[A-Z][A-Z'-]+)?)")),
]

# Capitalised words that are ordinary at the start of a sentence or in surgical narration, never names.
_ORDINARY = frozenset("""
a about after again all alright also an and any are as at be because before both but by can could do does done
each even every first for from good great he her here hi his how i if in into is it its just keep last let lets
look make many may me more most my next no not now of oh ok okay on once one only or our out over please right
she should so some that the their then there these they this those through to today too two under up us very
was watch we well what when where which while who will with yes yet you your um uh hello welcome thanks thank
patient patients record number born doctor dr mr mrs ms miss sir nurse fellow surgeon case video today hospital
clinic surgery cataract lens eye eyes iris cornea capsule chamber phaco nucleus cortex monday tuesday wednesday
thursday friday saturday sunday morning afternoon evening name named called from is our see note remember sorry
english american british european indian chinese japanese african muslim christian jewish professor prof
institute centre center university college medical health trust foundation eye vision ophthalmology
pt dob mrn id nhs ssn sex age hosp
sinskey utrata kuglen barraquer lieberman rycroft simcoe kelman nagahara koch osher mackool malyugin healon alcon
centurion infiniti stellaris whitestar zeiss lumera viscoat provisc duovisc miochol miostat trypan tenon descemet
bowman zinn purkinje tecnis acrysof vancomycin cefuroxime moxifloxacin ringer ringer's
""".split())  # the last lines: eponyms and brands of cataract surgery, never patients

# Common given names (a cross-cultural sample written for Ophora); a capitalised one is a name on sight.
_GIVEN_NAMES = frozenset("""
aaron abdul abigail adam adrian ahmed aisha alan albert alex alexander alexandra alfred alice alison amanda amy
ana andrea andrew angela ann anna anne anthony antonio arthur ashley barbara benjamin bernard betty beverly bill
bob brenda brian bruce carl carlos carmen carol caroline catherine charles charlotte chen chris christina
christine christopher claire daniel david deborah dennis diana diane donald donna doris dorothy douglas edward
elena elizabeth ellen emily emma eric ethel eugene evelyn frances francesca francis frank fred frederick gary
george gerald gloria grace gregory hannah harold harry heather helen henry hiroshi howard hugh ian irene isabel
jack jacob james jane janet janice jason jean jeffrey jennifer jeremy jessica joan joe john jonathan jose joseph
joshua joyce juan judith julia julie karen kate katherine kathleen keith kenneth kevin kimberly larry laura
lawrence leonard linda lisa louis louise lucy luis manuel margaret maria marie marilyn mark martha martin mary
matthew maureen michael michelle mohammed muhammad nancy natalie nicholas nicole norma olga oliver pamela patricia
patrick paul peter philip phyllis rachel ralph raymond rebecca richard robert roger ronald rose ruth ryan samuel
sandra sarah scott sean sharon shirley sophia stephen steven susan teresa thomas timothy virginia walter wayne
william yuki zhang wei li mei raj sanjay anil sunita ravi fatima omar hassan ali yusuf ibrahim mariam leila
olusegun chinedu ngozi kwame amara sipho thabo ingrid lars sven anders erik astrid dmitri ivan natasha sergei
tomasz piotr katarzyna agnieszka jan pierre jacques marcel giovanni giuseppe marco luca sofia mateo diego
alejandro lucia keiko yuko takashi kenji priya deepak arjun lakshmi beatrice eleanor florence mildred agnes
cecil clifford everett winifred josephine rosalind gordon wilfred edith mabel harriet
""".split())

_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(KINDS) + r")\]")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_CAPS_RUN = re.compile(rf"{_NAME_WORD}(?:\s+{_NAME_WORD})*|\b[A-Z]{{2,}}(?:\s+[A-Z]{{2,}})*\b")


_BIRTH_CUE = re.compile(r"\b(?:born|birth|dob|birthday)\b", re.I)
_YEAR = re.compile(r"\b(?:18|19|20)\d{2}\b")


def _birth_years(text: str) -> list[tuple[int, int, str]]:
    """Any year in a sentence about a birth (ASR may repeat or garble the date around it)."""
    spans = []
    for sm in _SENTENCE.finditer(text):
        if _BIRTH_CUE.search(sm.group(0)):
            spans += [(sm.start() + m.start(), sm.start() + m.end(), "DATE") for m in _YEAR.finditer(sm.group(0))]
    return spans


def _heuristic_names(text: str) -> list[tuple[int, int, str]]:
    """Capitalised runs that are names: any run holding a known given name, and, inside sentences with a person
    cue, any run of words that are not ordinary capitalised words."""
    spans = []
    for sm in _SENTENCE.finditer(text):
        sentence, base = sm.group(0), sm.start()
        cued = bool(_PERSON_CUES.search(sentence))
        for rm in _CAPS_RUN.finditer(sentence):
            words = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[A-Za-z'\u00C0-\u017F-]+", rm.group(0))]
            known = [w for w in words if w[2].lower() in _GIVEN_NAMES]
            names = [w for w in words if w[2].lower() not in _ORDINARY and len(w[2]) > 1]
            if known or (cued and names):
                keep = [w for w in words if w[2].lower() not in _ORDINARY or w[2].lower() in _GIVEN_NAMES]
                if keep:
                    spans.append((base + rm.start() + keep[0][0], base + rm.start() + keep[-1][1], "NAME"))
    return spans


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans merged; the merged span keeps the kind of its longest part."""
    out: list[list] = []
    for s, e, k in sorted(spans, key=lambda x: (x[0], -(x[1] - x[0]))):
        if out and s < out[-1][1]:
            last = out[-1]
            if e - s > last[1] - last[0]:
                last[2] = k
            last[1] = max(last[1], e)
        else:
            out.append([s, e, k])
    return [(s, e, k) for s, e, k in out]


def find_phi(text: str) -> list[tuple[int, int, str]]:
    """Sorted, non-overlapping ``(start, end, kind)`` spans of identifying text; kind is one of :data:`KINDS`."""
    if not text:
        return []
    # Placeholders from an earlier scrub are blanked (same length, offsets kept) so scrubbing is idempotent.
    text = _PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), text)
    spans = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            group = next((g for g in ("v", "w") if g in pattern.groupindex and m.group(g)), None)
            s, e = m.span(group) if group else m.span()
            while e > s and text[e - 1] in " ,.;:-":
                e -= 1
            while s < e and text[s] in " ,.;:-":
                s += 1
            if e > s:
                spans.append((s, e, kind))
    spans.extend(_heuristic_names(text))
    spans.extend(_birth_years(text))
    return _merge(spans)


def scrub(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every identifying span replaced by ``[KIND]`` and the number of spans per kind (counts only,
    never the clear text, so the result is safe to log or summarise)."""
    spans = find_phi(text)
    counts: dict[str, int] = {}
    out, pos = [], 0
    for s, e, kind in spans:
        out.append(text[pos:s])
        out.append(f"[{kind}]")
        counts[kind] = counts.get(kind, 0) + 1
        pos = e
    out.append(text[pos:])
    return "".join(out), counts


@lru_cache(maxsize=4096)
def looks_identifying(text: str) -> bool:
    """True when OCR'd burned-in text carries identifying content: any PHI span, or a patient-record label such as
    "PT:", "DOB", "MRN", "NAME:" (recorders stamp these even when the value is unreadable)."""
    if not text or not text.strip():
        return False
    if find_phi(text):
        return True
    return bool(re.search(r"\b(?:PT|DOB|D\.O\.B|MRN|NAME|PATIENT|ID|SEX|AGE|HOSP)\s*[:#]", text, re.I))

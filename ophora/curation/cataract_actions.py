"""The cataract-surgery action vocabulary: which words name a surgical action, and which phase a text is about.

Used by the refine stage to validate an instruction ("names a surgical action"), by the extractive refiner to pick
and label sentences, and by the measurements ("does the instruction name its phase's action").
"""

from __future__ import annotations

import re

# Phase -> patterns naming its action (instrument, manoeuvre or target); in canonical surgical order.
PHASE_ACTIONS: dict[str, tuple[str, ...]] = {
    "incision": (
        r"(?:make|create|enter)\w*[^.]*(?:incision|chamber with the blade)",
        r"keratome",
        r"\bblade\b",
        r"side[- ]?port incision",
        r"paracentesis",
        r"\btunnel",
        r"\bincise",
        r"limbus",
        r"fixate the globe",
        r"(?:clear )?corneal incision",
    ),
    "viscoelastic_injection": (
        r"(?:fill|inject|insert|coat|deepen)\w*\b[^.]*viscoelastic",
        r"viscoelastic[^.]*(?:goes in|inject|fill)",
        r"\bovd\b",
        r"dispersive",
        r"cohesive",
        r"chamber is deep",
    ),
    "capsulorhexis": (r"r?hexis", r"capsulotomy", r"cystotome", r"\bflap\b", r"\btear\b", r"regrasp"),
    "hydrodissection": (
        r"hydrodissect",
        r"fluid wave",
        r"under the anterior capsule",
        r"(?:inject|fluid|solution)[^.]*under the capsule",
        r"free the lens",
        r"rotates? freely",
        r"release the fluid",
    ),
    "phacoemulsification": (
        r"\bphaco",
        r"emulsif",
        r"\bsculpt",
        r"\bgroove",
        r"\bcrack",
        r"\bchop",
        r"quadrant",
        r"nucleus into",
    ),
    "irrigation_aspiration": (
        r"irrigation[- ]aspiration",
        r"\bi/?a\b",
        r"\bcortex",
        r"cortical",
        r"aspiration port",
        r"(?:clean|remove|engage|strip|aspirate)\w*[^.]*cortex",
    ),
    "capsule_polishing": (r"\bpolish", r"opacification", r"epithelial cells"),
    "lens_implantation": (
        r"intraocular lens[^.]*(?:inject|insert|implant)",
        r"(?:inject|insert|implant)\w*[^.]*"
        r"(?:intraocular )?lens",
        r"\biol\b",
        r"injector",
        r"cartridge",
        r"unfold",
        r"leading haptic",
        r"foldable",
    ),
    "lens_positioning": (
        r"trailing haptic",
        r"\bdial",
        r"center[^.]*lens",
        r"centre[^.]*lens",
        r"rotate[^.]*lens",
        r"lens is rotated",
        r"haptics? (?:sit|are)",
        r"optic is cent",
    ),
    "viscoelastic_removal": (r"(?:remove|aspirate|get)\w*[^.]*viscoelastic", r"viscoelastic[^.]*(?:out|removed)"),
    "anterior_chamber_flushing": (
        r"\bflush",
        r"\brins",
        r"irrigate the (?:angle|chamber)",
        r"runs? (?:completely )?"
        r"clear",
        r"wash out",
    ),
    "wound_hydration": (
        r"hydrat",
        r"antibiotic",
        r"intracameral",
        r"watertight",
        r"\bseal",
        r"sutur",
        r"closes the incision",
    ),
}
PHASES = tuple(PHASE_ACTIONS)

# Verbs a surgeon's instruction starts with; with a surgical noun they name an action even without a phase pattern.
# Preparation off the eye (load, fold, prime) is left out: the rules rank an action on the eye first.
ACTION_VERBS = frozenset(
    """
make create enter insert inject fill coat deepen tear grasp regrasp pull sculpt crack chop split emulsify aspirate
remove polish implant dial center centre rotate flush rinse irrigate hydrate hydrodissect press lift fixate guide
unfold engage clean seal close incise cut check stabilize stabilise place position bring keep clear wash apply
grab shear mark nick puncture stain paint tuck sweep strip peel suture stitch tie tap vacuum scrape groove
trench carve instil inflate refill deliver divide separate spread
""".split()
)

SURGICAL_NOUNS = frozenset(
    """
chamber capsule capsular lens nucleus cornea corneal wound incision iris cortex haptic haptics viscoelastic phaco
keratome forceps cannula hook chopper probe tip bag flap rhexis capsulorhexis endothelium globe fluid solution
pupil optic limbus port handpiece injector cartridge quadrant fragment fragments epithelium angle stroma
speculum suture iol ovd epinucleus paracentesis tunnel membrane sleeve ring zonule zonules blade knife needle
cystotome spatula sponge axis edge injection steroid antibiotic cefuroxime drape nylon stitch groove trench plaque
plaques polisher bss healon dye trypan bevel sideport halves sclera conjunctiva eye iop lidocaine anaesthetic
anesthetic moxifloxacin cortical stromal endothelial zonular scleral knot vitreous vitrectomy capsulotomy
hydrodissection hydrodelineation shield lid lids lashes povidone iodine cautery piece pieces segment
heminucleus iridodialysis synechiae fluorescein vitrector
""".split()
)

# What a surgeon injects: a thing of these "goes in" ("some intracameral lidocaine goes in") is injected, not inserted.
SUBSTANCES = frozenset(
    """
viscoelastic ovd healon bss fluid saline solution lidocaine anaesthetic anesthetic cefuroxime moxifloxacin
antibiotic steroid trypan dye air water miochol carbachol acetylcholine adrenaline epinephrine phenylephrine
triamcinolone povidone iodine betadine fluorescein
""".split()
)


def surgical_nouns(text: str) -> set[str]:
    """The surgical nouns in ``text``, singular or plural ("ports", "handpieces")."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return {w for w in words | {w[:-1] for w in words if w.endswith("s")} if w in SURGICAL_NOUNS}


# Instruments: a narration that makes one the subject ("the diamond knife enters the cornea") describes what the
# surgeon does with it ("Enter the cornea with the diamond knife").
INSTRUMENTS = frozenset(
    """
keratome knife blade forceps cannula hook chopper probe tip handpiece injector needle cystotome spatula speculum
scissors manipulator sponge
""".split()
)

_COMPILED = {phase: [re.compile(p, re.I) for p in pats] for phase, pats in PHASE_ACTIONS.items()}


def phase_scores(text: str) -> dict[str, int]:
    """How many of each phase's patterns occur in ``text`` (phases without a hit are left out)."""
    scores = {}
    for phase, pats in _COMPILED.items():
        n = sum(1 for p in pats if p.search(text))
        if n:
            scores[phase] = n
    return scores


def phase_of(text: str) -> str | None:
    """The phase ``text`` talks about most (ties: the earlier phase), or None."""
    scores = phase_scores(text)
    return max(scores, key=lambda p: (scores[p], -PHASES.index(p))) if scores else None


def names_action(text: str) -> bool:
    """True when ``text`` names a cataract-surgery action: a phase pattern, or an action verb with a surgical noun."""
    if phase_scores(text):
        return True
    words = set(re.findall(r"[a-z]+", text.lower()))
    return bool(words & ACTION_VERBS) and bool(words & SURGICAL_NOUNS)

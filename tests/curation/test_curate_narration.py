"""`ophora curate` with every stage on the synthetic corpus's ground truth: narration transcribed by faster-whisper
(tiny.en) and aligned to the right clips, one instruction per clip, no planted identifying word stored anywhere,
and tpt/ and p2ft/ membership as the truth expects of each scene."""

from __future__ import annotations

import json

import pytest

from ophora.curation.cataract_actions import names_action
from ophora.curation.pipeline import run_curation
from ophora.dataset.ledger import read_ledger
from ophora.synthetic.narration_eval import clip_records, evaluate
from tests.fixtures.curate import offline_config

pytestmark = pytest.mark.slow  # a full curation run of the small corpus (the bundled LLM's run: test_demo)

# 33 frames (4.1 s) so that the corpus's 6.6-7.4 s overlay, picture-in-picture and burned-in-text scenes each hold
# a window after the margins at their cuts; sidecars off so that every video goes through speech recognition.
FULL = {"windows.num_frames": 33, "transcribe.use_sidecars": False}


@pytest.fixture(scope="module")
def curated(ray_local, small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("curated-full")
    summary = run_curation(offline_config(**FULL), [str(small_corpus / "videos")], str(out), quiet=True)
    return out, summary, evaluate(str(out), small_corpus)


def test_subsets_match_what_the_truth_expects_of_each_scene(curated, small_corpus):
    out, summary, report = curated
    assert summary["done"] == 3 and summary["clips_written"] == report["clips"] > 0
    # An overlay of arrows and a ring only, in hues the frame also has elsewhere (a green arrow on the iris, with a
    # green drape at the edge), passes into p2ft/: the colour check learns the palette from the whole frame. A known
    # miss (issue 17), bounded here to the windows of one such scene; every other window, and every identifying
    # one, ends where the truth says.
    wrong = report["subsets_wrong"]
    assert [w for w in wrong if w[1] != "overlay"] == [] and len(wrong) <= 2, wrong
    assert all(w[3] == ["tpt"] for w in wrong), wrong  # a missed overlay still reaches tpt/, never an identifying clip
    if not wrong:  # with the overlay caught: overlays are tpt only, and the summary says why
        assert summary["clips_by_subset"]["p2ft"] < summary["clips_by_subset"]["tpt"]
        assert any(k.startswith("privacy: ") for k in summary["kept_out_of_p2ft"])


def test_windows_with_planted_identifying_text_are_dropped_and_the_ledger_says_why(curated, small_corpus):
    from tests.fixtures.curate import truth_by_file

    out, summary, _ = curated
    truth = truth_by_file(small_corpus)
    planted = 0
    for row in read_ledger(str(out)).itertuples():
        scenes = truth[row.source_uri.rsplit("/", 1)[-1]]["scenes"]
        for index, start, end, reason in json.loads(row.dropped_json):
            if reason.startswith("windows: "):  # a leftover too short for a clip: no stage looked at it
                continue
            kind = next(s["kind"] for s in scenes if s["start"] <= (start + end) / 2 < s["end"])
            if kind in ("phi_text", "face"):
                planted += 1
                assert reason.startswith("privacy: identifying content"), (kind, reason)
    assert planted >= 1
    assert sum(n for k, n in summary["drops"].items() if k.startswith("privacy: identifying content")) >= planted


def test_no_planted_identifying_word_is_stored_anywhere(curated):
    out, summary, report = curated
    assert report["phi_leaks"] == []
    assert sum(summary["phi_scrubbed"].values()) > 0  # the narration does speak names and record numbers


def test_narration_words_land_in_the_clip_they_were_spoken_in(curated):
    _, _, report = curated
    assert report["words_placed"] > 50
    assert report["alignment_placed_right"] >= 0.95
    assert report["narration_coverage"] >= 0.7  # tiny.en's word errors count against this one


def test_every_clip_has_an_instruction_and_says_where_it_came_from(curated):
    out, _, report = curated
    for clip in clip_records(str(out)):
        assert clip["text"] == clip["instruction"] and names_action(clip["instruction"]), clip["key"]
        assert clip["narration"] and clip["words"] and clip["language"] == "en"
        assert clip["models"]["transcribe"] and clip["models"]["refine"] == "extractive:rules-v2@refine_v2"
        assert set(clip["refine"]) >= {"backend", "model", "prompt_version", "fallback"}
    assert report["instructions_naming_phase"] >= 0.6


def test_sources_sharing_speech_batches_give_the_index_each_source_alone_gives(
    ray_local, small_corpus, curated, tmp_path
):
    """The speed-up that lets sources share whisper's batches (eight sources a call) changes no clip: the run with
    one source a call (as before it) writes the same keys, subsets, times, instructions and scores."""
    from ophora.dataset.shards import read_index

    out, _, _ = curated
    alone = tmp_path / "one-source-a-call"
    run_curation(
        offline_config(**FULL, **{"resources.transcribe.batch_size": 1}),
        [str(small_corpus / "videos")],
        str(alone),
        quiet=True,
    )
    columns = ["key", "subset", "start", "end", "phase", "instruction", "scores_json"]
    before, after = (read_index(str(d))[columns].sort_values(["key", "subset"]) for d in (alone, out))
    assert len(after) > 0 and before.to_dict("records") == after.to_dict("records")

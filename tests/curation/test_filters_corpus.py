"""The filter chain on the synthetic corpus's ground truth: every scene's window ends where the truth says
(dropped, TPT only, or TPT and P²FT), and no window with planted identifying content reaches any subset."""

from __future__ import annotations

import pytest

from ophora.curation.stages.dedup import DedupStage
from ophora.curation.stages.dynamics import DynamicsStage
from ophora.curation.stages.frame_filter import is_identifying
from ophora.curation.stages.privacy import PrivacyStage
from ophora.curation.stages.quality import QualityStage
from ophora.synthetic.filter_eval import PLANTED, evaluate, run_stage, truth_windows


@pytest.fixture(scope="module")
def privacy_stage():
    return PrivacyStage(None)


@pytest.mark.slow
def test_filter_chain_matches_the_ground_truth(small_corpus, privacy_stage):
    report = evaluate(small_corpus, [DynamicsStage(None), QualityStage(None), privacy_stage, DedupStage(None)])
    kinds = {o.kind for o in report["outcomes"]}
    assert {"surgical", "black", "slide"} <= kinds and kinds & set(PLANTED)
    wrong = [(o.video, o.kind, o.start, o.subsets, o.expect, o.drop) for o in report["outcomes"] if not o.as_expected]
    # overlays are drawn in random hues, opacity and parts (the detector does not know them): an arrow in a tissue
    # hue with no panel or caption can pass into p2ft/ (a quality miss, measured in bench_privacy.py); every other
    # window, and every identifying one, ends where the truth says
    assert [w for w in wrong if w[1] not in ("overlay", "pip")] == [] and len(wrong) <= 1, wrong
    assert report["planted_in_a_subset"] == 0
    assert report["surgical_wrongly_dropped"] == 0.0


@pytest.mark.slow
def test_privacy_alone_finds_every_planted_window(small_corpus, privacy_stage):
    planted = [row for row, scene in truth_windows(small_corpus) if scene["kind"] in PLANTED]
    assert planted
    out, _ = run_stage(privacy_stage, planted)
    assert all(is_identifying(r) and r["drop"].startswith("privacy: identifying content") for r in out)

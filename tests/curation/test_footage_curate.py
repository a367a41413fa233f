"""`ophora curate --profile offline` on narrated videos built from the real reference clips (continuous shots joined
by a hard cut and a dissolve, sidecar narration): most clean surgical footage becomes clips, no clip spans a join,
every instruction is an imperative, and summary.json says where every second went."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ophora.curation.pipeline import run_curation
from ophora.curation.stages.refine.instruction_form import form_complaint
from ophora.dataset.ledger import read_ledger
from ophora.dataset.shards import read_index
from ophora.synthetic.footage_eval import Footage, Shot, clean_share, load_clips, render, write_srt
from tests.fixtures.curate import offline_config

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


@pytest.mark.slow
def test_real_footage_curates_to_clips_covering_most_of_it_and_never_a_join(ray_local, tmp_path):
    clips = load_clips(REFERENCE)
    names = sorted(clips)
    videos = tmp_path / "videos"
    videos.mkdir()
    truths = {}
    for footage in (
        Footage("real-a", [Shot(names[2]), Shot(names[0])], [("cut", 0)], 640, 428, 25.0),
        Footage("real-b", [Shot(names[3]), Shot(names[1])], [("dissolve", 1.0)], 480, 320, 12.0),
    ):
        truth = render(footage, clips, videos)
        write_srt(truth, videos)
        truths[truth["file"]] = truth
    summary = run_curation(offline_config(), [str(videos)], str(tmp_path / "out"), quiet=True)
    assert summary["exit_code"] == 0 and summary["done"] == 2, summary
    foot = summary["footage"]
    assert foot["clip_s"] + sum(foot["lost_s"].values()) == pytest.approx(foot["source_s"], abs=0.05)
    index = read_index(str(tmp_path / "out"))
    index = index[index["subset"] == "tpt"]
    ids = {Path(r.source_uri).name: r.source_id for r in read_ledger(str(tmp_path / "out")).itertuples()}
    for name, truth in truths.items():
        mine = index[index["source_id"] == ids[name]]
        spans = list(zip(mine["start"], mine["end"]))
        assert clean_share(truth, spans) >= 0.8, (name, spans, json.dumps(foot))
        for cut in truth["cuts"]:
            half = cut["duration"] / 2
            assert not [s for s in spans if s[0] < cut["time"] + half and s[1] > cut["time"] - half], (name, cut)
    assert all(form_complaint(text) is None for text in index["instruction"]), list(index["instruction"])

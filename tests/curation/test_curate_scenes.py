"""Scene detection against the synthetic corpus's ground truth: hard cuts found, dissolves found, nothing else.
(Real microscope footage: tests/curation/test_footage_scenes.py.)"""

from __future__ import annotations

from ophora.curation.config import CurateConfig
from ophora.curation.stages.scenes import Scenes
from tests.fixtures.curate import cut_scores, truth_by_file


def test_every_synthetic_cut_and_dissolve_is_found_and_nothing_else(small_corpus, artifacts_dir):
    scenes = Scenes(CurateConfig.load("offline"))
    hit, total, false = {}, {}, 0
    for name, truth in truth_by_file(small_corpus).items():
        boundaries, decoded = scenes.detect(str(small_corpus / truth["file"]), truth["width"], truth["height"])
        assert decoded > 0
        h, t, f = cut_scores(truth["cuts"], boundaries)
        for k in t:
            hit[k] = hit.get(k, 0) + h.get(k, 0)
            total[k] = total.get(k, 0) + t[k]
        false += f
    found, all_cuts = sum(hit.values()), sum(total.values())
    recall, precision = found / all_cuts, found / max(1, found + false)
    f1 = 2 * recall * precision / (recall + precision)
    hard_recall = hit.get("cut", 0) / total["cut"]
    hard_f1 = 2 * hard_recall * precision / (hard_recall + precision)
    (artifacts_dir / "curate_scene_f1.txt").write_text(
        f"hard cuts {hit.get('cut', 0)}/{total['cut']}, dissolves {hit.get('dissolve', 0)}/"
        f"{total.get('dissolve', 0)}, false boundaries {false}, F1 {f1:.3f}, hard-cut F1 {hard_f1:.3f}\n"
    )
    assert hit == total and false == 0, (hit, total, false)  # the candidate check keeps every true cut
    assert hard_f1 == 1.0 and f1 == 1.0

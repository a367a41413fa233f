"""README's first command: the whole chain, offline (SmolLM2 writing the instructions), ends with a gallery of
generated phase videos, validation videos in TensorBoard's folder, FIDs of the trained and the untrained model and
a memorisation audit. (The FID gap needs the default ~1200 training steps; docs/benchmarks.md has the demo's timing.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ophora.curation.cataract_actions import names_action
from ophora.synthetic.narration_eval import clip_records


@pytest.mark.slow
def test_demo_runs_the_whole_chain_offline(tmp_path):
    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "ophora.cli",
        "demo",
        "--out",
        str(out),
        "--videos",
        "2",
        "--minutes",
        "0.6",
        "--train-steps",
        "4",
        "--sample-steps",
        "2",
        "--fid-size",
        "96",
    ]  # CI time: Inception at 96 px
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "demo-summary.json").read_text())
    assert set(summary["seconds"]) == {"synth", "curate", "inspect", "train", "sample", "evaluate"}
    assert summary["curation"]["clips_written"] > 0
    for clip in clip_records(str(out / "curated")):  # the offline profile: SmolLM2 writes the instructions
        refine = clip["refine"]
        assert refine["model"].startswith("SmolLM2-135M-Instruct") or refine["fallback"]
        assert refine["fallback"] == (refine["backend"] == "extractive")
        assert clip["models"]["refine"].endswith("@refine_v2") and names_action(clip["instruction"])
    assert summary["training"]["p2ft"]["export"]
    assert summary["sampling"]["videos"] == summary["sampling_untrained"]["videos"] == 12, "one per cataract phase"
    assert (out / "samples" / "gallery" / "index.html").is_file()
    assert (out / "gallery-curated" / "index.html").is_file()
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert evaluation["generated"]["videos"] == 12 and evaluation["labels"]["fid"] == "not comparable"
    fid = summary["fid_against_curated"]
    assert (
        fid["trained"] > 0
        and fid["untrained"] > 0
        and "FID against the curated clips" in (out / "samples" / "gallery" / "index.html").read_text()
    )
    # validation videos sit in TensorBoard's folder, next to the frame grids TensorBoard shows
    validation = Path(summary["training"]["tpt"]["validation_dir"])
    assert validation.parent == out / "runs" / "tpt" / "tensorboard" / "tpt"
    assert list(validation.glob("step-*/01_incision.mp4"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(validation.parent), size_guidance={"images": 0})
    board.Reload()
    assert "validation/01_incision" in board.Tags()["images"]
    audit = summary["memorisation"]
    assert len(audit["nearest"]) == 12 and audit["threshold"] is not None
    assert "Memorisation audit" in res.stdout + res.stderr

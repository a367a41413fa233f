"""dynamics: still pictures and jumps are dropped, moving microscope views are kept (frames in memory and a real
video file through the stage's batch interface)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from filters_scenes import scene_frames
from ophora.curation.stages.common import new_row, read_meta, rows_to_batch
from ophora.curation.stages.dynamics import DynamicsConfig, DynamicsStage, judge_motion, motion_profile

CFG = DynamicsConfig()
INTERVAL = 6.125 / 8


def judge(frames):
    return judge_motion(motion_profile(frames, INTERVAL, CFG.flow_width), CFG)


@pytest.mark.parametrize("kind", ["slide", "black", "frozen"])
def test_still_scenes_are_dropped(kind):
    findings = judge(scene_frames(kind, seed=1))
    assert findings.drop.startswith("no motion")
    assert findings.scores["motion"] < CFG.still_motion


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_moving_microscope_views_are_kept(seed):
    findings = judge(scene_frames("surgical", seed=seed))
    assert findings.drop == ""
    assert findings.scores["frame_change"] > 3 * CFG.still_change


def test_cut_inside_window_is_dropped():
    frames = np.concatenate([scene_frames("surgical", 0)[:4], scene_frames("slide", 0)[4:]])
    assert judge(frames).drop.startswith("cut inside the window")


def test_whip_pan_is_dropped():
    wide = np.concatenate([scene_frames("surgical", s, count=1)[0] for s in range(4)], axis=1)
    w = wide.shape[1] // 4
    step = int(0.15 * w)  # the view slides 15 % of its width between samples: ~0.2 widths per second
    frames = np.stack([wide[:, i * step:i * step + w] for i in range(8)])
    cfg = DynamicsConfig(max_global_motion=0.1)
    findings = judge_motion(motion_profile(frames, INTERVAL, cfg.flow_width), cfg)
    assert findings.drop, findings.scores
    assert judge(scene_frames("surgical", 0)).scores["motion_global"] < 0.1  # the threshold holds a real view


def test_stage_reads_a_video_file_and_drops_only_the_still_half(tmp_path):
    video = tmp_path / "half_still.mp4"
    # 4 s of a moving test pattern, then 4 s of one frozen frame
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=4",
                    "-f", "lavfi", "-i", "color=c=gray:size=320x240:rate=10:duration=4",
                    "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    rows = [new_row(source_uri=str(video), source_id="abcd", window_index=i, start=s, end=s + 3.0)
            for i, s in enumerate((0.5, 4.5))]
    out = DynamicsStage(None)(rows_to_batch(rows)).to_pylist()
    assert out[0]["drop"] == "" and read_meta(out[0])["scores"]["motion"] > CFG.still_motion
    assert out[1]["drop"].startswith("dynamics: no motion")
    assert read_meta(out[0])["models"]["dynamics"].startswith("opencv-dis-flow")


def test_unreadable_window_is_dropped_with_the_file_named(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    out = DynamicsStage(None)(rows_to_batch([new_row(source_uri=str(bad), source_id="abcd", window_index=0,
                                                     start=0.0, end=2.0)])).to_pylist()
    assert out[0]["drop"].startswith("dynamics: cannot read frames") and "broken.mp4" in out[0]["drop"]
    assert out[0]["error"] == ""

"""dynamics: still pictures and jumps are dropped, moving microscope views are kept, and speed is measured in
frame widths per second as it is: a 0.8 widths/s whip-pan in a real video file is dropped at the default
threshold, a slow drift and the four real cataract clips are kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ophora.curation.stages.common import new_row, read_meta, rows_to_batch
from ophora.curation.stages.dynamics import DynamicsConfig, DynamicsStage, judge_motion, motion_profile
from tests.fixtures.scenes import scene_pairs

CFG = DynamicsConfig()
REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


def judge(pairs):
    return judge_motion(motion_profile(pairs, CFG.pair_gap, CFG.flow_width), CFG)


def _run(stage, path, start, end):
    return stage(
        rows_to_batch([new_row(source_uri=str(path), source_id="abcd", window_index=0, start=start, end=end)])
    ).to_pylist()[0]


def _h264(path: Path, *args: str) -> Path:
    """``path`` encoded by ffmpeg (H.264, yuv420p) from the inputs and filters in ``args``."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *args, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True
    )
    return path


def _pan_video(path: Path, widths_per_second: float, seconds: float = 7.0, width: int = 640) -> Path:
    """A camera pan over a wide textured picture (testsrc2 and mandelbrot side by side, 8 frames wide), at
    ``widths_per_second`` frame widths per second, 25 fps."""
    speed = widths_per_second * width
    total = int(width * (1 + widths_per_second * seconds)) + 16
    return _h264(
        path,
        "-f",
        "lavfi",
        "-i",
        f"mandelbrot=size={total}x360:rate=25",
        "-vf",
        f"crop={width}:360:x='min(t*{speed},{total - width})':y=0",
        "-t",
        str(seconds),
    )


@pytest.mark.parametrize("kind", ["slide", "black", "frozen"])
def test_still_scenes_are_dropped(kind):
    findings = judge(scene_pairs(kind, seed=1))
    assert findings.drop.startswith("no motion")
    assert findings.scores["motion"] < CFG.still_motion


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_moving_microscope_views_are_kept(seed):
    findings = judge(scene_pairs("surgical", seed=seed))
    assert findings.drop == ""
    assert findings.scores["frame_change"] > 3 * CFG.still_change


def test_cut_inside_the_window_is_dropped():
    pairs = np.concatenate([scene_pairs("surgical", 0)[:4], scene_pairs("slide", 0)[4:]])
    assert judge(pairs).drop.startswith("cut inside the window")


def test_a_whip_pan_of_0_8_widths_per_second_is_dropped_at_the_default_threshold(tmp_path):
    out = _run(DynamicsStage(None), _pan_video(tmp_path / "whip.mp4", 0.8), 0.3, 6.425)
    measured = read_meta(out)["scores"]["motion_global"]
    assert out["drop"].startswith("dynamics: whip-pan") and 0.65 < measured < 0.95, (out["drop"], measured)


def test_a_slow_drift_is_measured_as_it_is_and_kept(tmp_path):
    out = _run(DynamicsStage(None), _pan_video(tmp_path / "drift.mp4", 0.1), 0.3, 6.425)
    measured = read_meta(out)["scores"]["motion_global"]
    assert out["drop"] == "" and 0.07 < measured < 0.13, measured


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference clips live in ../shared/reference")
def test_the_real_cataract_clips_are_kept():
    stage = DynamicsStage(None)
    for clip in sorted(REFERENCE.glob("*.mp4")):
        out = _run(stage, clip, 0.0, 6.0)
        assert out["drop"] == "", (clip.name, out["drop"], read_meta(out)["scores"])
        assert read_meta(out)["scores"]["motion_global"] < CFG.max_global_motion, clip.name  # 0.05-0.25 measured


def test_stage_reads_a_video_file_and_drops_only_the_still_half(tmp_path):
    video = tmp_path / "half_still.mp4"
    # 4 s of a moving test pattern, then 4 s of one frozen frame
    _h264(
        video,
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10:duration=4",
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:size=320x240:rate=10:duration=4",
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1[v]",
        "-map",
        "[v]",
    )
    rows = [
        new_row(source_uri=str(video), source_id="abcd", window_index=i, start=s, end=s + 3.0)
        for i, s in enumerate((0.5, 4.5))
    ]
    out = DynamicsStage(None)(rows_to_batch(rows)).to_pylist()
    assert out[0]["drop"] == "" and read_meta(out[0])["scores"]["motion"] > CFG.still_motion
    assert out[1]["drop"].startswith("dynamics: no motion")
    assert read_meta(out[0])["models"]["dynamics"].startswith("opencv-dis-flow")


def test_unreadable_window_is_dropped_with_the_file_named(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    out = _run(DynamicsStage(None), bad, 0.0, 2.0)
    assert out["drop"].startswith("dynamics: cannot read frames") and "broken.mp4" in out["drop"]
    assert out["error"] == ""

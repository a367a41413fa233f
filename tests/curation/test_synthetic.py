"""The synthetic corpus tells the truth about itself: files, streams, cuts, speech and subtitles match truth/."""

from __future__ import annotations

import json
import re
import subprocess
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from ophora.synthetic.corpus import generate_corpus, load_truth

KINDS = {"surgical", "slide", "face", "black", "frozen", "overlay", "pip", "phi_text"}
TRUTH_KEYS = {
    "name",
    "file",
    "seed",
    "duration",
    "fps",
    "fps_fraction",
    "width",
    "height",
    "container",
    "video_codec",
    "audio",
    "subtitles",
    "phase_order",
    "scenes",
    "cuts",
    "narration",
    "phi_words",
}


def _probe(path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)


def _frame_changes(path) -> np.ndarray:
    """Mean absolute grey-level change between consecutive frames, decoded at 64x36."""
    # passthrough: one output frame per coded frame, even where a container starts video a few ms late (mkv/hevc)
    raw = subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-fps_mode",
            "passthrough",
            "-vf",
            "scale=64:36",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 36, 64).astype(np.float32)
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2)), len(frames)


def _audio(path, rate: int = 16000) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.float32)


def _parse_subtitles(text: str) -> list[tuple[float, float, str]]:
    stamp = r"(\d+):(\d\d):(\d\d)[,.](\d{3})"
    cues = []
    for block in re.split(r"\n\s*\n", text.strip()):
        m = re.search(stamp + r" --> " + stamp + r"\n(.+)", block, re.S)
        if m:
            g = [int(x) for x in m.groups()[:8]]
            cues.append(
                (
                    g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000,
                    g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                    m.group(9).strip(),
                )
            )
    return cues


def test_truth_files_have_the_promised_shape(small_corpus):
    truths = load_truth(small_corpus)
    manifest = json.loads((small_corpus / "corpus.json").read_text())
    assert [v["name"] for v in manifest["videos"]] == [t["name"] for t in truths] and manifest["seed"] == 7
    assert {t["container"] for t in truths} == {"mp4", "mkv", "webm"}  # small corpora still cover every container
    assert set().union(*({s["kind"] for s in t["scenes"]} for t in truths)) == KINDS
    for t in truths:
        assert set(t) == TRUTH_KEYS and t["height"] <= 480
        scenes = t["scenes"]
        assert scenes[0]["start"] == 0 and abs(scenes[-1]["end"] - t["duration"]) < 1e-6
        assert all(a["end"] == b["start"] for a, b in zip(scenes, scenes[1:]))
        surgical = [s["end"] - s["start"] for s in scenes if s["kind"] == "surgical"]
        assert sum(surgical) >= 0.6 * t["duration"] and min(surgical) >= 7.0
        for s in scenes:
            assert (s["phase"] is not None) == (s["kind"] in ("surgical", "overlay", "pip", "phi_text"))
            assert (s["expect_tpt"], s["expect_p2ft"]) == {
                "surgical": (True, True),
                "overlay": (True, False),
                "pip": (True, False),
            }.get(s["kind"], (False, False))
            assert bool(s["phi_text"]) == (s["kind"] in ("phi_text", "slide", "face"))
        for seg in t["narration"]:
            inside = [s for s in scenes if s["start"] <= seg["start"] and seg["end"] <= s["end"]]
            assert len(inside) == 1 and seg["phase"] == inside[0]["phase"], seg  # never spills over a cut
            assert all(w in seg["text"] for w in seg["phi_words"]) and bool(seg["phi_words"]) == (seg["kind"] == "phi")
            if seg["kind"] == "action":
                assert seg["phase"] is not None
        phase_scenes = [s for s in scenes if s["phase"]]
        spoken = {seg["phase"] for seg in t["narration"] if seg["kind"] == "action"}
        assert len(spoken) >= len(phase_scenes) - 1  # (almost) every phase scene is talked about
        planted = [w.lower() for w in t["phi_words"]]
        assert all(w.lower() in planted for seg in t["narration"] for w in seg["phi_words"])
        assert all(any(w in line.lower() for w in planted) for s in scenes for line in s["phi_text"])


def test_streams_and_durations_match_ffprobe(small_corpus):
    for t in load_truth(small_corpus):
        info = _probe(small_corpus / t["file"])
        video = [s for s in info["streams"] if s["codec_type"] == "video"]
        audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
        assert len(video) == 1 and video[0]["codec_name"] == t["video_codec"]
        assert (video[0]["width"], video[0]["height"]) == (t["width"], t["height"])
        assert (
            Fraction(video[0]["r_frame_rate"]) == Fraction(t["fps_fraction"])
            and abs(float(Fraction(t["fps_fraction"])) - t["fps"]) < 1e-5
        )
        assert abs(float(info["format"]["duration"]) - t["duration"]) < 0.1, t["name"]
        if t["audio"] is None:
            assert not audio
        else:
            assert len(audio) == 1 and audio[0]["codec_name"] == t["audio"]["codec"]
            assert (audio[0]["channels"], int(audio[0]["sample_rate"])) == (
                t["audio"]["channels"],
                t["audio"]["sample_rate"],
            )


def test_hard_cuts_fall_on_the_truth_frame_and_dissolves_are_gradual(small_corpus):
    for t in load_truth(small_corpus):
        changes, n_frames = _frame_changes(small_corpus / t["file"])
        assert n_frames == round(t["duration"] * t["fps"])
        before, after = np.r_[0, changes[:-1]], np.r_[changes[1:], 0]
        found = set(np.flatnonzero((changes > 8) & (changes > 4 * np.maximum(before, after))) + 1)
        hard = {round(c["time"] * t["fps"]) for c in t["cuts"] if c["kind"] == "cut"}
        assert found == hard, (t["name"], sorted(found), sorted(hard))
        assert len(t["scenes"]) == len(t["cuts"]) + 1
        for s in t["scenes"]:
            if s["transition_in"] == "dissolve":
                k, d = round(s["start"] * t["fps"]), round(s["transition_duration"] * t["fps"])
                # the median: an encoder may skip the last near-identical steps of a fade
                assert np.median(changes[k - d // 2 : k - d // 2 + d - 1]) > 2 * np.median(changes), (t["name"], s)


def test_narration_is_audible_exactly_where_the_truth_says(small_corpus):
    for t in load_truth(small_corpus):
        if t["audio"] is None:
            continue
        pcm, rate = _audio(small_corpus / t["file"]), 16000
        spoken = np.zeros(pcm.size, bool)
        for seg in t["narration"]:
            spoken[int(seg["start"] * rate) : int(seg["end"] * rate)] = True
        near_speech = np.convolve(spoken, np.ones(rate // 2), "same") > 0  # keep 0.25 s away from speech edges
        rms_speech = np.sqrt(np.mean(pcm[spoken] ** 2))
        rms_silence = np.sqrt(np.mean(pcm[~near_speech] ** 2))
        assert t["narration"] and rms_speech > 8 * rms_silence, (t["name"], rms_speech, rms_silence)
        for seg in t["narration"]:  # every single line is there, not just the average
            part = pcm[int(seg["start"] * rate) : int(seg["end"] * rate)]
            assert np.sqrt(np.mean(part**2)) > 4 * rms_silence, seg


def test_sidecar_subtitles_parse_and_match_the_narration(small_corpus):
    truths = load_truth(small_corpus)
    assert any(t["subtitles"] for t in truths)
    for t in truths:
        for rel in t["subtitles"]:
            text = (small_corpus / rel).read_text(encoding="utf-8")
            assert rel.endswith(".srt") or text.startswith("WEBVTT")
            cues = _parse_subtitles(text)
            assert [c[2] for c in cues] == [seg["text"] for seg in t["narration"]]
            assert all(
                abs(c[0] - seg["start"]) < 0.002 and abs(c[1] - seg["end"]) < 0.002
                for c, seg in zip(cues, t["narration"])
            )


def test_same_seed_same_truth_and_other_seed_other_video(tmp_path):
    def make(seed, where):
        generate_corpus(tmp_path / where, videos=1, seed=seed, minutes=0.25, max_height=240, workers=1)
        (truth,) = load_truth(tmp_path / where)
        return truth, (tmp_path / where / truth["file"]).read_bytes()

    first, video_a = make(3, "a")
    again, _ = make(3, "b")
    other, video_c = make(4, "c")
    assert first == again
    assert other != first and video_c != video_a


def test_a_rerun_with_fewer_videos_leaves_no_stale_files(tmp_path):
    generate_corpus(tmp_path, videos=2, seed=5, minutes=0.1, max_height=240, workers=1)
    generate_corpus(tmp_path, videos=1, seed=5, minutes=0.1, max_height=240, workers=1)
    (truth,) = load_truth(tmp_path)
    assert [p.name for p in (tmp_path / "truth").iterdir()] == [f"{truth['name']}.json"]
    assert all(p.name.startswith(truth["name"]) for p in (tmp_path / "videos").iterdir())


def test_bad_arguments_raise_clear_errors(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="videos"):
        generate_corpus(tmp_path / "x", videos=0, seed=1)
    with pytest.raises(ValueError, match="cannot write"):
        generate_corpus(blocker / "corpus", videos=1, seed=1)


def test_cli_help_errors_and_a_tiny_run(tmp_path):
    from ophora.cli import app

    runner = CliRunner()
    help_result = runner.invoke(app, ["synth", "--help"])
    assert help_result.exit_code == 0 and "Example" in help_result.output and "--videos" in help_result.output
    negative = runner.invoke(app, ["synth", str(tmp_path / "out"), "--videos", "-2"])
    assert negative.exit_code != 0 and "--videos must be at least 1" in negative.output
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    unwritable = runner.invoke(app, ["synth", str(blocker / "out"), "--videos", "1"])
    assert unwritable.exit_code != 0 and "cannot write" in unwritable.output
    ok = runner.invoke(
        app,
        ["synth", str(tmp_path / "tiny"), "--videos", "1", "--minutes", "0.1", "--max-height", "240", "--workers", "1"],
    )
    assert ok.exit_code == 0, ok.output
    assert "corpus.json" in ok.output and (tmp_path / "tiny" / "corpus.json").exists()

"""The curate job's parts, without Ray: config, input discovery, probe verdicts, scene/window planning, clips."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ophora.curation.config import CurateConfig, parse_override
from ophora.curation.inputs import InputError, discover
from ophora.curation.stages.clip import Clip, count_frames
from ophora.curation.stages.common import batch_to_rows, new_row, rows_to_batch
from ophora.curation.stages.probe import Probe
from ophora.curation.stages.scenes import scenes_between
from ophora.curation.stages.windows import Windows


def lavfi_video(path: Path, seconds: float, size: str = "320x240", rate: int = 30, audio: bool = False) -> Path:
    """A small H.264 test-pattern video made by ffmpeg (optionally with a sine audio track)."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=d={seconds}", "-c:a", "aac", "-shortest"]
    subprocess.run(args + ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def probe_rows(config: CurateConfig, *paths: Path) -> list[dict]:
    return batch_to_rows(Probe(config)(rows_to_batch([new_row(source_uri=str(p)) for p in paths])))


# ---------------------------------------------------------------- config


def test_profiles_load_and_overrides_win_over_yaml(tmp_path):
    user = tmp_path / "job.yaml"
    user.write_text("windows: {fps: 4}\nclip: {width: 320}\n")
    cfg = CurateConfig.load("default", str(user), {"windows.fps": 10, "resources.clip.concurrency": 2})
    assert (cfg.windows.fps, cfg.clip.width, cfg.clip.height) == (10, 320, 480)
    assert cfg.resources.clip.concurrency == (2, 2)
    assert CurateConfig.load("offline").profile == "offline"
    assert CurateConfig.load("default").windows.duration == pytest.approx(49 / 8)


def test_bad_config_is_refused_with_the_field_named(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        CurateConfig.load("nope")
    with pytest.raises(ValueError, match="windows"):
        CurateConfig.load("default", overrides={"windows.fps": -1})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("windows.fps")
    assert parse_override("clip.keep_native=true") == ("clip.keep_native", True)


def test_every_config_field_is_documented():
    def walk(model):
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"
            ann = f.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                walk(ann)

    walk(CurateConfig)


# ---------------------------------------------------------------- inputs


def test_discovery_covers_dirs_globs_manifests_sidecars_and_repeats(tmp_path):
    vids = tmp_path / "v" / "deep"
    vids.mkdir(parents=True)
    for name in ("a b.mp4", "-dash.mkv", "ünï'q.mov"):
        (vids / name).write_bytes(b"x")
    (vids / "a b.srt").write_text("1\n")
    (vids / "a b.info.json").write_text('{"id": "abc"}')
    (vids / "-dash.en.vtt").write_text("WEBVTT\n")
    (vids / "ünï'q.en.json3").write_text('{"events": []}')
    (vids / "notes.txt").write_text("not a video")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,title\nv/deep/a b.mp4,x\nhttps://example.org/c.mp4,y\n")
    sources, repeated = discover([str(tmp_path / "v"), str(manifest), str(tmp_path / "v" / "**" / "*.mkv")])
    by_name = {Path(s.uri).name: s for s in sources}
    assert set(by_name) == {"a b.mp4", "-dash.mkv", "ünï'q.mov", "c.mp4"}
    assert set(by_name["a b.mp4"].sidecars) == {"srt", "info.json"}
    assert by_name["-dash.mkv"].sidecars["vtt"].endswith("-dash.en.vtt")
    assert by_name["ünï'q.mov"].sidecars["json3"].endswith("ünï'q.en.json3")  # yt-dlp's timed text
    assert len(repeated) == 2  # a b.mp4 again via the manifest, -dash.mkv via the glob
    with pytest.raises(InputError, match="no such file"):
        discover([str(tmp_path / "missing.mp4")])


# ---------------------------------------------------------------- probe


def test_probe_gives_each_bad_input_a_reason(tmp_path):
    good = lavfi_video(tmp_path / "good.mp4", 3, audio=True)
    silent = lavfi_video(tmp_path / "silent.mp4", 3)
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello, I am not a video\n")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=3", str(tmp_path / "audio.m4a")], check=True
    )
    (tmp_path / "trunc.mp4").write_bytes(good.read_bytes()[:3000])
    short = lavfi_video(tmp_path / "short.mp4", 1)
    tiny = lavfi_video(tmp_path / "tiny.mp4", 3, size="32x32")
    rows = {
        Path(r["source_uri"]).name: r
        for r in probe_rows(
            CurateConfig.load("offline"),
            good,
            silent,
            tmp_path / "zero.mp4",
            tmp_path / "text.mp4",
            tmp_path / "audio.m4a",
            tmp_path / "trunc.mp4",
            short,
            tiny,
            tmp_path / "gone.mp4",
        )
    }
    assert rows["good.mp4"]["reject"] == "" and json.loads(rows["good.mp4"]["facts_json"])["has_audio"]
    assert rows["silent.mp4"]["reject"] == "" and not json.loads(rows["silent.mp4"]["facts_json"])["has_audio"]
    expect = {
        "zero.mp4": "empty file",
        "text.mp4": "undecodable",
        "audio.m4a": "no video stream",
        "trunc.mp4": "undecodable",
        "short.mp4": "too short",
        "tiny.mp4": "too small",
        "gone.mp4": "not found",
    }
    for name, words in expect.items():
        assert rows[name]["reject"].startswith("probe: ") and words in rows[name]["reject"], rows[name]
    assert len(rows["good.mp4"]["source_id"]) == 16


def test_probe_takes_the_stable_id_from_info_json(tmp_path):
    from ophora.dataset.shards import source_id_from_stable_id

    video = lavfi_video(tmp_path / "v.mp4", 3)
    row = new_row(source_uri=str(video), sidecars_json=json.dumps({"info.json": str(tmp_path / "v.info.json")}))
    (tmp_path / "v.info.json").write_text('{"id": "dQw4w9WgXcQ"}')
    [out] = batch_to_rows(Probe(CurateConfig.load("offline"))(rows_to_batch([row])))
    assert out["source_id"] == source_id_from_stable_id("dQw4w9WgXcQ")


# ---------------------------------------------------------------- scenes and windows


def test_scenes_lie_between_merged_boundaries():
    assert scenes_between([(4.0, 4.5), (4.4, 5.0), (9.0, 9.2)], 12.0) == [(0.0, 4.0), (5.0, 9.0), (9.2, 12.0)]
    assert scenes_between([], 3.0) == [(0.0, 3.0)]


def test_windows_never_cross_a_scene_and_leftovers_are_dropped_with_a_reason():
    cfg = CurateConfig.load("offline", overrides={"skip": ["transcribe"], "windows.overlap": 0})  # the split alone
    split = Windows(cfg)
    scenes = [[0.0, 14.0], [14.4, 17.0], [17.5, 30.0]]
    src = new_row(source_uri="/x.mp4", source_id="abcd1234abcd1234", duration=30.0, scenes_json=json.dumps(scenes))
    rows = split(src)
    assert [r["window_index"] for r in rows] == list(range(len(rows)))
    assert {r["windows_total"] for r in rows} == {len(rows)}
    clips = [r for r in rows if not r["drop"]]
    assert len(clips) == 2 + 0 + 1
    for r in clips:
        a, b = scenes[r["scene_index"]]
        assert a + cfg.windows.cut_margin - 1e-6 <= r["start"] and r["end"] <= b - cfg.windows.cut_margin + 1e-6
        assert r["end"] - r["start"] == pytest.approx(49 / 8, abs=1e-3)
    drops = [r["drop"] for r in rows if r["drop"]]
    assert drops and all(d.startswith("windows: short leftover") for d in drops)
    assert sorted((r["start"], r["end"]) for r in rows) == [(r["start"], r["end"]) for r in rows]  # time order
    rejected = split(new_row(source_uri="/y.mp4", reject="probe: too short"))
    assert len(rejected) == 1 and rejected[0]["windows_total"] == 0


# ---------------------------------------------------------------- clip


def test_clip_has_the_promised_frames_size_and_rate(tmp_path):
    video = lavfi_video(tmp_path / "v.mp4", 8, size="640x360", rate=25)
    cfg = CurateConfig.load("offline")
    [row] = probe_rows(cfg, video)
    row.update(window_index=0, windows_total=1, start=1.0, end=1.0 + 49 / 8)
    Clip(cfg).apply(row)
    assert row["error"] == "" and row["drop"] == ""
    out = tmp_path / "clip.mp4"
    out.write_bytes(row["mp4"])
    assert count_frames(str(out), 30) == (49, 720, 480)
    rate = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=r_frame_rate,pix_fmt,codec_name",
            "-of",
            "json",
            str(out),
        ],
        capture_output=True,
        check=True,
    ).stdout
    stream = json.loads(rate)["streams"][0]
    assert (stream["r_frame_rate"], stream["pix_fmt"], stream["codec_name"]) == ("8/1", "yuv420p", "h264")
    # A window past the end of the source cannot give 49 frames: dropped, never written.
    late = dict(row, start=5.0, end=5.0 + 49 / 8, mp4=b"", meta_json="{}")
    Clip(cfg).apply(late)
    assert late["drop"].startswith("clip: too few frames") and late["mp4"] == b""


# ---------------------------------------------------------------- command line


def test_cli_prints_the_effective_config_and_refuses_bad_usage_with_exit_2(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from ophora.cli import app

    run = CliRunner().invoke
    shown = run(app, ["curate", "--print-config", "--profile", "offline", "--set", "windows.fps=4"])
    assert shown.exit_code == 0
    assert yaml.safe_load(shown.stdout)["windows"]["fps"] == 4 and "offline" in shown.stdout
    assert run(app, ["curate", str(tmp_path)]).exit_code == 2  # no --out
    assert run(app, ["curate", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "nope"]).exit_code == 2
    assert run(app, ["curate", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]).exit_code == 2
    assert run(app, ["curate", "--print-config", "--profile", "huge"]).exit_code == 2
    assert "Exit codes" in run(app, ["curate", "--help"]).stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(app, ["curate", str(empty), "--out", str(tmp_path / "o")]).exit_code == 2

"""Bad inputs next to good ones in one run: every input ends in the ledger with a reason, and the run finishes."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from ophora.curation.config import CurateConfig
from ophora.curation.pipeline import run_curation
from ophora.dataset.ledger import read_ledger
from ophora.dataset.shards import iter_subset
from tests.fixtures import H264_FAST
from tests.fixtures.curate import BACKBONE, mp4_facts, offline_config

pytestmark = pytest.mark.slow  # one full run over 16 inputs (about a minute on 2 cores)

ROOT_READS_ANYTHING = hasattr(os, "geteuid") and os.geteuid() == 0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def pattern(path: Path, seconds: float, size: str = "320x240", rate: str = "30", extra: tuple = ()) -> Path:
    """A distinct test-pattern video (the duration makes its bytes unique)."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s={size}:r={rate}:d={seconds}",
        *extra,
        *H264_FAST,
        str(path),
    )
    return path


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory):
    """A static HTTP server on 127.0.0.1 serving a directory: (directory, base URL)."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def bad_and_good(tmp_path_factory, loopback_server):
    """A folder of good and bad inputs, plus the extra arguments (URLs, a repeat) the run is given."""
    d = tmp_path_factory.mktemp("inputs")
    www, base = loopback_server
    good = pattern(d / "good.mp4", 8.0)
    pattern(d / "-lead 'single' \"double\" ünïcödé spaced.mp4", 8.1)
    pattern(d / "silent.mp4", 8.2)  # no audio track: fine
    pattern(d / "vfr.mp4", 8.3, extra=("-vf", "select='not(eq(mod(n\\,3)\\,0))'", "-fps_mode", "vfr"))
    pattern(d / "phone.tmp.mp4", 8.4, size="320x180")
    ffmpeg("-i", str(d / "phone.tmp.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(d / "rotated.mp4"))
    (d / "phone.tmp.mp4").unlink()
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is a text file wearing an .mp4 name\n")
    ffmpeg("-f", "lavfi", "-i", "sine=d=8", str(d / "audio.mp4"))
    (d / "trunc-head.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov at the end: lost
    long_fast = pattern(d / "faststart.tmp.mp4", 16.0, extra=("-movflags", "+faststart"))
    (d / "trunc-tail.mp4").write_bytes(long_fast.read_bytes()[: int(long_fast.stat().st_size * 0.6)])
    long_fast.unlink()
    pattern(d / "8k.mp4", 0.1, size="7680x4320")
    os.symlink(d / "nowhere.mp4", d / "dangling.mp4")
    locked = pattern(d / "locked.mp4", 8.5)
    locked.chmod(0)
    shutil.copy(good, d / "good-copy.mp4")  # same content, other name
    pattern(www / "remote.mp4", 8.6)
    extra = [f"{base}/remote.mp4", f"{base}/missing.mp4", str(good)]  # good.mp4 is listed twice
    return d, extra


# The backbone's handling of bad files: test patterns carry no narration and no surgical field, so the content
# stages (which have their own bad-input tests below and in test_transcribe / test_refine) are left out here.
@pytest.fixture(scope="module")
def bad_run(ray_local, bad_and_good, tmp_path_factory):
    folder, extra = bad_and_good
    out = tmp_path_factory.mktemp("bad-out")
    summary = run_curation(offline_config(**BACKBONE), [str(folder), *extra], str(out), quiet=True)
    print(f"bad-input run: {summary['wall_seconds']:.1f} s for {summary['processed']} sources")
    ledger = read_ledger(str(out))
    return out, summary, {Path(r.source_uri).name: r for r in ledger.itertuples()}


def test_run_finishes_with_exit_code_0_and_every_input_in_the_ledger(bad_run, bad_and_good):
    out, summary, rows = bad_run
    assert summary["exit_code"] == 0 and summary["failed"] == 0
    assert len(summary["repeated_inputs"]) == 1 and summary["repeated_inputs"][0].endswith("good.mp4")
    names = {p.name for p in bad_and_good[0].iterdir()} | {"remote.mp4", "missing.mp4"}
    assert set(rows) == names
    assert summary["done"] + summary["rejected"] == len(names)


@pytest.mark.parametrize(
    "name, stage, words",
    [
        ("zero.mp4", "probe", "empty file"),
        ("text.mp4", "probe", "undecodable"),
        ("audio.mp4", "probe", "no video stream"),
        ("trunc-head.mp4", "probe", "undecodable"),
        ("8k.mp4", "probe", "too large"),
        ("dangling.mp4", "probe", "unreadable (not found"),
        ("missing.mp4", "probe", "unreadable (not found"),
    ],
)
def test_each_bad_input_is_rejected_with_its_reason(bad_run, name, stage, words):
    row = bad_run[2][name]
    assert (row.status, row.stage) == ("rejected", stage) and words in row.reason, row


@pytest.mark.parametrize(
    "name",
    [
        "-lead 'single' \"double\" ünïcödé spaced.mp4",
        "silent.mp4",
        "vfr.mp4",
        "rotated.mp4",
        "remote.mp4",
        "trunc-tail.mp4",
    ],
)
def test_awkward_but_usable_inputs_give_clips(bad_run, name):
    row = bad_run[2][name]
    assert row.status == "done" and row.clips_written >= 1, row


def test_same_content_under_two_names_is_written_once(bad_run):
    rows = bad_run[2]
    pair = sorted([rows["good.mp4"], rows["good-copy.mp4"]], key=lambda r: r.status)
    assert [r.status for r in pair] == ["done", "rejected"] and "duplicate content" in pair[1].reason
    keys = [s.key for s in iter_subset(str(bad_run[0]), "tpt", members=["json"])]
    assert len(keys) == len(set(keys))


def test_a_file_without_read_permission_is_handled_honestly(bad_run):
    row = bad_run[2]["locked.mp4"]
    if ROOT_READS_ANYTHING:  # root ignores mode bits: the file is read like any other
        assert row.status == "done"
    else:
        assert row.status == "rejected" and "permission denied" in row.reason


def test_rotated_and_vfr_clips_keep_the_promised_format(bad_run, tmp_path):
    for sample in iter_subset(str(bad_run[0]), "tpt"):
        if Path(sample.meta["source_uri"]).name in ("rotated.mp4", "vfr.mp4"):
            facts = mp4_facts(sample.mp4, tmp_path)
            assert (facts["frames"], facts["width"], facts["height"], facts["fps"]) == (49, 720, 480, 8.0)
    assert json.loads((bad_run[0] / "summary.json").read_text())["reasons"]


def test_a_remote_source_download_is_removed_once_settled(bad_run, bad_and_good):
    from ophora.curation.inputs import cache_path

    url = bad_and_good[1][0]
    assert bad_run[2]["remote.mp4"].status == "done"
    assert not os.path.exists(cache_path(url, CurateConfig.load("offline").input_cache_dir))


def test_sources_without_usable_narration_finish_with_their_windows_dropped_for_that_reason(ray_local, tmp_path):
    """Every stage runs: no audio track, noise only, and a malformed sidecar (ASR takes over) each end ``done``
    with every window dropped and the reason in the ledger, never an error."""
    d = tmp_path / "in"
    d.mkdir()
    pattern(d / "mute.mp4", 7.0)
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x240:r=30:d=7.1",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=d=7.1:a=0.3",
        *H264_FAST,
        "-shortest",
        str(d / "noise.mp4"),
    )
    ffmpeg("-i", str(d / "noise.mp4"), "-c", "copy", "-metadata", "title=other bytes", str(d / "subtitled.mp4"))
    (d / "subtitled.srt").write_bytes(b"1\n00:00:99,000 --> garbage\n\xff\xfe not a cue\n")
    summary = run_curation(offline_config(), [str(d)], str(tmp_path / "out"), quiet=True)
    rows = {Path(r.source_uri).name: r for r in read_ledger(str(tmp_path / "out")).itertuples()}
    assert summary["exit_code"] == 0 and summary["clips_written"] == 0
    assert {n: r.status for n, r in rows.items()} == {"mute.mp4": "done", "noise.mp4": "done", "subtitled.mp4": "done"}
    want = {
        "mute.mp4": "transcribe: no audio stream",
        "noise.mp4": "transcribe: no speech",
        "subtitled.mp4": "transcribe: no speech",
    }
    for name, reason in want.items():
        dropped = [d[3] for d in json.loads(rows[name].dropped_json) if not d[3].startswith("windows: ")]
        assert dropped and all(r.startswith(reason) for r in dropped), (name, dropped)

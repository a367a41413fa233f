"""Hostile videos, sidecars and manifests in ONE `ophora curate` run (the backbone stages; the content stages have
their own bad-input tests): each input ends in the ledger, the bad ones rejected with a reason that names the
problem, the good one gives clips, the run exits 0, nothing is written outside OUT, no connection is attempted
and no file an input names is opened (FIFO canaries). Plus the recursion-proof sidecar parsers called directly."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from ophora.curation.stages.transcribe.subtitles import SubtitleError
from ophora.curation.stages.transcribe.subtitles import load as load_subtitles
from tests.fixtures import H264_FAST
from tests.fixtures.hostile import Canary, Listener, Sandbox, check, run

BACKBONE = "skip=[transcribe,refine,dynamics,quality,privacy,dedup]"
RUN_SECONDS = 150.0  # the whole run: an embedded Ray's start-up and 16 sources on 2 shared cores
# The whole run's tree holds an embedded Ray (idle: ~530 MiB PSS; with the stage workers ~1.6 GiB measured), so
# its bound is 2 GiB; every other hostile case is one process under 1 GiB.
RUN_RSS = 2 << 30


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def video(path: Path, seconds: float, size: str = "320x240") -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s={size}:r=30:d={seconds}",
        *H264_FAST,
        str(path),
    )
    return path


def external_reference(mp4: bytes, target: str) -> bytes:
    """``mp4`` whose track data reference is a Mac alias to ``target`` (QuickTime's external data reference):
    libavformat's mov demuxer opens it when ``enable_drefs`` is on, relative to the file's own folder."""

    def alias() -> bytes:
        body = b"\0" * 10 + bytes([5]) + b"Macin".ljust(27, b"\0") + b"\0" * 12 + bytes([len(target)])
        body += target.encode().ljust(63, b"\0") + b"\0" * 16 + struct.pack(">hh", 1, 1) + b"\0" * 16
        path = b"/elsewhere/" + target.encode()
        body += struct.pack(">HH", 2, len(path)) + path.ljust(len(path) + (len(path) & 1), b"\0")
        body += struct.pack(">hH", -1, 0)
        return struct.pack(">I4sI", 12 + len(body), b"alis", 0) + body

    def rewrite(start: int, end: int) -> bytes:
        out, pos = b"", start
        while pos + 8 <= end:
            size, kind = struct.unpack(">I4s", mp4[pos : pos + 8])
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"dinf"):
                inner = rewrite(pos + 8, pos + size)
            elif kind == b"dref":
                inner = struct.pack(">II", 0, 1) + alias()
            else:
                inner = mp4[pos + 8 : pos + size]
            out += struct.pack(">I4s", 8 + len(inner), kind) + inner
            pos += size
        return out

    return rewrite(0, len(mp4))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The inputs (built in view), canaries and the listener, and the one curate run over them."""
    box = Sandbox(tmp_path_factory.mktemp("hostile-sources"), ignored=("home/.ray",))  # Ray's auth token
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's session logs: a short path (socket names)
    listener = Listener()
    d = box.inputs
    canaries = {name: Canary(d / name) for name in ("patient.ts", "linked.ts")}
    canaries.update({name: Canary(box.cwd / name) for name in ("a.mp4", "b.mp4")})
    video(d / "good.mp4", 8.0)
    (d / "hls.mp4").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\n"
        + str(d / "patient.ts")
        + f"\n#EXTINF:3.0,\n{listener.url}/x.ts\n#EXT-X-ENDLIST\n"
    )
    (d / "concat.mp4").write_text(f"ffconcat version 1.0\nfile '{d / 'patient.ts'}'\nfile '{listener.url}/x.ts'\n")
    (d / "sdp.mp4").write_text(
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=video {listener.port} RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    )
    (d / "dash.mp4").write_text(
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT3S"><Period><AdaptationSet><Representation id="1" '
        f'bandwidth="1"><BaseURL>{listener.url}/seg.mp4</BaseURL></Representation>'
        "</AdaptationSet></Period></MPD>\n"
    )
    (d / "dref.mov").write_bytes(external_reference(video(box.root / "base.mp4", 3.0).read_bytes(), "linked.ts"))
    (box.root / "base.mp4").unlink()
    video(d / "clip001.mp4", 8.5)  # what an image2 pattern would pick up instead of the file named
    (d / "clip%03d.mp4").write_text("not a video: only its name is a pattern\n")
    (d / "concat:a.mp4|b.mp4").write_text("not a video: only its name is a protocol\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:d=0.1", "-frames:v", "1", str(box.root / "still.jpg"))
    (d / "still.mp4").write_bytes((box.root / "still.jpg").read_bytes())
    (box.root / "still.jpg").unlink()
    video(d / "deepinfo.mp4", 8.1)
    (d / "deepinfo.info.json").write_text("[" * 50_000 + "]" * 50_000)
    video(d / "listinfo.mp4", 8.2)
    (d / "listinfo.info.json").write_text('["not", "an", "object"]')
    (d / "self.txt").write_text("good.mp4\nself.txt\n")
    (d / "a.txt").write_text("b.txt\n")
    (d / "b.txt").write_text("a.txt\n")
    os.mkfifo(d / "fifo.mp4")
    out = box.out / "curated"
    result = run(
        box,
        "curate",
        d,
        d / "self.txt",
        d / "a.txt",
        d / "fifo.mp4",
        "--out",
        out,
        "--profile",
        "offline",
        "--set",
        BACKBONE,
        "--set",
        "resources.clip.concurrency=1",
        "--quiet",
        env={"RAY_TMPDIR": ray_tmp},
        timeout=RUN_SECONDS * 2,
    )
    from ophora.dataset.ledger import read_ledger

    ledger = read_ledger(str(out)) if out.exists() else None
    rows = {Path(r.source_uri).name: r for r in ledger.itertuples()} if ledger is not None else {}
    yield box, listener, canaries, result, rows
    for c in canaries.values():
        c.close()
    listener.close()
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_the_run_exits_0_touches_nothing_else_and_connects_nowhere(sources):
    box, listener, canaries, result, rows = sources
    print(f"curate run: {result.seconds:.1f} s, peak RSS of the tree {result.peak_rss / 2**20:.0f} MiB")
    check(
        result,
        box,
        0,
        "sources processed",
        listener=listener,
        canaries=tuple(canaries.values()),
        max_seconds=RUN_SECONDS,
        max_rss=RUN_RSS,
    )
    assert rows["good.mp4"].status == "done" and rows["good.mp4"].clips_written >= 1
    assert rows["clip001.mp4"].status == "done"


@pytest.mark.parametrize(
    "name, words",
    [
        ("hls.mp4", "not a video container (hls"),
        ("concat.mp4", "not a video container (concat"),
        ("sdp.mp4", "not a video container (sdp"),
        ("dash.mp4", "probe: "),  # not a container ffmpeg admits: dash, or undecodable where dash is not built in
        ("still.mp4", "not a video container"),
        ("clip%03d.mp4", "probe: "),
        ("concat:a.mp4|b.mp4", "probe: "),
        ("deepinfo.mp4", "nested deeper than 64 levels"),
        ("listinfo.mp4", "not an object but list"),
        ("self.txt", "manifest lists itself (self.txt -> self.txt)"),
        ("a.txt", "manifest lists itself (a.txt -> b.txt -> a.txt)"),
        ("fifo.mp4", "not a regular file"),
    ],
)
def test_each_hostile_source_is_rejected_with_a_reason_naming_it(sources, name, words):
    row = sources[4][name]
    assert row.status == "rejected" and words in row.reason, (row.status, row.reason)


def test_an_external_data_reference_is_never_followed(sources):
    """The mov names linked.ts beside it; whatever probe makes of the track, that file is never opened."""
    box, _, canaries, _, rows = sources
    assert rows["dref.mov"].status in ("done", "rejected")
    assert canaries["linked.ts"].opened == 0


def test_the_reference_would_be_followed_without_the_policy(sources):
    """The crafted file is the real hazard: ffprobe with drefs enabled opens the canary (so the test above can
    fail)."""
    box, _, canaries, _, _ = sources
    before = canaries["linked.ts"].opened
    subprocess.run(["ffprobe", "-v", "quiet", "-enable_drefs", "1", str(box.inputs / "dref.mov")], timeout=20)
    assert canaries["linked.ts"].opened > before
    canaries["linked.ts"].opened = before


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".json3", "[" * 100_000 + "]" * 100_000),
        (".json3", '{"events": ' + "[" * 5000 + "]" * 5000 + "}"),
        (".json3", '{"events": [{"tStartMs": "x", "segs": [{"utf8": "hi"}]}]}'),
        (".srt", "1\n00:00:01,000 --> 00:00:00,500\nbackwards\n"),
        (".vtt", "WEBVTT\n\n00:01.000 --> garbage\nx\n"),
    ],
)
def test_a_hostile_subtitle_sidecar_is_a_subtitle_error(tmp_path, suffix, text):
    path = tmp_path / f"talk{suffix}"
    path.write_text(text)
    with pytest.raises(SubtitleError, match="talk"):
        load_subtitles(path)


def test_a_deep_info_json_is_refused_by_the_bounded_parser():
    from ophora.bounded_json import JSONRefused, loads

    with pytest.raises(JSONRefused, match="nested deeper"):
        loads("[" * 100_000 + "]" * 100_000, "x.info.json")
    with pytest.raises(JSONRefused, match="nested deeper"):
        loads(json.dumps({"a": [[[[[[[[[[1]]]]]]]]]]}), "x.info.json", max_depth=5)

"""A "video" that is a playlist or a concat list never makes a decoder read another file or open a URL.

Every case is built here from a real video the playlist points at, a loopback listener that counts accepted
connections, and the opener each job uses (probe, scenes, transcribe, clip, PyAV readers) — plus one curate run
with the playlist next to a good video."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ophora.video import UnsafeContainer, admitted, open_container
from tests.fixtures.hostile import Listener


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def _segment(path: Path, seconds: float = 3.0) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=s=320x240:r=30:d={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=d={seconds}",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


def _hls(path: Path, segment: Path, port: int) -> Path:
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:3.0,\n{segment}\n#EXTINF:3.0,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n"
    )
    return path


def _concat(path: Path, segment: Path) -> Path:
    path.write_text(f"ffconcat version 1.0\nfile '{segment}'\nfile '{segment}'\n")
    return path


@pytest.fixture
def playlists(tmp_path, listener):
    patient = _segment(tmp_path / "other-patient.ts")
    return {
        "hls": _hls(tmp_path / "case.mp4", patient, listener.port),
        "concat": _concat(tmp_path / "list.mp4", patient),
    }


def test_admitted_containers_are_real_containers_only():
    assert admitted("mov,mp4,m4a,3gp,3g2,mj2") and admitted("matroska,webm") and admitted("mpegts")
    for name in ("hls", "concat", "dash", "image2", "applehttp", "", "mov,hls"):
        assert not admitted(name), name


@pytest.mark.parametrize("kind", ["hls", "concat"])
def test_probe_rejects_a_playlist_and_names_its_format(playlists, listener, kind, tmp_path):
    from ophora.curation.config import CurateConfig
    from ophora.curation.stages.common import Reject
    from ophora.curation.stages.probe import Probe

    row = {"source_uri": str(playlists[kind]), "sidecars_json": "{}"}
    with pytest.raises(Reject, match=rf"not a video container \({kind}"):
        Probe(CurateConfig.load("offline")).process(row)
    assert listener.accepts == 0


@pytest.mark.parametrize("kind", ["hls", "concat"])
def test_every_decoder_refuses_a_playlist(playlists, listener, kind):
    """The openers stages use after probe hold the same policy on their own (defence in depth)."""
    import av

    from ophora.curation.frames import window_frames
    from ophora.curation.stages.transcribe.audio import stream_pcm
    from ophora.video import VideoError, decode_frames, decoded_facts

    path = playlists[kind]
    with pytest.raises(av.FFmpegError):
        open_container(path)
    with pytest.raises(av.FFmpegError):
        open_container(path.read_bytes())  # a shard member holding a playlist
    with pytest.raises(RuntimeError, match="could not decode"):
        list(stream_pcm(str(path), chunk_s=30.0))
    with pytest.raises(VideoError):
        decode_frames(path)
    with pytest.raises((av.FFmpegError, ValueError)):
        decoded_facts(path.read_bytes())
    with pytest.raises(Exception):  # noqa: B017 - any refusal; what matters is that nothing was read
        window_frames(str(path), 0.0, 2.0)
    assert listener.accepts == 0


def test_a_decoder_is_never_handed_a_url(listener):
    with pytest.raises(UnsafeContainer):
        open_container(f"http://127.0.0.1:{listener.port}/x.mp4")
    assert listener.accepts == 0


def test_curate_rejects_the_playlist_and_keeps_the_good_video(ray_local, playlists, listener, tmp_path):
    from ophora.curation.pipeline import run_curation
    from ophora.dataset.ledger import read_ledger
    from ophora.dataset.shards import iter_subset
    from tests.fixtures.curate import BACKBONE, offline_config

    good = _segment(tmp_path / "good.mp4", 8.0)
    out = tmp_path / "out"
    summary = run_curation(offline_config(**BACKBONE), [str(playlists["hls"]), str(good)], str(out), quiet=True)
    rows = {Path(r.source_uri).name: r for r in read_ledger(str(out)).itertuples()}
    assert summary["exit_code"] == 0
    assert rows["case.mp4"].status == "rejected" and "not a video container (hls" in rows["case.mp4"].reason
    assert rows["good.mp4"].status == "done" and rows["good.mp4"].clips_written >= 1
    sources = {Path(s.meta["source_uri"]).name for s in iter_subset(str(out), "tpt", members=["json"])}
    assert sources == {"good.mp4"}
    assert listener.accepts == 0

"""The kinds a fuzzer finds: hypothesis mutates tar headers, JSON metadata and subtitle files, and the readers
must answer each with their documented error (ShardError, SubtitleError) or a result — never another exception,
a hang or a balloon. Examples are derandomized (the same every run) and nothing is stored between runs."""

from __future__ import annotations

import io
import json
import math
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from ophora.curation.stages.transcribe.subtitles import SubtitleError
from ophora.curation.stages.transcribe.subtitles import load as load_subtitles
from ophora.dataset.shards import Sample, ShardError, iter_samples
from ophora.inspection.catalog import clip_facts
from ophora.inspection.validate import check_sample

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="ophora-hypothesis-"))  # its caches, never in the work tree
FUZZ = settings(
    max_examples=80, deadline=2000, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
KEY = "abcd0123abcd0123_000000"
META = {
    "key": KEY,
    "source_id": "abcd0123abcd0123",
    "source_uri": "file:///v.mp4",
    "clip_index": 0,
    "scene_index": 0,
    "start": 1.0,
    "end": 7.125,
    "fps": 8.0,
    "num_frames": 49,
    "width": 720,
    "height": 480,
    "instruction": "Tear the capsule.",
    "phase": "capsulorhexis",
    "scores": {"motion": 0.5},
}


def _shard(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PRISTINE = _shard(
    [
        (f"{KEY}.json", json.dumps(META).encode()),
        (f"{KEY}.mp4", b"\0" * 3000),
        (f"{KEY}.txt", b"Tear the capsule."),
        ("abcd0123abcd0123_000001.txt", b"x"),
    ]
)
HEADERS = [at for at in range(0, len(PRISTINE), 512) if PRISTINE[at : at + 4] in (b"abcd",)]


def _bounded(fn):
    """Run ``fn`` and assert it stayed inside 2 s and 256 MiB of Python allocations."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        return fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.monotonic() - start < 2.0 and peak < 256 << 20, (time.monotonic() - start, peak)


@FUZZ
@given(
    edits=st.lists(st.tuples(st.sampled_from(HEADERS), st.integers(0, 511), st.integers(0, 255)), max_size=12),
    claim=st.one_of(st.none(), st.tuples(st.sampled_from(HEADERS), st.integers(0, 2**80))),
    cut=st.one_of(st.none(), st.integers(0, len(PRISTINE))),
)
def test_a_mutated_tar_header_is_read_or_refused_with_a_shard_error(edits, claim, cut):
    data = bytearray(PRISTINE)
    for at, offset, value in edits:
        data[at + offset] = value
    if claim is not None:  # a size field claiming anything, checksum redone so the header is believed
        at, size = claim
        data[at + 124 : at + 136] = b"\x80" + size.to_bytes(11, "big")
        data[at + 148 : at + 156] = b" " * 8
        data[at + 148 : at + 156] = b"%06o\0 " % sum(data[at : at + 512])
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "fuzz.tar"
        shard.write_bytes(bytes(data[:cut]))

        def read():
            try:
                for sample in iter_samples(str(shard), on_refused=lambda message: None):
                    check_sample(sample, "tpt")
            except ShardError:
                pass

        _bounded(read)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(sorted(META) + ["words", "flags", "subsets", "x"]), JSON_VALUES, max_size=4)
)
def test_mistyped_metadata_is_one_shard_error_or_facts(changes):
    sample = Sample(KEY, "fuzz.tar", {"json": json.dumps({**META, **changes}).encode(), "txt": b"Tear it."})
    try:
        facts = clip_facts(sample)
    except ShardError as e:
        assert "fuzz.tar" in str(e)
    else:
        assert all(math.isfinite(v) for v in facts.scores.values())
        assert isinstance(facts.narration, str) and (facts.phase is None or isinstance(facts.phase, str))
    findings, _ = check_sample(sample, "tpt")
    assert all(f.key == KEY for f in findings)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_as_metadata_are_one_shard_error(raw):
    sample = Sample(KEY, "fuzz.tar", {"json": raw})
    try:
        assert isinstance(sample.meta, dict)
    except ShardError as e:
        assert f"{KEY}.json" in str(e)


SUBTITLES = {
    ".srt": "1\n00:00:01,000 --> 00:00:03,500\nNow we tear the capsule.\n\n2\n00:00:04,000 --> 00:00:06,000\nGood.\n",
    ".vtt": "WEBVTT\n\n00:01.000 --> 00:03.500\n<i>Now</i> we tear the capsule.\n",
    ".json3": json.dumps({"events": [{"tStartMs": 1000, "dDurationMs": 2500, "segs": [{"utf8": "Now we tear"}]}]}),
}


@FUZZ
@given(
    suffix=st.sampled_from(sorted(SUBTITLES)),
    edits=st.lists(st.tuples(st.integers(0, 120), st.text(max_size=6)), max_size=8),
    wrap=st.integers(0, 3000),
)
def test_a_mutated_subtitle_file_gives_cues_or_a_subtitle_error(suffix, edits, wrap):
    text = SUBTITLES[suffix]
    for at, insert in edits:
        text = text[:at] + insert + text[at + len(insert) :]
    if suffix == ".json3" and wrap:
        text = "[" * wrap + text + "]" * wrap
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"talk{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cues = _bounded(lambda: load_subtitles(path, duration=30.0))
        except SubtitleError as e:
            assert "talk" in str(e)
            return
    assert all(0 <= c["start"] <= c["end"] <= 30.0 and isinstance(c["text"], str) for c in cues), cues


@pytest.mark.parametrize("blob", [b"", b"\0" * 1024, b"\xff" * 512, PRISTINE[:700]])
def test_degenerate_shards(tmp_path, blob):
    shard = tmp_path / "x.tar"
    shard.write_bytes(blob)
    try:
        list(iter_samples(str(shard)))
    except ShardError:
        pass

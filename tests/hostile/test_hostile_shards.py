"""Hostile shards against every `ophora shards` command and the trainer's reader: each case is a curation output
someone else made, built here in view (nothing binary is checked in), and the command a person would run on it.

Documented exit codes: ls, stats, grep (a match found), show (the clip is readable), gallery and export go on past
what they cannot read, warn about it by name and exit 0; grep exits 1 when nothing matches; show exits 1 when the
clip asked for is unreadable; export stops with 1 at a member it refuses; ls --count exits 1 on a broken shard;
validate exits 1 when it finds any error."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from ophora.dataset.shards import encode_sample
from tests.fixtures import H264_FAST
from tests.fixtures.hostile import Listener, Sandbox, check, run
from tests.fixtures.shards import clip_meta, make_clip, sample_members, write_raw_tar

GOOD_WORD = "corneal"  # in the instruction of the good sample every root starts with (sample 0, 0)


def _tar_bytes(members: list[tuple[str, bytes]], fmt=tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def claim_size(tar: bytes, name: str, size: int) -> bytes:
    """The tar with ``name``'s header claiming ``size`` bytes (GNU base-256 size field, checksum redone)."""
    data = bytearray(tar)
    for at in range(0, len(data), 512):
        if data[at : at + len(name)] == name.encode() and data[at + len(name)] == 0:
            block = data[at : at + 512]
            block[124:136] = b"\x80" + size.to_bytes(11, "big")
            block[148:156] = b" " * 8
            block[148:156] = b"%06o\0 " % sum(block)
            data[at : at + 512] = block
            return bytes(data)
    raise ValueError(f"no header for {name}")


def _sample(source: int, clip: int, mp4: bytes | None = None, **meta) -> list[tuple[str, bytes]]:
    if mp4 is None:
        return sample_members(source, clip, **meta)
    m = clip_meta(source, clip).model_copy(update=meta)
    encoded = encode_sample(m, mp4)
    return [(f"{m.key}.{ext}", encoded[ext]) for ext in ("json", "mp4", "txt")]


def _replace(members: list[tuple[str, bytes]], ext: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(n, data if n.endswith("." + ext) else d) for n, d in members]


def _root(base: Path, name: str, shards: dict[str, bytes]) -> Path:
    root = base / name
    (root / "tpt").mkdir(parents=True)
    for shard, data in shards.items():
        (root / "tpt" / shard).write_bytes(data)
    return root


def _encode(name: str, *args: str) -> bytes:
    """A video ffmpeg makes from ``args`` (lavfi input and options), written as ``name`` (its container)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                *args,
                *H264_FAST,
                str(out),
            ],
            check=True,
        )
        return out.read_bytes()


def _mkv_without_frame_count() -> bytes:
    """A 20-second 1280x720 Matroska (600 frames, no frame count in the stream), a few dozen KB."""
    return _encode("long.mkv", "color=c=gray:s=1280x720:r=30:d=20")


def _huge_frames() -> bytes:
    """One 4096x4096 frame in an mp4 (over the default max_pixels of 3840x2160)."""
    return _encode("big.mp4", "color=c=red:s=4096x4096:d=0.1", "-frames:v", "1")


def _many_members(count: int) -> bytes:
    """``count`` one-byte members, each its own sample lacking json and mp4 (~1 KiB of tar each)."""
    buf = io.BytesIO()
    for i in range(count):
        info = tarfile.TarInfo(f"aaaa0000aaaa0000_{i:06d}.txt")
        info.size = 1
        buf.write(info.tobuf(tarfile.GNU_FORMAT) + b"x" + b"\0" * 511)
    buf.write(b"\0" * 1024)
    return buf.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One sandbox holding every hostile curation output (read-only), a loopback listener, and the keys."""
    box = Sandbox(tmp_path_factory.mktemp("hostile-shards"))
    listener = Listener()
    base = box.inputs
    good = sample_members(0, 0)
    bad_key = clip_meta(0, 1).key
    second = sample_members(0, 1)
    roots = {}
    roots["huge-member"] = _root(
        base, "huge-member", {"shard-000000.tar": claim_size(_tar_bytes(good + second), f"{bad_key}.mp4", 2**60)}
    )
    roots["no-frame-count"] = _root(
        base, "no-frame-count", {"shard-000000.tar": _tar_bytes(_sample(0, 1, _mkv_without_frame_count()))}
    )
    roots["huge-frames"] = _root(base, "huge-frames", {"shard-000000.tar": _tar_bytes(_sample(0, 1, _huge_frames()))})
    roots["many-members"] = _root(base, "many-members", {"shard-000000.tar": _many_members(100_000)})
    roots["fifo-shard"] = _root(base, "fifo-shard", {"shard-000000.tar": _tar_bytes(good)})
    os.mkfifo(roots["fifo-shard"] / "tpt" / "shard-000001.tar")
    roots["symlinked-shard"] = _root(base, "symlinked-shard", {"shard-000000.tar": _tar_bytes(good)})
    (base / "elsewhere.tar").write_bytes(_tar_bytes(second))
    os.symlink(base / "elsewhere.tar", roots["symlinked-shard"] / "tpt" / "shard-000001.tar")
    bad_json = {
        "json-list": json.dumps([1, 2, 3]).encode(),
        "json-deep": b"[" * 100_000 + b"]" * 100_000,
        "json-types": json.dumps({"key": bad_key, "scores": "high", "end": [1], "phase": ["x"]}).encode(),
        "json-nan-score": json.dumps(
            {"key": bad_key, "scores": {"motion": float("nan")}, "start": 0, "end": 6}
        ).encode(),
        "json-not-utf8": b'{"key": "\xff\xfe"}',
    }
    for kind, data in bad_json.items():
        roots[kind] = _root(base, kind, {"shard-000000.tar": _tar_bytes(good + _replace(second, "json", data))})
    roots["txt-not-utf8"] = _root(
        base, "txt-not-utf8", {"shard-000000.tar": _tar_bytes(good + _replace(second, "txt", b"Tear the \xff capsule"))}
    )
    roots["name-not-utf8"] = _root(
        base, "name-not-utf8", {"shard-000000.tar": _tar_bytes(good + [("bad\udcff_000001.txt", b"x")])}
    )
    escape = "\x1b]0;pwned\x07\x1b[2J\x1b[31mRED\x1b[0m \x1b]8;;http://127.0.0.1/\x07link\x1b]8;;\x07 \u202eexif"
    roots["terminal-escapes"] = _root(
        base,
        "terminal-escapes",
        {
            "shard-000000.tar": _tar_bytes(
                good + _sample(0, 1, make_clip("testsrc2", 0), instruction=escape, narration=escape)
            )
        },
    )
    formula = f'=HYPERLINK("{listener.url}/x","click")'
    roots["csv-formula"] = _root(
        base,
        "csv-formula",
        {
            "shard-000000.tar": _tar_bytes(
                _sample(0, 1, make_clip("testsrc2", 0), instruction=formula)
                + _sample(0, 2, make_clip("testsrc2", 0), instruction="+cmd|' /C calc'!A0")
            )
        },
    )
    raw = _tar_bytes(good + second)
    roots["truncated"] = _root(base, "truncated", {"shard-000000.tar": raw[: len(raw) * 2 // 3]})
    roots["pickle-member"] = _root(
        base,
        "pickle-member",
        {"shard-000000.tar": _tar_bytes(good + [(f"{bad_key}.pyd", b"cos\nsystem\n(S'echo owned'\ntR.")])},
    )
    write_raw_tar(base / "traversal.tar", good + [("../../evil.txt", b"owned")])
    roots["path-traversal"] = _root(base, "path-traversal", {"shard-000000.tar": (base / "traversal.tar").read_bytes()})
    yield box, listener, roots, bad_key
    listener.close()


# (case, root, args after the root ({out} = this case's output folder), exit code, words the output must hold)
CASES = [
    ("huge-member ls --count", "huge-member", ["ls", "{root}", "--count"], 1, ["declares 1152921504606846976"]),
    ("huge-member grep", "huge-member", ["grep", "{root}", GOOD_WORD], 0, ["declares"]),
    ("huge-member stats", "huge-member", ["stats", "{root}", "--source", "shards"], 0, ["declares"]),
    ("huge-member export csv", "huge-member", ["export", "{root}", "--to", "{out}/x.csv"], 1, ["declares"]),
    ("huge-member validate", "huge-member", ["validate", "{root}"], 1, ["broken-tar", "declares"]),
    (
        "huge-member gallery",
        "huge-member",
        ["gallery", "{root}", "--out", "{out}/site", "--no-preview"],
        0,
        ["declares"],
    ),
    (
        "no-frame-count show --frames 4",
        "no-frame-count",
        ["show", "{root}", "{bad}", "--frames", "4", "--out", "{out}"],
        0,
        ["wrote"],
    ),
    ("no-frame-count gallery", "no-frame-count", ["gallery", "{root}", "--out", "{out}/site"], 0, ["1 cards"]),
    (
        "huge-frames show --frames 2",
        "huge-frames",
        ["show", "{root}", "{bad}", "--frames", "2", "--out", "{out}"],
        1,
        ["max_pixels"],
    ),
    ("huge-frames validate", "huge-frames", ["validate", "{root}"], 1, ["bad-video", "max_pixels"]),
    (
        "100k one-byte members validate",
        "many-members",
        ["validate", "{root}", "--quick"],
        1,
        ["missing-member", "not listed"],
    ),
    ("fifo shard ls", "fifo-shard", ["ls", "{root}", "--count"], 0, ["FIFO"]),
    ("fifo shard validate", "fifo-shard", ["validate", "{root}"], 1, ["not-a-shard", "FIFO"]),
    ("symlinked shard ls", "symlinked-shard", ["ls", "{root}"], 0, ["symbolic link"]),
    ("symlinked shard validate", "symlinked-shard", ["validate", "{root}", "--quick"], 1, ["not-a-shard"]),
    ("symlinked shard show", "symlinked-shard", ["show", "{root}", "{bad}"], 1, ["no clip"]),
    ("truncated shard validate", "truncated", ["validate", "{root}", "--quick"], 1, ["broken tar"]),
    ("pickled member validate", "pickle-member", ["validate", "{root}", "--quick"], 1, ["unsafe-member", ".pyd"]),
    ("path traversal member validate", "path-traversal", ["validate", "{root}", "--quick"], 1, ["unsafe member"]),
    ("non-UTF-8 member name grep", "name-not-utf8", ["grep", "{root}", GOOD_WORD], 0, ["not UTF-8"]),
    (
        "non-UTF-8 member name gallery",
        "name-not-utf8",
        ["gallery", "{root}", "--out", "{out}/s", "--no-preview"],
        0,
        ["not UTF-8"],
    ),
    ("non-UTF-8 txt grep", "txt-not-utf8", ["grep", "{root}", GOOD_WORD], 0, ["txt is not UTF-8"]),
    ("non-UTF-8 txt show", "txt-not-utf8", ["show", "{root}", "{bad}"], 1, ["txt is not UTF-8"]),
]
# A bad json member: `show` of that clip says why (exit 1); grep, stats and gallery (one each, in turn) go on.
GOES_ON = {
    "grep": ["grep", "{root}", GOOD_WORD],
    "stats": ["stats", "{root}", "--source", "shards"],
    "gallery": ["gallery", "{root}", "--out", "{out}/site", "--no-preview"],
}
JSON_CASES = [
    ("json-list", "not an object but list", "grep"),
    ("json-deep", "nested deeper than 64", "stats"),
    ("json-types", "should be dict, not str", "gallery"),
    ("json-nan-score", "not a finite number", "stats"),
    ("json-not-utf8", "not UTF-8", "grep"),
]
for kind, words, other in JSON_CASES:
    CASES += [
        (f"{kind} show", kind, ["show", "{root}", "{bad}"], 1, [words]),
        (f"{kind} {other}", kind, GOES_ON[other], 0, [words]),
    ]


@pytest.mark.parametrize("case, root, args, code, words", CASES, ids=[c[0] for c in CASES])
def test_hostile_shard(world, case, root, args, code, words):
    box, listener, roots, bad_key = world
    out = box.out / case.replace(" ", "_")
    out.mkdir(parents=True)
    argv = ["shards", *(a.format(root=roots[root], out=out, bad=bad_key) for a in args)]
    result = run(box, *argv)
    check(result, box, code, *words, listener=listener)


def test_terminal_escapes_in_shard_text_never_reach_the_terminal(world):
    box, listener, roots, bad_key = world
    for argv in (["show", roots["terminal-escapes"], bad_key], ["grep", roots["terminal-escapes"], "RED"]):
        result = run(box, "shards", *argv)
        check(result, box, 0, "RED", "link", listener=listener)
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
        assert "pwned" not in result.stdout  # the window-title sequence went whole, not just its ESC


def test_export_csv_neutralises_formulas(world):
    import csv

    box, listener, roots, _ = world
    target = box.out / "formula.csv"
    check(
        run(box, "shards", "export", roots["csv-formula"], "--to", target),
        box,
        0,
        "exported 2 clips",
        listener=listener,
    )
    cells = [row[1] for row in csv.reader(target.open(encoding="utf-8"))][1:]
    assert all(c.startswith("'") for c in cells), cells
    assert {c[1:] for c in cells} == {f'=HYPERLINK("{listener.url}/x","click")', "+cmd|' /C calc'!A0"}


def test_the_trainer_reader_reads_past_a_huge_member_claim(world):
    box, listener, roots, _ = world
    script = (
        "from ophora.training.config import DataConfig\n"
        "from ophora.training.data import BadCounts, ClipStream, detect_kind, find_shards\n"
        f"shards = find_shards({str(roots['huge-member'])!r}, 'tpt')\n"
        "from ophora.training.data_geometry import geometry_of_configs, shard_geometry\n"
        # the trainer runs at the shards' clip geometry (a clip of another one is skipped, not cropped)
        "geo, _ = shard_geometry(shards, 'raw', geometry_of_configs({}, {}))\n"
        "cfg = DataConfig(num_frames=geo.num_frames, height=geo.height, width=geo.width, fps=geo.fps)\n"
        "stream = ClipStream(shards, cfg, 1, 0, 0, 1, detect_kind(shards))\n"
        "counts = BadCounts()\n"
        "print('samples', len(list(stream._raw(0, 0, 1, counts))), 'broken shards', counts.bad_shards)\n"
        "batch = next(iter(stream))\n"
        "print('batch', tuple(batch['pixels'].shape) == (1, 3, geo.num_frames, geo.height, geo.width))\n"
    )
    result = run(box, python=script)
    check(result, box, 0, "samples 1 broken shards 1", "batch True", listener=listener)

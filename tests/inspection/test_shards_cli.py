"""`ophora shards` ls / stats / show / grep / export / validate, run as a person would, on a real fixture output."""

from __future__ import annotations

import csv
import json
import os

import pytest
from typer.testing import CliRunner

from ophora.cli.shards import app
from ophora.dataset.shards import iter_subset
from tests.fixtures.shards import copy_of, sample_members, write_raw_tar

runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (
        f"ophora shards {' '.join(map(str, args))}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    )
    return result


def test_ls_counts_samples_per_subset_from_index_and_from_tars(shard_root):
    for extra in ((), ("--count",)):
        out = run("ls", shard_root, *extra).output
        rows = {
            line.split("│")[1].strip(): line.split("│")[3].strip() for line in out.splitlines() if line.startswith("│")
        }
        assert rows == {"tpt": "12", "p2ft": "7"}


def test_stats_json_and_plots(shard_root, tmp_path):
    data = json.loads(run("stats", shard_root, "--json", "--plots", tmp_path / "plots").stdout)
    assert {s: v["clips"] for s, v in data["subsets"].items()} == {"tpt": 12, "p2ft": 7}
    assert data["clips"] == 12 and data["duration_s"]["median"] == pytest.approx(49 / 8)
    hist = data["duration_s"]["histogram"]  # every clip is 49 frames: one bar, inside a narrow window
    assert sum(hist["counts"]) == 12 and hist["edges"][0] < 49 / 8 < hist["edges"][-1] < 49 / 8 + 1
    assert set(data["scores"]) == {"surgical_field", "motion", "sharpness"}
    assert data["ledger"]["status"] == {"done": 3, "rejected": 1}
    assert data["ledger"]["drops_by_stage"]["refine"] == {"not a surgical action": 9}
    assert data["ledger"]["source_rejections"] == {"probe: no video stream": 1}
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["drops.png", "durations.png", "instruction_words.png", "scores.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_stats_from_shards_agree_with_index(shard_root):
    from ophora.inspection.stats import collect_stats

    by_index, by_shards = collect_stats(str(shard_root), "index"), collect_stats(str(shard_root), "shards")
    for key in ("clips", "duration_s", "instruction_words", "scores", "phases"):
        assert by_index[key] == by_shards[key], key


def test_show_prints_metadata_and_writes_contact_sheet_and_mp4(shard_root, tmp_path):
    from PIL import Image

    sample = next(iter_subset(str(shard_root), "p2ft"))
    out = run("show", shard_root, sample.key, "--frames", 6, "--extract", "--out", tmp_path).stdout
    assert sample.instruction.split()[0] in out and "[NAME]" in out  # narration shown, brackets not eaten
    assert (tmp_path / f"{sample.key}.mp4").read_bytes() == sample.mp4
    sheet = Image.open(tmp_path / f"{sample.key}.png")
    assert sheet.height > 240 and sheet.width > 3 * 240 * 160 // 96  # 4 columns x 2 rows of 240 px frames


def test_show_unknown_key_says_so(shard_root):
    assert "no clip" in run("show", shard_root, "0000aaaa_000001", code=1).output


def test_grep_searches_instruction_and_narration(shard_root):
    hits = json.loads(run("grep", shard_root, "capsule", "--json").stdout)
    assert len(hits) == 2 and all(h["field"] == "instruction" and "[capsule]" in h["snippet"] for h in hits)
    assert sorted(hits[0]["subsets"]) == ["p2ft", "tpt"]
    narration = json.loads(run("grep", shard_root, "watch the wound", "--json").stdout)
    assert len(narration) == 12 and {h["field"] for h in narration} == {"narration"}
    run("grep", shard_root, "watch the wound", "--field", "instruction", code=1)
    assert len(json.loads(run("grep", shard_root, r"phaco\s+tip", "--regex", "--json").stdout)) == 2
    only_p2ft = json.loads(run("grep", shard_root, "watch the wound", "--subset", "p2ft", "--json").stdout)
    assert len(only_p2ft) == 7 and all(h["subsets"] == ["p2ft"] for h in only_p2ft)


def test_export_csv_lists_every_clip_once(shard_root, tmp_path):
    run("export", shard_root, "--to", tmp_path / "clips.csv", "--subset", "tpt", "--subset", "p2ft")
    with open(tmp_path / "clips.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["clip id", "instruction"]
    expected = {s.key: s.instruction for s in iter_subset(str(shard_root), "tpt")}
    assert dict(rows[1:]) == expected


def test_export_folder_writes_mp4_txt_pairs(shard_root, tmp_path):
    run("export", shard_root, "--to", tmp_path / "pairs", "--subset", "p2ft")
    for sample in iter_subset(str(shard_root), "p2ft"):
        assert (tmp_path / "pairs" / f"{sample.key}.mp4").read_bytes() == sample.mp4
        assert (tmp_path / "pairs" / f"{sample.key}.txt").read_text(encoding="utf-8") == sample.instruction
    assert len(list((tmp_path / "pairs").iterdir())) == 14


def test_export_never_writes_outside_the_target(shard_root, tmp_path):
    root = copy_of(shard_root, tmp_path / "out")
    target, outside = tmp_path / "export", tmp_path / "outside.mp4"
    target.mkdir()
    outside.write_bytes(b"keep me")
    planted = sample_members(0, 0)
    key = planted[0][0].split(".")[0]
    os.symlink(outside, target / f"{key}.mp4")  # a link planted where the export will write
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", planted + [("notakey.mp4", b"x"), ("notakey.txt", b"y")])
    out = run("export", root, "--to", target, "--subset", "tpt").output
    assert outside.read_bytes() == b"keep me"
    assert "skipped: " + key in out and "not a clip key: 'notakey'" in out
    write_raw_tar(root / "tpt" / "shard-w0-000000.tar", sample_members(0, 1) + [("../evil.txt", b"owned")])
    assert "unsafe member" in run("export", root, "--to", target, code=1).output
    assert not (tmp_path / "evil.txt").exists()


def test_validate_exit_code_and_json_findings(shard_root, tmp_path):
    assert "OK" in run("validate", shard_root, "--quick").output
    root = copy_of(shard_root, tmp_path / "out")
    write_raw_tar(root / "tpt" / "shard-w9-000000.tar", sample_members(0, 1))
    report = json.loads(run("validate", root, "--json", code=1).stdout)
    assert report["ok"] is False and report["errors"] >= 1
    assert any(f["code"] == "duplicate-key" and f["key"] for f in report["findings"])


def test_shards_alone_without_index_or_ledger(shard_root, tmp_path):
    """Plain shards (e.g. copied without index/ and ledger/) still list, show, summarise and validate."""
    import shutil

    root = copy_of(shard_root, tmp_path / "out")
    shutil.rmtree(root / "index")
    shutil.rmtree(root / "ledger")
    assert "samples from the tars" in run("ls", root).output
    sample = next(iter_subset(str(root), "tpt"))
    assert sample.key in run("show", root, sample.key).stdout
    data = json.loads(run("stats", root, "--json").stdout)
    assert data["source"] == "shards" and data["subsets"]["p2ft"]["clips"] == 7 and data["ledger"]["sources"] == 0
    report = json.loads(run("validate", root, "--quick", "--json").stdout)
    assert report["ok"] and {f["code"] for f in report["findings"]} == {"no-index", "no-ledger"}


def test_gallery_command_from_shards_and_from_a_folder(shard_root, tmp_path):
    out = run("gallery", shard_root, "--out", tmp_path / "site", "--page-size", 5, "--no-preview").output
    assert "12 cards on 3 pages" in out and not list((tmp_path / "site" / "previews").iterdir())
    run("export", shard_root, "--to", tmp_path / "pairs", "--subset", "p2ft", "--limit", 3)
    assert "3 cards on 1 page:" in run("gallery", tmp_path / "pairs", "--out", tmp_path / "site2").output

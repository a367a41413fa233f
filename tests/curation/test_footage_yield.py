"""Footage yield: windows use a scene to its end (evenly spread, a bounded overlap), and every source second is
accounted for — in clips, or lost to cut margins, short leftovers or a named filter — in the ledger, summary.json,
the printed table and `ophora shards stats`."""

from __future__ import annotations

import json

import pytest

from ophora.curation.config import CurateConfig
from ophora.curation.pipeline import footage_summary
from ophora.curation.stages.common import new_row
from ophora.curation.stages.windows import Windows
from ophora.dataset.ledger import MARGINS, append_rows, footage_yield, ledger_row, read_ledger

SPAN = 49 / 8


def plan(scenes, **overrides):
    cfg = CurateConfig.load("offline", overrides={"skip": ["transcribe"], **overrides})
    return Windows(cfg).plan(scenes), cfg


def test_a_12_second_shot_gives_two_clips_that_reach_its_ends_instead_of_one_and_a_leftover():
    windows, cfg = plan([(0.0, 12.125)])
    clips = [(a, b) for _, a, b, why in windows if not why]
    margin = cfg.windows.cut_margin
    assert len(clips) == 2 and not [w for w in windows if w[3]]
    assert clips[0][0] == pytest.approx(margin) and clips[-1][1] == pytest.approx(12.125 - margin)
    assert all(b - a == pytest.approx(SPAN) for a, b in clips)
    assert clips[0][1] - clips[1][0] <= cfg.windows.overlap * SPAN  # the documented bound on shared frames
    old, _ = plan([(0.0, 12.125)], **{"windows.overlap": 0})  # no shared frames: one centred clip, 5.5 s lost
    lost = [b - a for _, a, b, why in old if why.startswith("windows: short leftover")]
    assert len([w for w in old if not w[3]]) == 1 and sum(lost) == pytest.approx(12.125 - 2 * margin - SPAN)


def test_a_rest_under_half_a_window_is_spread_between_windows_not_forced_into_another_overlap():
    windows, cfg = plan([(0.0, 14.0)])
    clips = [(a, b) for _, a, b, why in windows if not why]
    gaps = [(a, b) for _, a, b, why in windows if why]
    assert len(clips) == 2 and len(gaps) == 1  # 13.5 s usable: 1.25 s rest, sits between the two windows
    assert clips[0][1] == pytest.approx(gaps[0][0]) and gaps[0][1] == pytest.approx(clips[1][0])


def test_the_same_config_places_the_same_windows():
    scenes = [(0.0, 9.3), (9.8, 31.7), (32.2, 47.0)]
    src = new_row(source_uri="/x.mp4", source_id="abcd1234abcd1234", duration=47.0, scenes_json=json.dumps(scenes))
    cfg = CurateConfig.load("offline", overrides={"skip": ["transcribe"]})
    first, again = Windows(cfg)(src), Windows(cfg)(dict(src))
    assert [(r["window_index"], r["start"], r["end"], r["drop"]) for r in first] == [
        (r["window_index"], r["start"], r["end"], r["drop"]) for r in again
    ]
    assert [r["start"] for r in first] == sorted(r["start"] for r in first)


def test_every_second_of_a_source_is_in_a_clip_or_lost_for_a_named_reason():
    clips = [(0.25, 6.375), (5.9, 12.025)]
    dropped = [
        (12.5, 14.0, "windows: short leftover (1.50 s < 6.125 s window)"),
        (14.5, 20.625, "privacy: face in frame (score 0.93)"),
        (14.5, 20.625, "dynamics: frozen (a still)"),
    ]
    y = footage_yield(30.0, clips, dropped)
    assert y["clip_s"] == pytest.approx(11.775) and y["share"] == pytest.approx(11.775 / 30, abs=1e-4)
    assert y["lost_s"]["windows: short leftover"] == pytest.approx(1.5)
    assert y["lost_s"]["privacy: face in frame"] == pytest.approx(6.125)
    assert "dynamics: frozen" not in y["lost_s"]  # a second is lost once, to the first reason listed
    assert y["clip_s"] + sum(y["lost_s"].values()) == pytest.approx(30.0)
    assert y["lost_s"][MARGINS] == pytest.approx(30.0 - 11.775 - 1.5 - 6.125)
    rejected = footage_yield(42.0, [], [], rejected="transcribe: no speech (silent)")
    assert rejected["share"] == 0 and rejected["lost_s"] == {"transcribe: no speech": 42.0}


def test_the_ledger_summary_table_and_stats_show_the_yield(tmp_path, capsys):
    from ophora.cli.curate import print_summary
    from ophora.inspection.stats import collect_stats, footage_stats, stats_tables

    good = footage_yield(20.0, [(0.25, 6.375), (6.375, 12.5)], [(12.75, 19.75, "quality: blurred (0.1)")])
    bad = footage_yield(10.0, [], [], rejected="probe: too short (1.0 s)")
    append_rows(
        str(tmp_path),
        [
            ledger_row("/a.mp4", "aaaa1111", "done", duration=20.0, keys=["aaaa1111_000000"], footage=good),
            ledger_row("/b.mp4", "bbbb2222", "rejected", reason="probe: too short (1.0 s)", duration=10.0, footage=bad),
        ],
    )
    stats = footage_stats(read_ledger(str(tmp_path)))
    assert stats["source_s"] == pytest.approx(30.0) and stats["clip_s"] == pytest.approx(12.25)
    assert stats["lost_s"]["quality: blurred"] == pytest.approx(7.0) and stats["lost_s"]["probe: too short"] == 10.0
    summary = footage_summary([{"source": "/a.mp4", **good}, {"source": "/b.mp4", **bad}])
    assert summary["share"] == pytest.approx(12.25 / 30, abs=1e-4)
    assert [s["share"] for s in summary["by_source"]] == [pytest.approx(12.25 / 20, abs=1e-4), 0.0]
    print_summary(
        {
            "out": str(tmp_path),
            "processed": 2,
            "done": 1,
            "rejected": 1,
            "failed": 0,
            "skipped_settled": 0,
            "repeated_inputs": [],
            "clips_written": 2,
            "clips_by_subset": {},
            "clips_dropped": 1,
            "source_seconds": 20.0,
            "wall_seconds": 1.0,
            "clips_per_second": 2.0,
            "source_seconds_per_second": 20.0,
            "reasons": {},
            "drops": {},
            "footage": summary,
        }
    )
    printed = capsys.readouterr().out
    assert "footage in clips" in printed and "40.8 %" in printed and "lost: quality: blurred" in printed
    from rich.console import Console

    console = Console(record=True, width=120)
    everything = collect_stats(str(tmp_path))
    assert everything["ledger"]["footage"] == stats
    for table in stats_tables(everything):
        console.print(table)
    text = console.export_text()
    assert "Footage yield" in text and "became clips" in text and "lost: probe: too short" in text

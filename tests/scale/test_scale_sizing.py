"""benchmarks/sizing.py on the checked-in benchmark outputs: it runs, its numbers follow from its inputs (doubling a
stage's throughput halves that stage's hours and nothing else), and docs/scaling.md is what it prints today."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "benchmarks" / "sizing_sample"
SCRIPT = REPO / "benchmarks" / "sizing.py"


def sizing(bench: Path, tmp: Path, *sets: str) -> dict:
    out = tmp / f"plan-{len(list(tmp.glob('plan-*.json')))}.json"
    args = [sys.executable, str(SCRIPT), "--bench", str(bench), "--json", str(out)]
    for s in sets:
        args += ["--set", s]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(out.read_text())


def hours(plan: dict) -> dict[str, float]:
    return {r["stage"]: r["cpu_hours"] + r["gpu_hours"] for r in plan["stages"]}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    return sizing(SAMPLE, tmp_path_factory.mktemp("sizing"))


def test_sample_gives_every_stage_hours_a_shape_and_a_bottleneck_per_size(base):
    h = hours(base)
    assert all(v > 0 for v in h.values()), h
    assert base["tpt_clips"] == 160_000 and base["source_hours"] == pytest.approx(9819 * 10 / 60)
    # the measured privacy filter (~1 CPU-s a window) outweighs the clip transcode per window
    assert h["privacy (OCR, faces)"] > h["clip (ffmpeg)"]
    rec = base["recommended"]
    assert rec and rec["curation_hours"] <= base["assumptions"]["target_hours"]
    bounds = [r["curation_bound"] for r in base["growth"]]
    assert bounds[0].startswith("compute") and bounds[-1] == "longest source"  # the bottleneck moves
    assert base["growth"][-1]["tpt_bound"].startswith("global batch")


def test_doubling_a_measured_stage_throughput_halves_its_hours_and_nothing_else(base, tmp_path):
    bench = tmp_path / "bench"
    shutil.copytree(SAMPLE, bench)
    filters = json.loads((bench / "bench_filters.json").read_text())
    filters["ms_per_clip"]["privacy"]["cpu"] /= 2
    (bench / "bench_filters.json").write_text(json.dumps(filters))
    faster = hours(sizing(bench, tmp_path))
    before = hours(base)
    assert faster["privacy (OCR, faces)"] == pytest.approx(before["privacy (OCR, faces)"] / 2)
    assert {k: v for k, v in faster.items() if k != "privacy (OCR, faces)"} == pytest.approx(
        {k: v for k, v in before.items() if k != "privacy (OCR, faces)"}
    )


def test_assumptions_scale_the_plan(base, tmp_path):
    longer = sizing(SAMPLE, tmp_path, "mean_minutes=20")
    assert hours(longer)["probe+scenes+windows+write"] == pytest.approx(2 * hours(base)["probe+scenes+windows+write"])
    better = sizing(SAMPLE, tmp_path, "train_mfu=0.7")
    assert hours(better)["TPT"] == pytest.approx(hours(base)["TPT"] / 2)
    assert better["growth"][4]["tpt_days"] == pytest.approx(base["growth"][4]["tpt_days"] / 2, rel=0.01)


def test_docs_scaling_holds_the_current_output():
    run = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() in (REPO / "docs" / "scaling.md").read_text(), (
        "docs/scaling.md is stale: python benchmarks/sizing.py --markdown docs/scaling.md"
    )

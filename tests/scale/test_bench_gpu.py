"""The GPU check (benchmarks/bench_gpu.py) runs end to end on CPU at a reduced size, so it is known to work
before a GPU is lent to run it at CogVideoX-2b's real size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def test_gpu_check_runs_every_measurement_at_reduced_size_on_cpu(tmp_path):
    out = tmp_path / "bench-gpu.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--reduced",
        "--no-compile",
        "--steps",
        "2",
        "--lora-steps",
        "1",
        "--sample-steps",
        "2",
        "--precompute-clips",
        "1",
        "--peak-tflops",
        "0.001",
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["reduced"] and r["geometry"] == "9x64x96" and r["latent_shape"] == [1, 3, 4, 8, 12]
    assert r["full_ft_s_per_step"] > 0 and r["lora_r64_s_per_step"] > 0 and r["sample_s_per_video"] > 0
    # MFU: the counted FLOPs of a step over the step time and the given peak (1 GFLOP/s here)
    assert r["model_flops_per_step"] > 0 and r["peak_tflops"] == 0.001
    assert r["mfu"] == pytest.approx(r["model_flops_per_step"] / r["full_ft_s_per_step"] / 1e9, rel=1e-2)
    assert r["precompute_clips_per_s"] > 0
    assert "33.9 GB (finetrainers)" in res.stdout and "13.0 GB (finetrainers)" in res.stdout
    assert "~45 s on H100 (THUDM)" in res.stdout

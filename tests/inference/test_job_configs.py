"""sample and evaluate are configured like curate and train: defaults <- --config FILE <- flags <- --set, one
pydantic model each, printed back with --print-config; a wrong field is one line and exit 2."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from ophora.cli import app
from ophora.config import load
from ophora.inference.config import EvaluateConfig, SampleConfig


def test_layers_apply_in_order(tmp_path):
    path = tmp_path / "sample.yaml"
    path.write_text("model: /models/cogvideox\nsteps: 20\nseed: 3\nguidance: 5.0\n")
    cfg = load(SampleConfig, str(path), {"steps": 30, "seed": None}, {"guidance": 7.5})
    assert (cfg.model, cfg.steps, cfg.seed, cfg.guidance) == ("/models/cogvideox", 30, 3, 7.5)
    assert "model" not in cfg.run_kwargs() and cfg.run_kwargs()["num_videos_per_prompt"] == 1


def test_evaluate_none_switches_a_network_off():
    kwargs = EvaluateConfig(fid_net="none", clip_model="", audit_k=0).run_kwargs()
    assert kwargs["fid_net"] is None and kwargs["clip_model"] is None and kwargs["audit_k"] is None
    assert kwargs["fvd_net"] == "random-i3d"


def test_print_config_and_a_wrong_field(tmp_path):
    runner = CliRunner()
    shown = runner.invoke(app, ["sample", "--print-config", "--steps", "12", "--set", "dtype=fp32"])
    assert shown.exit_code == 0, shown.output
    printed = yaml.safe_load(shown.output)
    assert printed["steps"] == 12 and printed["dtype"] == "fp32" and printed["frames"] == 49
    shown = runner.invoke(
        app, ["evaluate", str(tmp_path), "--reference", str(tmp_path), "--print-config", "--fvd-frames", "8"]
    )
    assert shown.exit_code == 0 and yaml.safe_load(shown.output)["fvd_frames"] == 8
    bad = runner.invoke(app, ["sample", "--print-config", "--set", "dtype=fp64"])
    assert bad.exit_code == 2 and "dtype" in bad.output

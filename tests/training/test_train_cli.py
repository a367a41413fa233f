"""`ophora train`: the tiny model builder, and bad input that ends with a clear message and a non-zero exit."""

from __future__ import annotations

from typer.testing import CliRunner

from ophora.cli import app

runner = CliRunner()


def test_make_tiny_model_writes_a_diffusers_pipeline_folder(tmp_path):
    result = runner.invoke(app, ["train", "make-tiny-model", str(tmp_path / "m"), "--no-rotary"])
    assert result.exit_code == 0, result.output
    for part in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / "m" / part).is_dir()
    assert (tmp_path / "m" / "model_index.json").exists()


def test_empty_subset_exits_with_the_folder_named(tmp_path):
    result = runner.invoke(
        app, ["train", "--stage", "p2ft", "--shards", str(tmp_path), "--out", str(tmp_path / "o"), "--config", "tiny"]
    )
    assert result.exit_code == 1
    assert "no shards under" in result.output and "p2ft/" in result.output


def test_stage_without_shards_is_a_usage_error():
    result = runner.invoke(app, ["train", "--stage", "tpt"])
    assert result.exit_code == 2 and "--shards" in result.output


def test_bad_config_override_is_refused_before_any_work(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "--stage",
            "tpt",
            "--shards",
            str(tmp_path),
            "--out",
            str(tmp_path),
            "--config",
            "tiny",
            "--set",
            "data.num_frames=10",
        ],
    )
    assert result.exit_code == 2 and "4k+1" in result.output


def test_dry_run_prints_the_paper_run_without_weights_or_gpu():
    import json

    result = runner.invoke(app, ["train", "dry-run", "--config", "p2ft", "--set", "lora.rank=64"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output[result.output.index("{") :])
    assert facts["batch"]["global"] == 128 and facts["schedule"]["max_steps"] == 4500
    assert facts["transformer"]["lora_rank"] == 64 and facts["resources"]["backend"] == "nccl"

"""Sampling: seeds honoured, files as promised, refused prompts reported, trainer exports (full and LoRA) load,
the Ray actor pool gives the same video as a local run.

Everything runs on the randomly initialised miniature CogVideoX from ``ophora.training.models``, 9 frames of
32x48 pixels and 2 denoising steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ophora.inference.pipeline import GeometryError, SamplingSettings, load_pipeline, render
from ophora.inference.prompts import Prompt, read_prompts
from ophora.inference.sample import read_manifest, sample_videos
from ophora.video import decode_frames, probe_stream

TINY = dict(steps=2, frames=9, height=32, width=48, fps=8.0)
SETTINGS = SamplingSettings(**TINY)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from ophora.training.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tiny_pipe(tiny_model):
    return load_pipeline(tiny_model, SETTINGS)


@pytest.fixture(scope="module")
def sampled(tiny_model, tmp_path_factory) -> tuple[Path, dict]:
    """Two instructions x 2 videos, plus an empty prompt and one far over the 226-token limit."""
    prompts = [
        Prompt("incision", "Make a clear corneal incision with the keratome.", phase="incision"),
        Prompt("rhexis", "Tear a continuous circular capsulorhexis.", phase="capsulorhexis"),
        Prompt("blank", ""),
        Prompt("rambling", "rotate the nucleus " * 120),
    ]
    out = tmp_path_factory.mktemp("sampled")
    summary = sample_videos(tiny_model, prompts, out, seed=11, num_videos_per_prompt=2, **TINY)
    return out, summary


def test_same_seed_gives_identical_frames_and_other_seeds_differ(tiny_pipe):
    text = "Inject balanced salt solution under the capsule."
    first = render(tiny_pipe, text, 5, SETTINGS)
    again = render(tiny_pipe, text, 5, SETTINGS)
    other = render(tiny_pipe, text, 6, SETTINGS)
    assert first.shape == (9, 32, 48, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_manifest_matches_the_files(sampled):
    out, summary = sampled
    rows = read_manifest(out)
    ok = [r for r in rows if r["status"] == "ok"]
    assert summary["videos"] == len(ok) == 4 and summary["failed"] == 0
    on_disk = sorted(p.name for p in (out / "videos").glob("*.mp4"))
    assert on_disk == sorted(Path(r["file"]).name for r in ok)
    # seeds: prompt i, video j -> 11 + i*2 + j, each recorded in the manifest and the sidecar
    assert {(r["prompt_id"], r["video_index"]): r["seed"] for r in ok} == {
        ("incision", 0): 11,
        ("incision", 1): 12,
        ("rhexis", 0): 13,
        ("rhexis", 1): 14,
    }
    for r in ok:
        sidecar = json.loads((out / r["file"]).with_suffix(".json").read_text())
        assert sidecar["seed"] == r["seed"] and sidecar["prompt"] == r["prompt"] and sidecar["phase"] == r["phase"]
        assert sidecar["settings"]["scheduler"] == "dpm" and sidecar["settings"]["dynamic_cfg"] is True
        assert r["render_seconds"] > 0
    assert json.loads((out / "summary.json").read_text())["videos"] == 4


def test_every_mp4_has_the_promised_frames_size_and_fps(sampled):
    out, _ = sampled
    for mp4 in (out / "videos").glob("*.mp4"):
        facts = probe_stream(mp4)
        assert (facts.frames, facts.width, facts.height) == (9, 48, 32), mp4
        assert facts.fps == pytest.approx(8.0) and facts.codec == "h264" and facts.pix_fmt == "yuv420p"


def test_empty_and_too_long_prompts_are_reported_not_crashed(sampled):
    out, summary = sampled
    refused = {r["prompt_id"]: r["problem"] for r in read_manifest(out) if r["status"] == "refused"}
    assert refused["blank"] == "empty prompt"
    assert "over the text encoder's limit of 226" in refused["rambling"]
    assert summary["refused"] == 2 and len(summary["problems"]) == 2
    assert not list((out / "videos").glob("blank*")) and not list((out / "videos").glob("rambling*"))


def test_gallery_shows_every_generated_video(sampled):
    out, summary = sampled
    page = Path(summary["gallery"]).read_text()
    assert page.count('class="card"') == 4
    assert "Tear a continuous circular capsulorhexis." in page
    assert len(list((out / "gallery" / "videos").glob("*.mp4"))) == 4


def test_frames_that_are_not_4k_plus_1_are_refused_before_rendering(tiny_model):
    with pytest.raises(GeometryError, match="4k\\+1"):
        load_pipeline(tiny_model, SamplingSettings(**{**TINY, "frames": 10}))


def _perturb(module, scale: float, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * scale)


def test_full_and_lora_exports_of_the_trainer_both_sample(tiny_model, tiny_pipe, tmp_path):
    from peft import LoraConfig

    from ophora.training.export import export_trained
    from ophora.training.models import load_transformer

    text = "Polish the posterior capsule with low vacuum."
    base = render(tiny_pipe, text, 3, SETTINGS)

    full = load_transformer(str(tiny_model))
    _perturb(full, 0.05, seed=1)
    full_dir = export_trained(full, str(tiny_model), tmp_path / "full", lora=False)
    full_out = sample_videos(full_dir, [text], tmp_path / "full-out", seed=3, gallery=False, **TINY)
    assert full_out["videos"] == 1

    lora = load_transformer(str(tiny_model))
    lora.requires_grad_(False)
    lora.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=True)
    )
    for name, p in lora.named_parameters():
        p.requires_grad_("lora_" in name)
    _perturb(lora, 0.2, seed=2)  # lora_B starts at zero; make the adapter change the output
    lora_dir = Path(export_trained(lora, str(tiny_model), tmp_path / "lora", lora=True))
    via_adapter = load_pipeline(tiny_model, SETTINGS, lora=lora_dir)  # base model + lora/ folder
    fused = load_pipeline(lora_dir, SETTINGS)  # the export's own fused pipeline
    adapter_frames = render(via_adapter, text, 3, SETTINGS)
    fused_frames = render(fused, text, 3, SETTINGS)
    assert np.abs(adapter_frames.astype(int) - fused_frames.astype(int)).max() <= 2
    assert not np.array_equal(adapter_frames, base)
    full_frames = decode_frames(tmp_path / "full-out" / "videos" / "p0001_v00.mp4")
    assert full_frames.shape == base.shape
    assert np.abs(full_frames.astype(int) - base.astype(int)).mean() > 1.0  # trained weights changed the video


def test_ray_actor_pool_renders_the_same_video_as_a_local_run(tiny_model, sampled, ray_local, tmp_path):
    out, _ = sampled
    text = "Make a clear corneal incision with the keratome."
    summary = sample_videos(
        tiny_model,
        [Prompt("incision", text, phase="incision", seed=11)],
        tmp_path,
        use_ray=True,
        cpus_per_worker=0.5,
        gallery=False,
        **TINY,
    )
    assert summary["mode"] == "ray" and summary["videos"] == 1
    remote = decode_frames(tmp_path / "videos" / "incision_v00.mp4")
    local = decode_frames(out / "videos" / "incision_v00.mp4")
    assert np.array_equal(remote, local)


def test_prompt_files_csv_jsonl_txt_and_the_bundled_cataract_phases(tmp_path):
    (tmp_path / "p.csv").write_text('key,text,stage\na,"Incise the cornea.",incision\na,"Inject dye.",\n')
    csv_prompts = read_prompts(tmp_path / "p.csv", id_column="key", prompt_column="text", phase_column="stage")
    assert [(p.id, p.text, p.phase) for p in csv_prompts] == [
        ("a", "Incise the cornea.", "incision"),
        ("a-2", "Inject dye.", None),
    ]
    (tmp_path / "p.jsonl").write_text(
        '{"id": "x/../y", "prompt": "Fill the chamber.", "seed": 9}\n"Dial the lens."\n{broken\n'
    )
    jl = read_prompts(tmp_path / "p.jsonl")
    assert (jl[0].id, jl[0].seed) == ("x_.._y", 9) and jl[1].text == "Dial the lens."
    assert "not JSON" in jl[2].problem
    (tmp_path / "p.txt").write_text("# phases\nIncise.\n\nAspirate the cortex.\n")
    assert [p.text for p in read_prompts(tmp_path / "p.txt")] == ["Incise.", "Aspirate the cortex."]
    phases = read_prompts("cataract-phases")
    assert len(phases) == 12 and len({p.phase for p in phases}) == 12
    assert all(p.text and not p.problem for p in phases)


def test_cli_sample_writes_videos_and_summary(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from ophora.cli import app

    result = CliRunner().invoke(
        app,
        [
            "sample",
            "--model",
            str(tiny_model),
            "--prompt",
            "Hydrate the wound.",
            "--out",
            str(tmp_path),
            "--seed",
            "4",
            "--steps",
            "2",
            "--frames",
            "9",
            "--height",
            "32",
            "--width",
            "48",
            "--no-gallery",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["videos"] == 1 and read_manifest(tmp_path)[0]["seed"] == 4

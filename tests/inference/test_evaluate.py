"""Evaluation: the Fréchet distance matches its closed form, a set is ~0 from itself, CLIPScore follows the
pairing of prompts and frames, shards give a per-phase breakdown, and weights load by path.

Networks are randomly initialised with fixed seeds (plumbing only) at small input sizes; videos are synthetic
9-frame 32x48 clips written with real ffmpeg.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ophora.inference.evaluate import evaluate
from ophora.inference.features import FeatureNetError, load_feature_net
from ophora.inference.metrics import frechet_distance, frechet_distance_of
from ophora.inference.video_io import encode_mp4

SMALL = dict(frames_per_video=4, fvd_frames=8, seed=0)
PHASES = {"incision": "Make a clear corneal incision.", "capsulorhexis": "Tear a circular capsulorhexis."}


def _clip_frames(seed: int, tint: tuple[int, int, int]) -> np.ndarray:
    """9 frames of 32x48: tinted noise with a square drifting right, different for every seed."""
    rng = np.random.default_rng(seed)
    frames = (rng.integers(0, 120, size=(9, 32, 48, 3)) + np.array(tint)).clip(0, 255).astype(np.uint8)
    for t in range(9):
        frames[t, 10:20, 4 + 3 * t : 14 + 3 * t] = 250
    return frames


@pytest.fixture(scope="module")
def nets() -> dict:
    """Seeded random Inception (FID, 96 px) and S3D (FVD, 64 px), loaded once for the module."""
    return {
        "fid_net": load_feature_net("random-inception", "image", seed=0, size=96),
        "fvd_net": load_feature_net("random-i3d", "video", seed=0, size=64),
    }


@pytest.fixture(scope="module")
def clip():
    from ophora.inference.openclip_embed import load_clip

    return load_clip("ViT-B-32", None, seed=0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Four 'generated' videos, two per phase, with sampler-style json sidecars."""
    out = tmp_path_factory.mktemp("generated")
    for n, (phase, text) in enumerate([*PHASES.items()] * 2):
        mp4 = encode_mp4(_clip_frames(n, (60 * n, 0, 40)), out / f"{phase}_v{n:02d}.mp4", fps=8)
        mp4.with_suffix(".json").write_text(json.dumps({"prompt": text, "phase": phase, "seed": n}))
    return out


@pytest.fixture(scope="module")
def reference_shards(tmp_path_factory) -> Path:
    """A curation output with six tpt clips (three per phase) written through the shard contract."""
    from ophora.dataset.shards import ClipMeta, ShardWriter, clip_key, encode_sample

    root = tmp_path_factory.mktemp("curated")
    with ShardWriter(str(root), "tpt", "ref") as writer:
        for n in range(6):
            phase = list(PHASES)[n % 2]
            key = clip_key("0123456789abcdef", n)
            mp4 = encode_mp4(_clip_frames(100 + n, (0, 80, 20 * n)), root / "tmp.mp4", fps=8).read_bytes()
            meta = ClipMeta(
                key=key,
                source_id="0123456789abcdef",
                source_uri="synthetic.mp4",
                clip_index=n,
                scene_index=0,
                start=n,
                end=n + 1.125,
                fps=8,
                num_frames=9,
                width=48,
                height=32,
                instruction=PHASES[phase],
                phase=phase,
            )
            writer.write(key, encode_sample(meta, mp4))
    (root / "tmp.mp4").unlink()
    return root


def test_frechet_distance_matches_the_closed_form_for_two_known_gaussians():
    # diagonal covariances: d² = |mu1 - mu2|² + sum (sqrt(a) - sqrt(b))²
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # non-commuting 2x2 covariances: tr((S1 S2)^½) = sqrt(tr(S1 S2) + 2 sqrt(det(S1 S2)))
    s1 = np.array([[2.0, 0.6], [0.6, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    m = s1 @ s2
    cross = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    expected = 1.0 + np.trace(s1) + np.trace(s2) - 2 * cross
    assert frechet_distance(np.zeros(2), s1, np.array([1.0, 0.0]), s2) == pytest.approx(expected, rel=1e-10)
    # from samples of the same two Gaussians, the fitted distance converges to the formula
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(np.zeros(2), s1, size=200_000)
    y = rng.multivariate_normal(np.array([1.0, 0.0]), s2, size=200_000)
    assert frechet_distance_of(x, y) == pytest.approx(expected, rel=0.03)


def test_sample_space_and_covariance_frechet_agree_when_samples_are_fewer_than_dims():
    from ophora.inference.metrics import gaussian_stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 200)), rng.normal(size=(45, 200)) * 1.3 + 0.2
    expected = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert frechet_distance_of(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_of(a, a) == pytest.approx(0.0, abs=1e-9)


def test_fid_and_fvd_of_a_set_against_itself_are_about_zero(generated, reference_shards, nets, tmp_path):
    itself = evaluate(generated, generated, tmp_path / "self", clip_model=None, plot=False, **nets, **SMALL)
    other = evaluate(generated, reference_shards, tmp_path / "other", clip_model=None, plot=False, **nets, **SMALL)
    assert itself["reference"]["source"].startswith("mp4 folder")
    assert other["overall"]["fid"] > 0 and other["overall"]["fvd"] > 0
    assert itself["overall"]["fid"] < 1e-6 * other["overall"]["fid"]
    assert itself["overall"]["fvd"] < 1e-6 * other["overall"]["fvd"]


def test_clipscore_changes_when_prompts_are_shuffled_against_frames(generated, reference_shards, clip, tmp_path):
    from ophora.inference.openclip_embed import load_clip

    texts = [
        "Make a clear corneal incision.",
        "Tear a circular capsulorhexis.",
        "Inject viscoelastic.",
        "Polish the posterior capsule.",
    ]
    paired, shuffled = tmp_path / "paired", tmp_path / "shuffled"
    for n, mp4 in enumerate(sorted(generated.glob("*.mp4"))):  # video n with text n, and with text n+1
        for folder, text in ((paired, texts[n]), (shuffled, texts[(n + 1) % 4])):
            folder.mkdir(exist_ok=True)
            (folder / mp4.name).write_bytes(mp4.read_bytes())
            (folder / mp4.with_suffix(".json").name).write_text(json.dumps({"prompt": text}))
    kwargs = dict(fid_net=None, fvd_net=None, clip_model=clip, plot=False, **SMALL)
    matched = evaluate(paired, reference_shards, tmp_path / "a", **kwargs)["overall"]
    moved = evaluate(shuffled, reference_shards, tmp_path / "c", **kwargs)["overall"]
    assert matched["clip_cosine"] != pytest.approx(moved["clip_cosine"], abs=1e-6)
    # (CLIPScore itself clamps negative cosines to 0, which a random CLIP mostly gives; the cosine is the signal)
    # fixed seed: the same random CLIP every time, so the outcome above cannot flip between runs
    assert np.array_equal(load_clip("ViT-B-32", None, seed=0).texts(texts[:1]), clip.texts(texts[:1]))


def test_evaluation_against_shards_gives_overall_per_phase_json_and_plot(
    generated, reference_shards, nets, clip, tmp_path
):
    results = evaluate(generated, reference_shards, tmp_path, clip_model=clip, **nets, **SMALL)
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["overall"] == pytest.approx(results["overall"])
    assert results["reference"]["source"].endswith("subset tpt") and results["reference"]["videos"] == 6
    assert set(results["per_phase"]) == set(PHASES)
    for phase in PHASES:
        row = results["per_phase"][phase]
        assert (row["generated"], row["reference"]) == (2, 3)
        assert row["fid"] > 0 and row["fvd"] > 0 and row["clip_score"] is not None
    assert results["comparable_to_published"] is False
    assert all("NOT comparable" in n["note"] for n in results["networks"].values())
    from PIL import Image

    with Image.open(tmp_path / "evaluation.png") as img:
        assert img.size[0] > 300 and img.size[1] > 300


def test_feature_nets_load_by_path_and_pickles_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    random_net = load_feature_net("random-inception", "image", seed=3, size=80)
    state = {k: v.contiguous() for k, v in random_net.module.state_dict().items()}
    save_file(state, tmp_path / "inception.safetensors")
    by_path = load_feature_net(str(tmp_path / "inception.safetensors"), "image", size=80)
    frames = np.random.default_rng(1).integers(0, 255, size=(2, 40, 60, 3), dtype=np.uint8)
    # random weights saved to a file are still random: a path alone never makes figures comparable
    assert not by_path.comparable and not random_net.comparable and "NOT comparable" in by_path.note
    assert np.allclose(by_path.features(frames), random_net.features(frames))

    scripted = torch.jit.trace(
        torch.nn.Sequential(torch.nn.Conv3d(3, 5, 3), torch.nn.AdaptiveAvgPool3d(1)), torch.zeros(1, 3, 4, 16, 16)
    )
    scripted.save(str(tmp_path / "i3d.pt"))
    video_net = load_feature_net(str(tmp_path / "i3d.pt"), "video", size=16)
    clips = np.random.default_rng(2).integers(0, 255, size=(3, 4, 20, 30, 3), dtype=np.uint8)
    assert video_net.features(clips).shape == (3, 5) and video_net.input_range == "-1-1"

    torch.save({"weights": torch.zeros(2), "payload": Path("x")}, tmp_path / "pickled.pt")
    with pytest.raises(FeatureNetError, match="pickled.pt"):
        load_feature_net(str(tmp_path / "pickled.pt"), "image")


def _cli_evaluate(generated, reference_shards, out):
    """``ophora evaluate`` on the fixtures at the small sizes (no CLIP), as a CliRunner result."""
    from typer.testing import CliRunner

    from ophora.cli import app

    return CliRunner().invoke(
        app,
        [
            "evaluate",
            str(generated),
            "--reference",
            str(reference_shards),
            "--out",
            str(out),
            "--fid-size",
            "96",
            "--fvd-size",
            "64",
            "--frames-per-video",
            "4",
            "--fvd-frames",
            "8",
            "--clip-model",
            "none",
        ],
    )


def test_cli_evaluate_prints_a_table_and_writes_results(generated, reference_shards, tmp_path):
    result = _cli_evaluate(generated, reference_shards, tmp_path)
    assert result.exit_code == 0, result.output
    assert "FID" in result.output
    assert json.loads((tmp_path / "evaluation.json").read_text())["overall"]["fid"] > 0


def test_only_a_known_detector_checksum_makes_figures_comparable(tmp_path, monkeypatch):
    import torch
    import torchvision

    from ophora.inference import features

    # a stand-in for pytorch-fid's weights file: an FID-Inception-shaped state dict (1008 classes, no aux head)
    fake = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    torch.save(fake.state_dict(), tmp_path / "pt_inception.pth")
    unknown = load_feature_net(str(tmp_path / "pt_inception.pth"), "image", size=96)
    assert not unknown.comparable and "NOT comparable" in unknown.note
    monkeypatch.setitem(
        features.KNOWN_WEIGHTS,
        features.file_sha256(tmp_path / "pt_inception.pth"),
        features.KnownDetector("pytorch-fid Inception (test stand-in)", "image", features.PYTORCH_FID),
    )
    known = load_feature_net(str(tmp_path / "pt_inception.pth"), "image")
    frames = np.random.default_rng(2).integers(0, 255, size=(2, 60, 90, 3), dtype=np.uint8)
    assert known.comparable and known.size is None  # pytorch-fid's own network resizes to 299 itself
    assert known.features(frames).shape == (2, 2048)
    assert not load_feature_net(str(tmp_path / "pt_inception.pth"), "image", size=96).comparable  # other size
    with pytest.raises(FeatureNetError, match="not a video one"):
        load_feature_net(str(tmp_path / "pt_inception.pth"), "video")


def test_every_figure_of_random_networks_says_not_comparable(generated, reference_shards, nets, clip, tmp_path):
    results = evaluate(
        generated, reference_shards, tmp_path, clip_model=clip, plot=False, audit_k=None, **nets, **SMALL
    )
    assert results["labels"] == {"fid": "not comparable", "fvd": "not comparable", "clip_score": "not comparable"}
    assert json.loads((tmp_path / "evaluation.json").read_text())["labels"] == results["labels"]
    output = _cli_evaluate(generated, reference_shards, tmp_path / "cli").output
    assert "FID (not comparable)" in " ".join(output.split()) or "not comparable" in output


def test_memorisation_audit_flags_a_generated_copy_of_a_training_clip(generated, reference_shards, nets, tmp_path):
    from ophora.dataset.shards import iter_subset

    copied = next(iter_subset(str(reference_shards), "tpt"))
    videos = tmp_path / "videos"
    videos.mkdir()
    for mp4 in generated.glob("*.mp4"):  # four original videos and one copy of a training clip
        (videos / mp4.name).write_bytes(mp4.read_bytes())
        (videos / mp4.with_suffix(".json").name).write_text(mp4.with_suffix(".json").read_text())
    (videos / "copy.mp4").write_bytes(copied.mp4)
    (videos / "copy.json").write_text(json.dumps({"prompt": copied.instruction}))
    results = evaluate(
        videos,
        reference_shards,
        tmp_path / "out",
        fid_net=nets["fid_net"],
        fvd_net=None,
        clip_model=None,
        plot=False,
        audit_k=2,
        **SMALL,
    )
    audit = results["memorisation"]
    by_video = {v["generated"]: v for v in audit["nearest"]}
    assert by_video["copy"]["nearest"][0] == {"training_clip": copied.key, "cosine": pytest.approx(1.0, abs=1e-6)}
    assert by_video["copy"]["flagged_frames"] == SMALL["frames_per_video"]
    assert {f["generated"] for f in audit["flagged"]} == {"copy"}  # the original videos are not copies
    assert audit["threshold"] > 0 and audit["training_clips"] == 6  # a distance: distinct clips are apart
    # the copy was prompted with its clip's instruction, and its clip is its nearest: recalled
    assert audit["recall_at_2"] is not None and audit["recall_at_2"] > audit["chance_recall_at_2"]

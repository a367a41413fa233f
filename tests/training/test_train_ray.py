"""The Ray Train job end to end on the tiny CogVideoX: 2 CPU workers, gloo, real shards, real checkpoints.

One 20-step run feeds several promises (loss falls, disjoint workers, export loads); a rerun of the same folder
checks resume, with a worker killed part way; a run resumed with another number of workers (and loader
processes) checks elastic resume and validation videos. Progressive + LoRA, the reruns are the slow ones.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from ophora.clip_geometry import TINY
from ophora.training.config import load_config
from ophora.training.data import ClipStream, find_shards
from ophora.training.data_geometry import with_geometry
from ophora.training.models import make_tiny_model
from ophora.training.trainer import TrainingError, run_progressive, run_training
from tests.fixtures.shards import write_clip_shards


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-cogvideox"), seed=0))


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[str, dict[str, list[str]]]:
    """4 tpt clips and 4 different p2ft clips, 2 per shard."""
    root = tmp_path_factory.mktemp("train-shards")
    keys = write_clip_shards(root, {"tpt": 4, "p2ft": 4}, per_shard=2)
    return str(root), keys


def tiny(model: str, **over):
    return load_config("tiny", {"model": model, "log_every": 1, "optim.lr": 2e-3, **over})


def keys_log(out: Path, stage: str, rank: int) -> list[dict]:
    return [json.loads(line) for line in (out / "keys" / stage / f"rank-{rank}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def overfit_run(ray_local, tiny_model, shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit")
    cfg = tiny(tiny_model, max_steps=20, checkpoint_every=10)
    return cfg, out, run_training(cfg, shards[0], out, "tpt", record_keys=True)


def test_overfitting_four_clips_lowers_the_loss_by_a_tenth(overfit_run):
    _, _, summary = overfit_run
    history = summary["loss_history"]
    assert summary["steps"] == 20 and len(history) == 20
    first, last = sum(history[:3]) / 3, sum(history[-5:]) / 5
    assert last < 0.9 * first, history


def test_two_workers_train_on_disjoint_clips_every_epoch(overfit_run, shards):
    _, out, _ = overfit_run
    by_epoch: dict[tuple[int, int], set[str]] = {}
    for rank in (0, 1):
        for row in keys_log(out, "tpt", rank):
            by_epoch.setdefault((rank, row["epoch"]), set()).update(row["keys"])
    epochs = {e for _, e in by_epoch}
    assert len(epochs) >= 2
    for epoch in epochs:
        assert not by_epoch.get((0, epoch), set()) & by_epoch.get((1, epoch), set())
    assert set().union(*by_epoch.values()) == set(shards[1]["tpt"])


def test_export_loads_in_cogvideox_pipeline_and_generates_frames(overfit_run, tiny_model):
    import torch
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    _, out, summary = overfit_run
    pipe = CogVideoXPipeline.from_pretrained(summary["export"])
    assert (Path(summary["export"]) / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    base = CogVideoXTransformer3DModel.from_pretrained(tiny_model, subfolder="transformer")
    assert not torch.equal(pipe.transformer.proj_out.weight, base.proj_out.weight)
    frames = pipe(
        "Polish the posterior capsule.",
        num_frames=9,
        height=64,
        width=96,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert frames.shape == (1, 9, 64, 96, 3)
    assert (out / "tensorboard" / "tpt").is_dir() and json.loads((out / "summary.json").read_text())["steps"] == 20


def _pids_with_open_files_under(folder: Path) -> list[int]:
    """Processes holding a file under ``folder`` open: our train workers keep their key logs open there."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and any(str(folder) in os.readlink(fd) for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_rerun_resumes_survives_a_killed_worker_and_continues_the_data_order(overfit_run, shards):
    """A rerun of the 20-step folder to 30 steps resumes at step 20; a worker SIGKILLed once the rerun has saved a
    checkpoint is restarted by Ray and resumes from it; every step 1-30 drew the clips of the uninterrupted order."""
    cfg, out, _ = overfit_run
    longer = cfg.model_copy(update={"max_steps": 30, "checkpoint_every": 3})
    snapshot = out / "ray" / "ophora-tpt" / "checkpoint_manager_snapshot.json"
    registered = lambda: set(re.findall(r'"checkpoint_dir_name"\s*:\s*"([^"]+)"', snapshot.read_text()))  # noqa: E731
    before = registered()
    result: dict = {}
    runner = threading.Thread(
        target=lambda: result.update(run_training(longer, shards[0], out, "tpt", record_keys=True))
    )
    runner.start()
    deadline = time.time() + 300
    while registered() <= before and time.time() < deadline:
        time.sleep(0.5)  # the snapshot lists a checkpoint only once Ray has registered it
    workers = _pids_with_open_files_under(out / "keys")
    assert workers, "no live Ray Train worker to kill"
    os.kill(workers[-1], signal.SIGKILL)
    runner.join(timeout=400)
    assert result, "training did not finish after the worker was killed"
    assert result["steps"] == 30 and result["resumed_from_step"] in (21, 24, 27)  # the restart's checkpoint
    shard_list = find_shards(shards[0], "tpt")
    for rank in (0, 1):
        rows = keys_log(out, "tpt", rank)
        assert [r["step"] for r in rows][:21] == list(range(1, 22))  # the rerun started at step 21, not before
        by_step: dict[int, list[str]] = {}
        for row in rows:  # steps redone after the restart must draw the same clips
            assert by_step.setdefault(row["step"], row["keys"]) == row["keys"]
        data = with_geometry(cfg.data, TINY)  # what the trainer read from the shards
        expected = [
            b["keys"]
            for b in itertools.islice(iter(ClipStream(shard_list, data, cfg.batch_size, cfg.seed, rank, 2, "raw")), 30)
        ]
        assert [by_step[s] for s in range(1, 31)] == expected  # no clip repeated or skipped across both


def test_more_workers_than_cpus_fail_at_once_with_the_numbers(ray_local, tiny_model, shards, tmp_path):
    cfg = tiny(tiny_model, max_steps=1, **{"scaling.num_workers": 8})
    started = time.time()
    with pytest.raises(TrainingError, match=r"need 4 CPU .* has 2 CPU"):
        run_training(cfg, shards[0], tmp_path, "tpt")
    assert time.time() - started < 30


@pytest.mark.slow
def test_progressive_fsdp2_then_lora_p2ft_from_tpt_weights_reading_only_p2ft(ray_local, tiny_model, shards, tmp_path):
    import torch
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    tpt = tiny(tiny_model, max_steps=2, checkpoint_every=2, parallel="fsdp2")  # FSDP2 export gathers the shards
    p2ft = tiny(tiny_model, max_steps=2, checkpoint_every=2, **{"lora.rank": 4, "optim.lr": 1e-2})
    both = run_progressive(tpt, p2ft, shards[0], tmp_path, record_keys=True)
    assert both["p2ft"]["model"] == both["tpt"]["export"]
    p2ft_seen = {k for r in (0, 1) for row in keys_log(tmp_path / "p2ft", "p2ft", r) for k in row["keys"]}
    assert p2ft_seen and p2ft_seen <= set(shards[1]["p2ft"])

    load = lambda d: CogVideoXTransformer3DModel.from_pretrained(d, subfolder="transformer")  # noqa: E731
    base, after_tpt, after_p2ft = load(tiny_model), load(both["tpt"]["export"]), load(both["p2ft"]["export"])
    # LoRA touches only attention projections: everything else in P²FT must be TPT's weights, bit for bit.
    assert not torch.equal(after_tpt.proj_out.weight, base.proj_out.weight)
    assert torch.equal(after_p2ft.proj_out.weight, after_tpt.proj_out.weight)
    q = "transformer_blocks.0.attn1.to_q.weight"
    assert not torch.equal(after_p2ft.state_dict()[q], after_tpt.state_dict()[q])

    pipe = CogVideoXPipeline.from_pretrained(both["tpt"]["export"])
    pipe.load_lora_weights(str(Path(both["p2ft"]["export"]) / "lora"), adapter_name="p2ft")
    pipe.fuse_lora(components=["transformer"])
    pipe.unload_lora_weights()  # keeps the fused weights, drops the peft wrappers
    assert torch.allclose(pipe.transformer.state_dict()[q], after_p2ft.state_dict()[q], atol=1e-6)


@pytest.mark.slow
def test_resume_on_one_worker_finishes_the_epochs_two_left_and_rank0_renders_validation(
    ray_local, tiny_model, shards, tmp_path
):
    """2 workers x 2 loader processes, EMA on, validation every 3 steps, stop at step 3; the rerun on 1 worker x 2
    loader processes resumes there and trains every clip of the interrupted epochs exactly once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = tiny(
        tiny_model,
        max_steps=3,
        checkpoint_every=3,
        ema_decay=0.9,
        **{"data.loader_workers": 2, "validation.every": 3, "validation.max_prompts": 2, "validation.steps": 2},
    )
    two = run_training(first, shards[0], tmp_path, "tpt", record_keys=True)
    assert two["readers"] == 4 and two["validation_step"] == 3 and two["validation_clip_score"] is not None
    videos = sorted((tmp_path / "tensorboard" / "tpt" / "validation" / "step-000003").glob("*.mp4"))
    assert [v.stem for v in videos] == ["01_incision", "02_viscoelastic_injection"]
    tags = EventAccumulator(str(tmp_path / "tensorboard" / "tpt"), size_guidance={"images": 0})
    tags.Reload()
    assert "validation/clip_score" in tags.Tags()["scalars"] and "validation/01_incision" in tags.Tags()["images"]

    before = [row for rank in (0, 1) for row in keys_log(tmp_path, "tpt", rank)]
    second = first.model_copy(
        update={
            "max_steps": 9,
            "scaling": first.scaling.model_copy(update={"num_workers": 1}),
            "validation": first.validation.model_copy(update={"every": 0}),
        }
    )
    one = run_training(second, shards[0], tmp_path, "tpt", record_keys=True)
    assert one["resumed_from_step"] == 3 and one["readers"] == 2 and one["steps"] == 9
    after = [row for row in keys_log(tmp_path, "tpt", 0) if row["step"] > 3]
    interrupted = max(row["epoch"] for row in before)
    trained = [(k, e) for row in before + after for k, e in zip(row["keys"], row["sample_epochs"])]
    for epoch in range(interrupted + 1):
        keys = sorted(k for k, e in trained if e == epoch)
        assert keys == sorted(shards[1]["tpt"]), f"epoch {epoch}: {keys}"

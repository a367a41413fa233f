"""What a training checkpoint holds and how a worker writes and reads it.

One checkpoint folder (Ray merges every worker's files into it)::

    model.safetensors        trainable weights (all of the transformer, or only the LoRA layers), full, fp32
    optimizer.pt             AdamW state keyed by parameter name (torch.load weights_only=True)
    trainer_state.json       step, lr-scheduler and loss-scaler state, model signature, loss history, the data's
                             reader layout (elastic.py)
    ema.safetensors          EMA weights when EMA is on
    rank-<r>.json            that worker's data positions (reader -> [epoch, position]) and Python RNG state
    rank-<r>.rng.pt          that worker's torch RNG states
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "trainer_state.json"


class CheckpointMismatch(RuntimeError):
    """A checkpoint that was written for another model shape or another training setup."""


def _state_options(cpu_offload: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload, ignore_frozen_params=True)


def save_checkpoint(
    folder: Path,
    *,
    rank: int,
    model,
    optimizer,
    lr_scheduler,
    ema,
    step: int,
    signature: dict[str, Any],
    positions: dict[int, tuple[int, int]],
    history: list[float],
    extra: dict[str, Any],
) -> None:
    """Write this worker's share of a checkpoint into ``folder`` (rank 0 writes the model and optimizer)."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_state_dict

    folder.mkdir(parents=True, exist_ok=True)
    # Every rank takes part: FSDP2 gathers shards collectively even though only rank 0 writes them.
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_state_options(cpu_offload=True))
    if rank == 0:
        save_file({k: v.detach().contiguous().cpu() for k, v in model_sd.items()}, str(folder / "model.safetensors"))
        torch.save(optim_sd, folder / "optimizer.pt")
        if ema is not None:
            save_file(
                {f"p{i}": p.detach().contiguous().cpu() for i, p in enumerate(ema.shadow_params)},
                str(folder / "ema.safetensors"),
            )
        state = {
            "step": step,
            "lr_scheduler": lr_scheduler.state_dict(),
            "signature": signature,
            "loss_history": history,
            **extra,
        }
        (folder / STATE_FILE).write_text(json.dumps(state, default=float))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, folder / f"rank-{rank}.rng.pt")
    (folder / f"rank-{rank}.json").write_text(
        json.dumps({"positions": {str(k): list(v) for k, v in positions.items()}, "python_rng": random.getstate()})
    )


def load_checkpoint(
    folder: Path, *, rank: int, model, optimizer, lr_scheduler, ema, signature: dict[str, Any]
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler, EMA and this rank's RNG; returns the trainer state plus every
    rank's data ``positions`` (reader -> (epoch, position)): a run resumed with other workers needs them all.
    CheckpointMismatch names the folder when the model shape differs."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_state_dict

    state = json.loads((folder / STATE_FILE).read_text())
    if state.get("signature") != signature:
        raise CheckpointMismatch(
            f"checkpoint {folder} was written for a transformer with {state.get('signature')}, "
            f"but this run's transformer has {signature}; use a fresh --out or the same model"
        )
    model_sd = load_file(str(folder / "model.safetensors"))
    optim_sd = torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_sd,
        optim_state_dict=optim_sd,
        options=_state_options(cpu_offload=False),
    )
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    if ema is not None and (folder / "ema.safetensors").exists():
        saved = load_file(str(folder / "ema.safetensors"))
        for i, p in enumerate(ema.shadow_params):
            p.data.copy_(saved[f"p{i}"])
    state["positions"] = {}
    for rank_file in sorted(folder.glob("rank-*.json")):
        saved = json.loads(rank_file.read_text())["positions"]
        state["positions"].update({int(k): tuple(v) for k, v in saved.items()})
    mine = folder / f"rank-{rank}.json"
    if mine.exists():  # a checkpoint from a run with fewer workers has no RNG state for this rank
        own = json.loads(mine.read_text())
        py = own["python_rng"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        rng = torch.load(folder / f"rank-{rank}.rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return state

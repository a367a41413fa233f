"""The Ray Train job: TorchTrainer wiring, resource checks, checkpoints, the stage runner and its summary.

``run_training`` runs one stage (TPT on ``tpt/`` or P²FT on ``p2ft/``); ``run_progressive`` runs TPT and then P²FT
from TPT's exported weights. A rerun with the same ``out_dir`` resumes from that stage's latest checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ophora.training.config import TrainConfig, absolute_location, load_config
from ophora.training.data import DataError, detect_kind, find_shards
from ophora.training.data_geometry import model_geometry, resolve_geometry, with_geometry
from ophora.training.validation import validation_folder

STAGES = ("tpt", "p2ft")
SUMMARY_FILE = "summary.json"
EXPORT_DIR = "export"


class TrainingError(RuntimeError):
    """The job could not run or failed; the message says why (the worker's own error when there is one)."""


def check_resources(cfg: TrainConfig) -> None:
    """Fail at once, instead of waiting forever, when the cluster cannot place every worker."""
    import ray

    total = ray.cluster_resources()
    s = cfg.scaling
    need_cpu = s.num_workers * s.cpus_per_worker
    need_gpu = s.num_workers * s.gpus_per_worker if s.use_gpu else 0
    if need_cpu > total.get("CPU", 0) + 1e-9 or need_gpu > total.get("GPU", 0) + 1e-9:
        raise TrainingError(
            f"{s.num_workers} workers x ({s.cpus_per_worker} CPU, {s.gpus_per_worker if s.use_gpu else 0} GPU) need "
            f"{need_cpu:g} CPU / {need_gpu:g} GPU but the Ray cluster has {total.get('CPU', 0):g} CPU / "
            f"{total.get('GPU', 0):g} GPU; lower scaling.num_workers or scaling.cpus_per_worker"
        )


def ray_storage(location: str) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for Ray Train. A local folder goes as it is; a URL (s3://, gs://, ...)
    goes through the same fsspec filesystem as every other Ophora path (credentials, endpoint and options from the
    environment, e.g. AWS_ENDPOINT_URL), wrapped for pyarrow: left to itself, Ray would open it with pyarrow's own
    S3 client, which reads a different set of settings."""
    if "://" not in location or location.startswith("file://"):
        return location, None
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = fsspec.core.url_to_fs(location)
    return path, PyFileSystem(FSSpecHandler(fs))


def _checkpoint_uri(path: str, storage_fs: Any) -> str:
    """A checkpoint's location as a user can pass it on: the URL for object storage, else the local path."""
    if storage_fs is None:
        return path
    protocol = storage_fs.handler.fs.protocol
    return f"{protocol if isinstance(protocol, str) else protocol[0]}://{path}"


def _root_cause(err: BaseException) -> str:
    failures = getattr(err, "worker_failures", None)
    if failures:
        rank, exc = sorted(failures.items())[0]
        return f"worker {rank}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
    return f"{type(err).__name__}: {err}"


def run_training(
    config: TrainConfig | str | Path,
    shards_root: str | Path,
    out_dir: str | Path,
    stage: str,
    init_from: str | Path | None = None,
    record_keys: bool = False,
) -> dict[str, Any]:
    """Train one stage on ``<shards_root>/<stage>/`` and export to ``<out_dir>/export``; returns the summary.

    ``init_from`` (a diffusers folder, e.g. the TPT export) replaces ``config.model`` as the starting weights.
    ``record_keys`` writes ``<out_dir>/keys/<stage>/rank-<r>.jsonl`` (which clips each worker trained on).
    The summary is also written to ``<out_dir>/summary.json``."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from ophora.ray_session import connect
    from ophora.training.loop import train_worker

    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    if stage not in STAGES:
        raise TrainingError(f"unknown stage {stage!r}; choose one of {STAGES}")
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    shards = find_shards(absolute_location(str(shards_root)), stage)
    kind = detect_kind(shards) if cfg.data.kind == "auto" else cfg.data.kind
    source = absolute_location(str(init_from or cfg.model))
    geometry = resolve_geometry(cfg.data, shards, kind, model_geometry(source))
    cfg = cfg.model_copy(update={"data": with_geometry(cfg.data, geometry)})
    connect()
    if cfg.scaling.check_resources:
        check_resources(cfg)

    s = cfg.scaling
    backend = s.backend if s.backend != "auto" else ("nccl" if s.use_gpu else "gloo")
    per_worker = {"CPU": s.cpus_per_worker, **({"GPU": s.gpus_per_worker} if s.use_gpu else {})}
    storage, storage_fs = ray_storage(cfg.storage_path or str(out / "ray"))
    job = {
        "config": cfg.model_dump(mode="json"),
        "geometry": geometry.as_dict(),
        "shards": shards,
        "kind": kind,
        "source": source,
        "out_dir": str(out),
        "stage": stage,
        "record_keys": record_keys,
    }
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=job,
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=per_worker),
        run_config=RunConfig(
            name=f"ophora-{stage}",
            storage_path=storage,
            storage_filesystem=storage_fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoints_to_keep),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
        ),
    )
    started = time.time()
    try:
        result = trainer.fit()
    except Exception as e:  # noqa: BLE001 - Ray wraps worker errors; surface the worker's own message
        raise TrainingError(f"{stage} training failed: {_root_cause(e)}") from e
    if result.error is not None:
        raise TrainingError(f"{stage} training failed: {_root_cause(result.error)}")
    m = dict(result.metrics or {})
    history = m.pop("loss_history", [])
    summary = {
        "stage": stage,
        "model": source,
        "shards": len(shards),
        "kind": kind,
        "steps": m.get("step"),
        "max_steps": cfg.max_steps,
        "global_batch": cfg.global_batch,
        "loss_first": history[0] if history else None,
        "loss_last": m.get("loss"),
        "loss_history": history,
        "lr_last": m.get("lr"),
        "samples_per_s": m.get("samples_per_s"),
        "step_time_s": m.get("step_time_s"),
        "data_wait_s": m.get("data_wait_s"),
        "compute_s": m.get("compute_s"),
        "memory_mb": m.get("memory_mb"),
        "bad_samples": m.get("bad_samples"),
        "bad_shards": m.get("bad_shards"),
        "resumed_from_step": m.get("resumed_from_step"),
        "wall_s": round(time.time() - started, 2),
        "checkpoint": _checkpoint_uri(result.checkpoint.path, storage_fs) if result.checkpoint else None,
        "export": str(out / EXPORT_DIR),
        "tensorboard": str(out / "tensorboard" / stage),
        "lora": bool(cfg.lora.rank),
        "workers": s.num_workers,
        "readers": m.get("readers"),
        "torch_threads": m.get("torch_threads"),
        "geometry": geometry.describe(),
        "mixed_precision": cfg.mixed_precision,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "skipped_steps": m.get("skipped_steps"),
        "validation_dir": str(validation_folder(out, stage)) if cfg.validation.every else None,
        "validation_step": m.get("validation_step"),
        "validation_clip_score": m.get("validation_clip_score"),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return summary


def run_progressive(
    tpt_config: TrainConfig | str | Path,
    p2ft_config: TrainConfig | str | Path,
    shards_root: str | Path,
    out_dir: str | Path,
    record_keys: bool = False,
) -> dict[str, Any]:
    """TPT on ``tpt/`` into ``<out_dir>/tpt``, then P²FT on ``p2ft/`` into ``<out_dir>/p2ft`` starting from
    TPT's exported weights. Returns ``{"tpt": summary, "p2ft": summary}`` (also written to summary.json)."""
    out = Path(out_dir).expanduser().resolve()
    find_shards(absolute_location(str(shards_root)), "p2ft")  # fail before hours of TPT when P²FT has nothing to read
    tpt = run_training(tpt_config, shards_root, out / "tpt", "tpt", record_keys=record_keys)
    p2ft = run_training(
        p2ft_config, shards_root, out / "p2ft", "p2ft", init_from=tpt["export"], record_keys=record_keys
    )
    both = {"tpt": tpt, "p2ft": p2ft}
    (out / SUMMARY_FILE).write_text(json.dumps(both, indent=2, default=str))
    return both


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (field, value) rows for a human table (loss history left out)."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return [(k, fmt(v)) for k, v in summary.items() if k != "loss_history"]


__all__ = ["run_training", "run_progressive", "check_resources", "summary_rows", "TrainingError", "DataError"]

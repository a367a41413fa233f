"""Sample videos from instructions: plan (prompt x video -> seed), render locally or on a Ray actor pool (one
actor per GPU), write mp4 + sidecar json, a JSONL manifest, a summary and an HTML gallery.

Output layout under ``out_dir``::

    videos/<prompt id>_v<NN>.mp4   H.264 yuv420p, exactly ``frames`` frames at ``fps``
    videos/<prompt id>_v<NN>.json  prompt, phase, seed, settings, model, seconds (what the gallery and
                                   ``ophora evaluate`` read)
    manifest.jsonl                 one row per video, and one per prompt refused (empty / too long)
    summary.json                   settings, counts, problems, timings
    gallery/index.html             the videos with their prompts

Seeds: video ``j`` of the ``i``-th prompt (0-based, file order) gets ``seed + i * num_videos_per_prompt + j``,
or ``prompt.seed + j`` when the prompt file gives a seed. The same seed gives the same video.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ophora.clip_geometry import COGVIDEOX
from ophora.inference.pipeline import SamplingSettings, load_tokenizer, text_token_limit
from ophora.inference.prompts import Prompt, as_prompts, check_prompt

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
VIDEOS = "videos"
GALLERY = "gallery"


@dataclass
class VideoJob:
    """One video to render: which prompt, which of its videos, which seed, and the file stem to write."""

    prompt_id: str
    text: str
    phase: str | None
    video_index: int
    seed: int
    stem: str


def plan_videos(
    prompts: list[Prompt], seed: int, num_videos_per_prompt: int, tokenizer: Any, max_tokens: int
) -> tuple[list[VideoJob], list[dict[str, Any]]]:
    """The videos to render and the prompts refused (each with its reason), in prompt order."""
    if num_videos_per_prompt < 1:
        raise ValueError("num_videos_per_prompt must be at least 1")
    jobs, refused = [], []
    for i, prompt in enumerate(prompts):
        problem = check_prompt(prompt, tokenizer, max_tokens)
        if problem:
            refused.append(
                {
                    "status": "refused",
                    "prompt_id": prompt.id,
                    "prompt": prompt.text,
                    "phase": prompt.phase,
                    "problem": problem,
                }
            )
            continue
        base = prompt.seed if prompt.seed is not None else seed + i * num_videos_per_prompt
        for j in range(num_videos_per_prompt):
            jobs.append(VideoJob(prompt.id, prompt.text, prompt.phase, j, base + j, f"{prompt.id}_v{j:02d}"))
    return jobs, refused


class SampleWorker:
    """Holds one loaded pipeline and renders jobs to mp4 bytes. Used as is for local runs and wrapped as a
    Ray actor (one per GPU) for distributed runs; returning bytes means workers need no shared filesystem."""

    def __init__(self, model: str, settings: SamplingSettings, lora: str | None = None):
        from ophora.inference.pipeline import load_pipeline

        t0 = time.perf_counter()
        self.settings = settings
        self.pipe = load_pipeline(model, settings, lora=lora)
        self.load_seconds = time.perf_counter() - t0

    def render(self, job: VideoJob) -> tuple[VideoJob, bytes | None, dict[str, Any]]:
        """(job, mp4 bytes or None, facts: seconds, device, error)."""
        import socket

        from ophora.inference.pipeline import render
        from ophora.inference.video_io import encode_mp4

        facts: dict[str, Any] = {"host": socket.gethostname(), "device": str(self.pipe._execution_device)}
        t0 = time.perf_counter()
        try:
            frames = render(self.pipe, job.text, job.seed, self.settings)
            facts["render_seconds"] = round(time.perf_counter() - t0, 4)
            with tempfile.TemporaryDirectory() as tmp:
                path = encode_mp4(frames, Path(tmp) / "video.mp4", self.settings.fps)
                data = path.read_bytes()
            facts["encode_seconds"] = round(time.perf_counter() - t0 - facts["render_seconds"], 4)
            return job, data, facts
        except Exception as e:  # one failed video is reported in the manifest; the run goes on
            facts["error"] = f"{type(e).__name__}: {e}"
            return job, None, facts


def _local_results(
    model: str, settings: SamplingSettings, lora: str | None, jobs: list[VideoJob]
) -> Iterator[tuple[VideoJob, bytes | None, dict[str, Any]]]:
    worker = SampleWorker(model, settings, lora)
    for job in jobs:
        yield worker.render(job)


def _ray_results(
    model: str,
    settings: SamplingSettings,
    lora: str | None,
    jobs: list[VideoJob],
    num_workers: int | None,
    cpus_per_worker: float,
) -> Iterator[tuple[VideoJob, bytes | None, dict]]:
    """Jobs spread over an actor pool: one actor per GPU when the cluster has GPUs, else CPU actors."""
    import ray
    from ray.util import ActorPool

    from ophora.ray_session import connect

    connect()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    count = num_workers or max(gpus, 1)
    if gpus:
        count = min(count, gpus)
    actor = ray.remote(num_gpus=1 if gpus else 0, num_cpus=cpus_per_worker)(SampleWorker)
    actors = [actor.remote(model, settings, lora) for _ in range(min(count, len(jobs)) or 1)]
    try:
        yield from ActorPool(actors).map_unordered(lambda a, job: a.render.remote(job), jobs)
    finally:
        for a in actors:
            ray.kill(a)


def sample_videos(
    model: str | Path,
    prompts: str | Path | Iterable[str | Prompt],
    out_dir: str | Path,
    *,
    lora: str | Path | None = None,
    seed: int = 0,
    num_videos_per_prompt: int = 1,
    steps: int = 50,
    frames: int = COGVIDEOX.num_frames,
    height: int = COGVIDEOX.height,
    width: int = COGVIDEOX.width,
    fps: float = COGVIDEOX.fps,
    guidance: float = 6.0,
    dynamic_cfg: bool = True,
    scheduler: str = "dpm",
    dtype: str = "auto",
    device: str = "auto",
    vae_slicing: bool = True,
    vae_tiling: bool = False,
    cpu_offload: str = "none",
    compile: bool = False,
    lora_scale: float = 1.0,
    max_sequence_length: int = 226,
    use_ray: bool = False,
    num_workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gallery: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Render every prompt ``num_videos_per_prompt`` times and write the layout described in this module.

    ``prompts`` is a prompt file, a bundled set name (``cataract-phases``), one text, or a list of texts or
    Prompts. Refused prompts and failed videos are counted and listed in the summary, never raised. Returns
    the summary dict (also written to ``summary.json``)."""
    t_start = time.perf_counter()
    settings = SamplingSettings(
        steps=steps,
        frames=frames,
        height=height,
        width=width,
        fps=fps,
        guidance=guidance,
        dynamic_cfg=dynamic_cfg,
        scheduler=scheduler,
        max_sequence_length=max_sequence_length,
        dtype=dtype,
        device=device,
        vae_slicing=vae_slicing,
        vae_tiling=vae_tiling,
        cpu_offload=cpu_offload,
        compile=compile,
        lora_scale=lora_scale,
    )
    out = Path(out_dir)
    (out / VIDEOS).mkdir(parents=True, exist_ok=True)
    prompt_list = as_prompts(prompts)
    tokenizer = load_tokenizer(model)
    max_tokens = text_token_limit(tokenizer, max_sequence_length)
    jobs, refused = plan_videos(prompt_list, seed, num_videos_per_prompt, tokenizer, max_tokens)
    common = {"model": str(model), "lora": str(lora) if lora else None, "settings": settings.as_dict()}
    rows: list[dict[str, Any]] = list(refused)
    with open(out / MANIFEST, "w", encoding="utf-8") as manifest:
        for row in refused:
            manifest.write(json.dumps(row) + "\n")
        if jobs:
            results = (
                _ray_results(str(model), settings, str(lora) if lora else None, jobs, num_workers, cpus_per_worker)
                if use_ray
                else _local_results(str(model), settings, str(lora) if lora else None, jobs)
            )
            for row in _write_results(results, out, common, len(jobs), progress):
                rows.append(row)
                manifest.write(json.dumps(row) + "\n")
                manifest.flush()
    summary = _summary(rows, prompt_list, common, out, time.perf_counter() - t_start, use_ray)
    if gallery and summary["videos"]:
        summary["gallery"] = write_gallery(out)
    (out / SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _write_results(
    results: Iterable[tuple[VideoJob, bytes | None, dict[str, Any]]],
    out: Path,
    common: dict[str, Any],
    total: int,
    progress: bool,
) -> Iterator[dict[str, Any]]:
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("sampling", total=total)
        for job, data, facts in results:
            row = {
                "status": "ok" if data is not None else "failed",
                "prompt_id": job.prompt_id,
                "prompt": job.text,
                "phase": job.phase,
                "video_index": job.video_index,
                "seed": job.seed,
                **{k: v for k, v in facts.items() if k != "error"},
            }
            if data is None:
                row["problem"] = facts.get("error", "unknown error")
            else:
                mp4 = out / VIDEOS / f"{job.stem}.mp4"
                mp4.write_bytes(data)
                row["file"] = f"{VIDEOS}/{mp4.name}"
                sidecar = {
                    **row,
                    "model": common["model"],
                    "lora": common["lora"],
                    "steps": common["settings"]["steps"],
                    "guidance": common["settings"]["guidance"],
                    "settings": common["settings"],
                }
                mp4.with_suffix(".json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
            bar.advance(task)
            yield row


def _summary(
    rows: list[dict[str, Any]], prompts: list[Prompt], common: dict[str, Any], out: Path, seconds: float, use_ray: bool
) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    render = [r["render_seconds"] for r in ok if "render_seconds" in r]
    return {
        **common,
        "out_dir": str(out),
        "manifest": str(out / MANIFEST),
        "mode": "ray" if use_ray else "local",
        "prompts": len(prompts),
        "videos": len(ok),
        "refused": sum(r["status"] == "refused" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "problems": [f"{r['prompt_id']}: {r['problem']}" for r in rows if r["status"] != "ok"],
        "seconds_total": round(seconds, 3),
        "seconds_per_video": round(sum(render) / len(render), 4) if render else None,
    }


def write_gallery(out_dir: str | Path, title: str = "Ophora generated videos") -> str:
    """The HTML gallery of ``out_dir/videos`` (prompt, phase and seed on every card); returns its index page."""
    from ophora.inspection.gallery import build_gallery, folder_items

    out = Path(out_dir)
    result = build_gallery(folder_items(out / VIDEOS), out / GALLERY, title=title, copy_videos=True)
    return str(result.pages[0])


def read_manifest(out_dir: str | Path) -> list[dict[str, Any]]:
    """The manifest rows of a sampling run, in the order they were written."""
    path = Path(out_dir) / MANIFEST
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = ["SamplingSettings", "VideoJob", "plan_videos", "read_manifest", "sample_videos", "write_gallery"]

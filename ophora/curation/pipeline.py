"""The curate job: every stage wired into one streaming Ray Data graph, and the driver's bookkeeping.

Graph: sources -> probe -> transcribe -> scenes -> windows (1 -> many, flat_map; narration aligned here) ->
dynamics -> quality -> privacy -> refine -> dedup (signatures, then a run-wide grouping) -> clip -> write -> records.
The visual filters run before refine so that a window they drop costs no LLM call; dedup runs after refine so that
the window it keeps from a group of near duplicates is one every other stage accepted (the kept one is never lost
later); everything runs before the clip transcode. Rows carry paths and small facts; only the clip stage on
carries mp4 bytes (one clip each), so memory stays bounded whatever the corpus size. Dedup is the one barrier: no
window reaches clip before every window has its signature (that is what "near duplicates across the run" costs);
the rows it holds are small. A stage that loads something runs as an actor pool whose CPUs, GPUs, pool size, batch
size and restart policy come from ``config.resources.<stage>``; dead actors are restarted and their calls retried.
A stage that holds nothing (``holds_model = False``: probe, windows, write) runs as Ray tasks in pooled workers with
the same resources (pool size = tasks at once), which saves an actor process start-up (~3 CPU-s) per stage.

The driver consumes the write stage's small records. When every window of a source is accounted for, it writes
the source's index file, removes any shard of that source no record names (a retried write's first attempt),
and appends the source's ledger row (``bookkeeping.py``). See resume.py for what a rerun cleans and skips.

Adding a stage: one file in ``stages/`` and one line in :data:`ophora.curation.stages.STAGES` (the protocol:
:mod:`ophora.curation.stages.base`); the graph, the config and ``skip`` follow from it.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from typing import Any

from ophora.curation.bookkeeping import Bookkeeper, SourceTally, footage_summary
from ophora.curation.config import CurateConfig
from ophora.curation.inputs import InputError, SourceInput, discover
from ophora.curation.out_lock import OutLock
from ophora.curation.resume import prepare_out
from ophora.curation.stages import STAGES
from ophora.curation.stages.base import RunFacts
from ophora.curation.stages.common import new_row
from ophora.curation.stages.privacy import NOT_EXAMINED, p2ft_verdict
from ophora.dataset.ledger import reason_category
from ophora.dataset.shards import SUMMARY_FILE
from ophora.ray_session import connect

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "Bookkeeper",
    "SourceTally",
    "StageStartError",
    "build_dataset",
    "footage_summary",
    "run_curation",
]

log = logging.getLogger("ophora.curate")


def _call_stage(item, stage: type, config: CurateConfig, run: RunFacts):
    """A stage that holds nothing, built for one Ray task's call on a batch (or a row, for a flat_map)."""
    return stage(config, run)(item)


EXIT_OK, EXIT_FAILED = 0, 1


class StageStartError(RuntimeError):
    """A stage could not start (most often its model could not be loaded): the run stops, nothing is lost, and a
    rerun with a fixed config resumes."""


def _actor_init_failure(error: BaseException) -> BaseException | None:
    """The Ray actor-init failure (``ActorDiedError.actor_init_failed``) somewhere in ``error``'s causes."""
    stack, seen = [error], set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if getattr(e, "actor_init_failed", False):
            return e
        stack += [c for c in (getattr(e, "cause", None), e.__cause__, e.__context__) if isinstance(c, BaseException)]
    return None


def _stage_start_failure(error: BaseException) -> StageStartError | None:
    """The StageStartError an error from the streaming run stands for, or None when it is something else."""
    died = _actor_init_failure(error)
    if died is None:
        return None
    text = str(died)
    lines = [ln.strip() for ln in text.split("creation task", 1)[-1].lstrip(", ").splitlines() if ln.strip()]
    cause = next((ln for ln in reversed(lines) if ln[:1].isupper() and ":" in ln), lines[0] if lines else text)
    stage = next((cls.name for cls in STAGES if f"({cls.__name__})" in f"{error}{text}"), "a")
    return StageStartError(f"the {stage} stage could not start: {cause[:600]}")


def build_dataset(config: CurateConfig, sources: list[SourceInput], out: str):
    """The lazy Ray Data graph for ``sources``; iterating it runs the job and yields write records."""
    import ray.data

    items = [
        new_row(source_uri=s.uri, sidecars_json=json.dumps(s.sidecars, sort_keys=True), reject=s.reject)
        for s in sources
    ]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 10_000)))
    run = config.run_facts(out)
    for stage in STAGES:
        if not run.runs(stage.name):
            continue
        res = config.resources.for_stage(stage.name)
        remote: dict[str, Any] = {"num_cpus": res.num_cpus}
        if res.num_gpus:
            remote["num_gpus"] = res.num_gpus
        if res.memory_mb:
            remote["memory"] = res.memory_mb * 2**20
        flat = stage.kind == "flat_map"
        batches = {} if flat else {"batch_size": res.batch_size, "batch_format": "pyarrow"}
        apply = ds.flat_map if flat else ds.map_batches
        with warnings.catch_warnings():  # retry and restart policies have no named parameter yet
            warnings.simplefilter("ignore", DeprecationWarning)
            if stage.holds_model:
                pool = ray.data.ActorPoolStrategy(min_size=res.concurrency[0], max_size=res.concurrency[1])
                ds = apply(
                    stage,
                    fn_constructor_args=(config, run),
                    compute=pool,
                    max_restarts=res.max_restarts,
                    max_task_retries=res.max_task_retries,
                    **batches,
                    **remote,
                )
            else:
                ds = apply(
                    _call_stage,
                    fn_kwargs={"stage": stage, "config": config, "run": run},
                    compute=ray.data.TaskPoolStrategy(size=res.concurrency[1]),
                    max_retries=res.max_task_retries,
                    **batches,
                    **remote,
                )
        if stage.kind == "barrier":
            ds = stage.barrier(ds, config, res)
    return ds


def run_curation(
    config: CurateConfig,
    inputs: list[str],
    out: str,
    address: str | None = None,
    force: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Curate ``inputs`` into ``out`` (shards, index, ledger, summary.json); returns the summary.

    Starts an embedded Ray unless one is initialised or ``address`` names a cluster. Sources already settled in
    ``out``'s ledger are skipped unless ``force``. Raises InputError for inputs that name nothing; a bad video
    never raises, it ends in the ledger; StageStartError when a stage cannot load its model; OutLocked when another
    run is writing ``out``. ``summary["exit_code"]`` is 0, or 1 when some source failed."""
    started = time.time()
    sources, repeated = discover(inputs)
    if not sources:
        raise InputError(f"no video found in {', '.join(inputs)}")
    with OutLock(out, config.lock_stale_s):  # another run on this OUT would clean our shards as its leftovers
        return _curate(config, sources, repeated, out, address, force, quiet, started)


def _curate(
    config: CurateConfig,
    sources: list[SourceInput],
    repeated: list[str],
    out: str,
    address: str | None,
    force: bool,
    quiet: bool,
    started: float,
) -> dict[str, Any]:
    state = prepare_out(out, force)
    pending = [s for s in sources if s.uri not in state.settled_uris]
    if config.limit:
        pending = pending[: config.limit]
    book = Bookkeeper(out, state, len(pending), quiet, config.progress_every_s, config.input_cache_dir)
    if pending:
        connect(address, log_to_driver=not quiet)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = not quiet
        ctx.max_errored_blocks = config.max_errored_blocks
        if quiet:  # Ray Data's hints about memory and stragglers are for people watching a run
            ctx.issue_detectors_config.detectors = []
        try:
            for rec in build_dataset(config, pending, out).iter_rows():
                book.add(rec)
        except Exception as e:
            book.flush()  # sources settled so far stay settled
            failure = _stage_start_failure(e)
            if failure is None:
                raise
            raise failure from None
        for s in pending:  # rows lost with a block that failed past its retries still end in the ledger
            if s.uri not in book.finished:
                book.finish(
                    book.tallies.pop(s.uri, SourceTally(s.uri)),
                    lost="pipeline: lost in a worker failure (retried on resume)",
                )
    book.flush()
    wall = time.time() - started
    summary = {
        "out": out,
        "inputs": len(sources),
        "repeated_inputs": repeated,
        "skipped_settled": len(sources) - len([s for s in sources if s.uri not in state.settled_uris]),
        "processed": len(pending),
        "done": book.status["done"],
        "rejected": book.status["rejected"],
        "failed": book.status["failed"],
        "clips_written": book.clips,
        "clips_by_subset": dict(book.subsets),
        "clips_dropped": sum(book.drops.values()),
        "drops": dict(book.drops),
        "reasons": dict(book.reasons),
        "kept_out_of_p2ft": dict(book.p2ft),
        "phi_scrubbed": dict(book.phi),
        "p2ft_verdict": p2ft_verdict(config.runs("privacy"), book.p2ft[reason_category(f"write: {NOT_EXAMINED}")]),
        "footage": footage_summary(book.footage),
        "stages": [s.name for s in STAGES if config.runs(s.name)],
        "leftovers_removed": len(state.removed),
        "source_seconds": round(book.source_seconds, 3),
        "wall_seconds": round(wall, 3),
        "clips_per_second": round(book.clips / wall, 4) if wall else 0.0,
        "source_seconds_per_second": round(book.source_seconds / wall, 4) if wall else 0.0,
        "exit_code": EXIT_FAILED if book.status["failed"] else EXIT_OK,
    }
    import fsspec

    with fsspec.open(f"{out.rstrip('/')}/{SUMMARY_FILE}", "w") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
    return summary

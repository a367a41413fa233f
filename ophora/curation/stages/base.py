"""The one stage protocol: what a curation stage declares and what it is given.

A stage is a class in ``stages/`` that declares, as class attributes:

- ``name``: its name in ``skip``, ``resources`` and the ledger's reasons;
- ``sections``: the config sections it owns, ``{section name: pydantic model}`` (its own first; the curate config
  is assembled from every stage's sections, :mod:`ophora.curation.config`), and ``reads``: sections of other
  stages it reads (the clip stage reads the window geometry);
- ``resources``: its default scheduling (:class:`StageResources`, overridable as ``resources.<name>``);
- ``kind``: ``map`` (batches in, batches out), ``flat_map`` (one row in, many out: the window split) or ``barrier``
  (a map, then :meth:`Stage.barrier` over the whole dataset: dedup's run-wide grouping);
- ``holds_model``: True when it loads a model or tool once (an actor pool), False when it holds nothing (Ray tasks in
  pooled workers, no actor start-up);
- ``optional``: whether a run may leave it out (``skip``).

It is built as ``Stage(config, run)``: ``config`` is the whole curate config, its own section, a dict of that
section's fields, or None (defaults); ``run`` carries the run-wide facts (:class:`RunFacts`: OUT, the input cache,
which stages run, the models map) as explicit arguments. :meth:`Stage.setup` loads what the stage needs, once per
actor. Adding a stage: one file here and one line in :data:`ophora.curation.stages.STAGES`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

S = TypeVar("S", bound=BaseModel)


class StageResources(BaseModel):
    """How Ray schedules one stage."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(0.5, ge=0, description="logical CPUs per actor (fractional on small machines)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor")
    concurrency: tuple[int, int] = Field(
        (1, 1),
        description="actor pool size (min, max); for a stage that holds "
        "nothing (probe, windows, write: Ray tasks), max is "
        "the tasks at once",
    )
    batch_size: int = Field(1, gt=0, description="rows per call")
    memory_mb: int = Field(
        0,
        ge=0,
        description="memory Ray reserves per actor (0: none); a stage that holds a "
        "model says how much, so no node gets more actors than fit",
    )
    max_restarts: int = Field(3, ge=-1, description="times a dead actor is restarted (-1: forever)")
    max_task_retries: int = Field(3, ge=-1, description="times a call on a dead actor is retried (-1: forever)")

    @model_validator(mode="before")
    @classmethod
    def _int_concurrency(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("concurrency"), int):
            data = {**data, "concurrency": (data["concurrency"], data["concurrency"])}
        return data


def stage_resources(cpus: float, conc: tuple[int, int], batch: int = 1, memory_mb: int = 0) -> StageResources:
    """A stage's default resources, briefly."""
    return StageResources(num_cpus=cpus, concurrency=conc, batch_size=batch, memory_mb=memory_mb)


def default_cache_dir() -> str:
    """Where remote inputs are downloaded on a node when the config names no ``cache_dir``."""
    return os.path.join(tempfile.gettempdir(), "ophora-input-cache")


@dataclass(frozen=True)
class RunFacts:
    """What a stage knows about its run besides its sections."""

    out: str = ""  # the run's OUT (the writer writes there)
    cache_dir: str = field(default_factory=default_cache_dir)  # where remote inputs are downloaded
    skipped: frozenset[str] = frozenset()  # stages this run leaves out
    models: dict[str, str] = field(default_factory=dict)  # stage -> model id or local path (``models``)

    def runs(self, stage: str) -> bool:
        return stage not in self.skipped

    @classmethod
    def of(cls, config: Any, out: str = "") -> RunFacts:
        """The facts a whole curate config states (defaults for a section, a dict or None)."""
        make = getattr(config, "run_facts", None)
        return make(out) if callable(make) else cls(out=out)


def config_section(config: Any, name: str, cls: type[S], own: bool = True) -> S:
    """The ``name`` section of a stage config: ``config`` is the whole curate config (attribute ``name``), the
    section itself, a dict (of sections, or of this section's fields when ``own``), or None (defaults)."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, dict):
        value = config.get(name, config if own else None)
    else:
        value = getattr(config, name, None)
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return cls.model_validate(value)


class Stage:
    """Base of every curation stage (see the module docstring)."""

    name: ClassVar[str] = "stage"
    kind: ClassVar[Literal["map", "flat_map", "barrier"]] = "map"
    level: ClassVar[Literal["source", "window"]] = "window"
    sections: ClassVar[dict[str, type[BaseModel]]] = {}
    reads: ClassVar[dict[str, type[BaseModel]]] = {}
    resources: ClassVar[StageResources] = StageResources()
    holds_model: ClassVar[bool] = True
    optional: ClassVar[bool] = False

    def __init__(self, config: Any = None, run: RunFacts | None = None):
        self.run = run or RunFacts.of(config)
        self.conf: dict[str, BaseModel] = {
            n: config_section(config, n, m, own=(n == self.name)) for n, m in self.sections.items()
        }
        self.conf.update({n: config_section(config, n, m, own=False) for n, m in self.reads.items()})
        self.cfg: Any = self.conf.get(self.name)
        self.setup()

    def setup(self) -> None:
        """Load what the stage holds (models, tools): once per actor, after the sections are set."""

    @classmethod
    def barrier(cls, ds: Any, config: Any, res: StageResources) -> Any:  # pragma: no cover - barrier stages override
        """A barrier stage's run-wide step over the whole (lazy) Ray dataset that its map produced."""
        raise NotImplementedError

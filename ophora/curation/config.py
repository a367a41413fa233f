"""The curate job's configuration: one YAML file -> one pydantic model (:class:`CurateConfig`), assembled from the
stage list: every stage brings its sections and its default resources (:mod:`ophora.curation.stages.base`).

Load it with :meth:`CurateConfig.load`: a bundled profile (``default`` or ``offline``, under ``profiles/``), then an
optional user YAML merged over it, then dotted overrides (``{"windows.fps": 8}``) merged over that. Every field
carries a description; ``ophora curate --print-config`` shows the effective result.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ophora.config import build, parse_override, read_mapping, to_yaml
from ophora.curation import DEFAULT_PROFILE
from ophora.curation.stages import STAGES
from ophora.curation.stages.base import RunFacts, StageResources, default_cache_dir

PROFILES = ("default", "offline")

# Stages a run may leave out (``skip``); the others always run.
OPTIONAL_STAGES = tuple(s.name for s in STAGES if s.optional)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Resources(_Section):
    """Per-stage scheduling: one entry per stage (``resources.<stage>``), defaults from the stage itself."""

    def for_stage(self, name: str) -> StageResources:
        """The resources of a stage."""
        return getattr(self, name)


class _CurateBase(_Section):
    """What the curate job needs besides the stages' sections (assembled into :class:`CurateConfig`)."""

    profile: str = Field(DEFAULT_PROFILE, description="the bundled profile this config started from")
    models: dict[str, str] = Field(
        default_factory=dict,
        description="stage -> model id or local path (transcribe, refine; "
        "phi: the PHI scrubber's spaCy pipeline, for every stage)",
    )

    @model_validator(mode="after")
    def _one_model_name(self):
        # models.<stage> names a stage's model; the section's own model field must not say something else
        for stage, model in self.models.items():
            section = getattr(self, stage, None)
            own = getattr(section, "model", None)
            default = type(section).model_fields["model"].default if own is not None else None
            if own and model and own != default and own != model:
                raise ValueError(f"models.{stage}={model!r} and {stage}.model={own!r} disagree: set one of them")
        return self

    @classmethod
    def load(cls, profile: str = DEFAULT_PROFILE, path: str | None = None, overrides: dict[str, Any] | None = None):
        """Bundled ``profile`` <- YAML at ``path`` <- dotted ``overrides``; raises ValueError naming the problem."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; bundled profiles: {', '.join(PROFILES)}")
        data = yaml.safe_load(resources.files("ophora.curation").joinpath(f"profiles/{profile}.yaml").read_text())
        user = read_mapping(path, "curate config") if path else {}
        return build(cls, dict(data or {}, profile=profile), user, overrides=overrides)

    @property
    def input_cache_dir(self) -> str:
        """Where stages download remote inputs on their node."""
        return self.cache_dir or default_cache_dir()

    def runs(self, stage: str) -> bool:
        """Whether ``stage`` is part of this run (only the OPTIONAL_STAGES can be skipped)."""
        return stage not in self.skip

    def run_facts(self, out: str = "") -> RunFacts:
        """The run-wide facts every stage is given (:class:`~ophora.curation.stages.base.RunFacts`)."""
        return RunFacts(out=out, cache_dir=self.input_cache_dir, skipped=frozenset(self.skip), models=dict(self.models))

    def to_yaml(self) -> str:
        return to_yaml(self)


class _RunFields(_Section):
    """The run-wide fields, after the stages' sections in the assembled config (and in ``--print-config``)."""

    resources: _Resources = Field(default_factory=_Resources, description="per-stage scheduling")
    skip: list[Literal[OPTIONAL_STAGES]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="optional stages to leave out. Without transcribe, clips keep an empty narration and "
        "instruction instead of being dropped for it; without refine, no instruction is written; "
        "without a filter, nothing it would drop or keep out of p2ft/ is",
    )
    cache_dir: str = Field("", description="where remote inputs are downloaded (empty: a temporary directory)")
    limit: int = Field(0, ge=0, description="process at most this many pending inputs (0 = all)")
    max_errored_blocks: int = Field(
        -1,
        description="Ray Data blocks allowed to fail after retries before the run aborts (-1: any); the "
        "sources they held end as failed in the ledger",
    )
    progress_every_s: float = Field(5.0, gt=0, description="seconds between 'sources done/total' lines")
    lock_stale_s: float = Field(
        120.0,
        gt=0,
        description="OUT's lock (one run per OUT) counts as abandoned when its heartbeat is older than this",
    )


def config_model(stages: list[type]) -> type[_CurateBase]:
    """The curate config model for a stage list: every stage's sections (with their docstrings as descriptions),
    a ``resources`` entry per stage with its defaults, ``skip`` over the optional ones, then the run-wide fields."""
    resources_model = create_model(
        "ResourcesConfig",
        __base__=_Resources,
        __module__=__name__,
        **{
            s.name: (
                StageResources,
                Field(
                    default_factory=s.resources.model_copy,
                    description=f"{s.name} ({'actors' if s.holds_model else 'Ray tasks'})",
                ),
            )
            for s in stages
        },
    )
    fields: dict[str, Any] = {}
    for stage in stages:
        for name, model in stage.sections.items():
            doc = (model.__doc__ or name).strip().splitlines()[0]
            fields[name] = (model, Field(default_factory=model, description=doc))
    run_fields = {name: (f.annotation, f) for name, f in _RunFields.model_fields.items()}
    run_fields["resources"] = (
        resources_model,
        Field(default_factory=resources_model, description=_RunFields.model_fields["resources"].description),
    )
    optional = tuple(s.name for s in stages if s.optional)
    run_fields["skip"] = (list[Literal[optional]], _RunFields.model_fields["skip"])  # type: ignore[valid-type]
    return create_model(
        "CurateConfig",
        __base__=_CurateBase,
        __module__=__name__,
        __doc__="Everything the curate job needs: one section per stage (from each stage's "
        "``sections``) and the run-wide fields.",
        **fields,
        **run_fields,
    )


CurateConfig = config_model(STAGES)
ResourcesConfig = CurateConfig.model_fields["resources"].annotation


__all__ = ["CurateConfig", "DEFAULT_PROFILE", "OPTIONAL_STAGES", "PROFILES", "ResourcesConfig", "parse_override"]

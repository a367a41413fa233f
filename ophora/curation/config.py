"""The curate job's configuration: one YAML file -> one pydantic model (:class:`CurateConfig`).

Load it with :meth:`CurateConfig.load`: a bundled profile (``default`` or ``offline``, under ``profiles/``), then an
optional user YAML merged over it, then dotted overrides (``{"windows.fps": 8}``) merged over that. Every field
carries a description; ``ophora curate --print-config`` shows the effective result.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ophora.curation.stages.align import AlignConfig
from ophora.curation.stages.dedup import DedupConfig
from ophora.curation.stages.dynamics import DynamicsConfig
from ophora.curation.stages.privacy import PrivacyConfig
from ophora.curation.stages.quality import QualityConfig
from ophora.curation.stages.refine import RefineConfig
from ophora.curation.stages.transcribe import TranscribeConfig

PROFILES = ("default", "offline")
# Stages a run may leave out (``skip``); probe, scenes, windows, clip and write always run.
OPTIONAL_STAGES = ("transcribe", "refine", "dynamics", "quality", "privacy", "dedup")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProbeConfig(_Section):
    min_duration: float = Field(2.0, gt=0, description="reject inputs shorter than this many seconds")
    min_width: int = Field(64, gt=0, description="reject inputs narrower than this (display pixels)")
    min_height: int = Field(64, gt=0, description="reject inputs lower than this (display pixels)")
    max_pixels: int = Field(3840 * 2160, gt=0,
                            description="reject frames larger than this many pixels (8K is refused by default: "
                                        "decoding it costs ~4x a 4K input for clips that are 720 wide anyway)")
    timeout_s: float = Field(120.0, gt=0, description="ffprobe time limit per input")


class ScenesConfig(_Section):
    detector: Literal["adaptive", "content"] = Field(
        "adaptive", description="PySceneDetect detector: AdaptiveDetector (robust to fast motion) or ContentDetector")
    adaptive_threshold: float = Field(3.0, gt=0, description="AdaptiveDetector: score ratio over the rolling mean")
    min_content_val: float = Field(15.0, ge=0, description="AdaptiveDetector: minimum content change for a cut")
    content_threshold: float = Field(27.0, gt=0, description="ContentDetector: content-change threshold")
    min_scene_len: float = Field(0.5, ge=0, description="minimum scene length in seconds")
    analysis_fps: float = Field(
        6.0, gt=0, description="frames per second fed to the detector; a low rate turns a dissolve into a few "
                               "large steps so it is found like a cut")
    dissolve_fps: float = Field(
        1.0, ge=0, description="rate of a second, slow ContentDetector pass that finds dissolves and fades "
                               "(a 1 s dissolve is one big step at 1 fps); 0 turns it off")
    dissolve_threshold: float = Field(15.0, gt=0, description="ContentDetector threshold of the dissolve pass (low: it "
                                                              "only proposes; the check decides)")
    verify: bool = Field(True, description="check every candidate boundary of both passes: keep it only when the "
                                           "colours after it cannot be had by moving the picture before it "
                                           "(instruments, flashes, fluid waves and focus pulls stay one scene)")
    change_threshold: float = Field(
        5.7, ge=0, description="the check's threshold: median chroma difference (|da*|+|db*|, CIELAB) left after "
                                "warping a frame before the candidate onto one after it by optical flow, lowest "
                                "over a few pairs; fitted on real surgical footage (benchmarks/bench_footage.py)")
    analysis_width: int = Field(160, ge=16, description="frames are downscaled to this width before detection")
    skip_unreferenced: bool = Field(
        True, description="do not decode frames no other frame references (most B-frames): ~35% less decode CPU; "
                          "a cut is still seen within a few source frames, well inside its boundary interval")
    timeout_s: float = Field(3600.0, gt=0, description="time limit for analysing one input")


class WindowsConfig(_Section):
    num_frames: int = Field(49, gt=0, description="frames per clip (the trainer's frame budget)")
    fps: float = Field(8.0, gt=0, description="frame rate of the clips")
    cut_margin: float = Field(0.25, ge=0, description="seconds kept clear of each scene boundary (cuts, dissolves)")
    max_windows_per_scene: int = Field(0, ge=0, description="cap on windows per scene (0 = no cap)")
    overlap: float = Field(
        0.5, ge=0, lt=1, description="a scene's rest after its whole windows gets one more window when that window "
                                     "shares at most this share of itself with the others (windows then spread "
                                     "evenly and overlap): a 12 s shot gives two 6.1 s clips sharing 0.6 s "
                                     "instead of one clip and a 5.6 s leftover; 0: windows never share frames")

    @property
    def duration(self) -> float:
        """Seconds of source one clip covers (49 frames at 8 fps = 6.125 s)."""
        return self.num_frames / self.fps


class ClipConfig(_Section):
    height: int = Field(480, gt=0, description="clip height (ignored with keep_native)")
    width: int = Field(720, gt=0, description="clip width (ignored with keep_native)")
    keep_native: bool = Field(False, description="keep the source's frame size instead of resize + centre crop")
    crf: int = Field(18, ge=0, le=51, description="libx264 constant rate factor")
    preset: str = Field("superfast", description="libx264 preset (superfast: ~30% less CPU than veryfast for "
                                                "~1.8x the bytes at the same crf)")
    group_windows: int = Field(8, ge=1, description="nearby windows of one source cut by one ffmpeg run, so the "
                                                    "source is decoded once for them (1: one run per window)")
    group_gap: float = Field(1.0, ge=0, description="windows further apart than this many seconds are not "
                                                    "grouped (the gap would be decoded for nothing; 1 s groups the "
                                                    "windows of a scene, which touch, at no extra decode)")
    timeout_s: float = Field(300.0, gt=0, description="ffmpeg time limit per clip")


class WriteConfig(_Section):
    max_count: int = Field(1000, gt=0, description="samples per shard at most")
    max_bytes: int = Field(1 << 30, gt=0, description="bytes per shard at most")


class StageResources(_Section):
    num_cpus: float = Field(0.5, ge=0, description="logical CPUs per actor (fractional on small machines)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per actor")
    concurrency: tuple[int, int] = Field((1, 1), description="actor pool size (min, max); for a stage that holds "
                                                             "nothing (probe, windows, write: Ray tasks), max is "
                                                             "the tasks at once")
    batch_size: int = Field(1, gt=0, description="rows per call")
    memory_mb: int = Field(0, ge=0, description="memory Ray reserves per actor (0: none); a stage that holds a "
                                                "model says how much, so no node gets more actors than fit")
    max_restarts: int = Field(3, ge=-1, description="times a dead actor is restarted (-1: forever)")
    max_task_retries: int = Field(3, ge=-1, description="times a call on a dead actor is retried (-1: forever)")

    @model_validator(mode="before")
    @classmethod
    def _int_concurrency(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("concurrency"), int):
            data = {**data, "concurrency": (data["concurrency"], data["concurrency"])}
        return data


def _res(cpus: float, conc: tuple[int, int], batch: int = 1, memory_mb: int = 0) -> StageResources:
    return StageResources(num_cpus=cpus, concurrency=conc, batch_size=batch, memory_mb=memory_mb)


class ResourcesConfig(_Section):
    """Per-stage scheduling. Stage names match ``pipeline.STAGES``; a later stage adds its own entry."""

    model_config = ConfigDict(extra="allow")

    # Logical CPUs are small so that every pool's first actor fits on a 2-core laptop with room for Ray Data's
    # own tasks (the pools together ask for 1.5 CPUs); on a cluster, raise num_cpus and the pool sizes.
    probe: StageResources = Field(default_factory=lambda: _res(0.1, (1, 1)), description="probe actors")
    transcribe: StageResources = Field(default_factory=lambda: _res(0.2, (1, 1), 1, 600),
                                       description="speech-recognition actors (give them num_gpus on a GPU node)")
    scenes: StageResources = Field(default_factory=lambda: _res(0.2, (1, 2)), description="scene-detection actors")
    windows: StageResources = Field(default_factory=lambda: _res(0.1, (1, 1)),
                                    description="window-split + narration-alignment actors")
    dynamics: StageResources = Field(default_factory=lambda: _res(0.1, (1, 2), 4), description="motion actors")
    quality: StageResources = Field(default_factory=lambda: _res(0.1, (1, 2), 4, 400),
                                    description="surgical-field/quality actors (num_gpus for open_clip on GPU)")
    privacy: StageResources = Field(default_factory=lambda: _res(0.1, (1, 2), 4, 500),
                                    description="OCR/face actors")
    dedup: StageResources = Field(default_factory=lambda: _res(0.1, (1, 1), 8),
                                  description="perceptual-hash actors (and the cross-run grouping's tasks)")
    refine: StageResources = Field(default_factory=lambda: _res(0.1, (1, 1), 16, 1600),
                                   description="instruction-writing actors (num_gpus for a local LLM on GPU)")
    clip: StageResources = Field(default_factory=lambda: _res(0.3, (1, 2), 8), description="clip-transcode actors")
    write: StageResources = Field(default_factory=lambda: _res(0.1, (1, 1), 64), description="shard-writer actors")

    def for_stage(self, name: str) -> StageResources:
        """The resources of a stage; a stage without an entry gets the defaults of StageResources."""
        value = getattr(self, name, None)
        if value is None:
            return StageResources()
        return value if isinstance(value, StageResources) else StageResources.model_validate(value)


class CurateConfig(_Section):
    """Everything the curate job needs, one section per stage."""

    profile: str = Field("default", description="the bundled profile this config started from")
    models: dict[str, str] = Field(default_factory=dict,
                                   description="stage -> model id or local path (later stages add entries)")
    probe: ProbeConfig = Field(default_factory=ProbeConfig, description="input checks (ffprobe)")
    scenes: ScenesConfig = Field(default_factory=ScenesConfig, description="scene detection (PySceneDetect)")
    windows: WindowsConfig = Field(default_factory=WindowsConfig, description="clip windows inside scenes")
    transcribe: TranscribeConfig = Field(default_factory=TranscribeConfig,
                                         description="narration: sidecar subtitles or faster-whisper")
    align: AlignConfig = Field(default_factory=AlignConfig, description="narration words -> clip windows")
    dynamics: DynamicsConfig = Field(default_factory=DynamicsConfig, description="motion filter (optical flow)")
    quality: QualityConfig = Field(default_factory=QualityConfig,
                                   description="surgical-field score (open_clip or heuristic), blur, exposure, borders")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="burned-in text, faces, overlays")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="near-duplicate windows across the run")
    refine: RefineConfig = Field(default_factory=RefineConfig, description="narration -> one instruction (LLM)")
    clip: ClipConfig = Field(default_factory=ClipConfig, description="clip transcoding (ffmpeg)")
    write: WriteConfig = Field(default_factory=WriteConfig, description="shard writing")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="per-stage scheduling")
    skip: list[Literal["transcribe", "refine", "dynamics", "quality", "privacy", "dedup"]] = Field(
        default_factory=list,
        description="optional stages to leave out. Without transcribe, clips keep an empty narration and "
                    "instruction instead of being dropped for it; without refine, no instruction is written; "
                    "without a filter, nothing it would drop or keep out of p2ft/ is")
    cache_dir: str = Field("", description="where remote inputs are downloaded (empty: a temporary directory)")
    limit: int = Field(0, ge=0, description="process at most this many pending inputs (0 = all)")
    max_errored_blocks: int = Field(
        -1, description="Ray Data blocks allowed to fail after retries before the run aborts (-1: any); the "
                        "sources they held end as failed in the ledger")
    progress_every_s: float = Field(5.0, gt=0, description="seconds between 'sources done/total' lines")
    lock_stale_s: float = Field(120.0, gt=0, description="OUT's lock (one run per OUT) counts as abandoned when its "
                                                         "heartbeat is older than this")

    @model_validator(mode="after")
    def _phi_model_for_align(self) -> "CurateConfig":
        # the windows stage hands align only its own section; the scrubber's model is models.phi for every stage
        if self.models.get("phi") and not self.align.phi_model:
            self.align.phi_model = self.models["phi"]
        return self

    @classmethod
    def load(cls, profile: str = "offline", path: str | None = None,
             overrides: dict[str, Any] | None = None) -> "CurateConfig":
        """Bundled ``profile`` <- YAML at ``path`` <- dotted ``overrides``; raises ValueError naming the problem."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; bundled profiles: {', '.join(PROFILES)}")
        data = yaml.safe_load(resources.files("ophora.curation").joinpath(f"profiles/{profile}.yaml").read_text())
        data = dict(data or {}, profile=profile)
        if path:
            try:
                user = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as e:  # yaml.safe_load: a tag never builds an object
                raise ValueError(f"{path}: not a YAML file ({' '.join(str(e).split())})") from None
            if not isinstance(user, dict):
                raise ValueError(f"{path}: a curate config must be a YAML mapping")
            data = _merge(data, user)
        for dotted, value in (overrides or {}).items():
            data = _merge(data, _nest(dotted.split("."), value))
        return cls.model_validate(data)

    @property
    def input_cache_dir(self) -> str:
        """Where stages download remote inputs on their node."""
        import tempfile

        return self.cache_dir or os.path.join(tempfile.gettempdir(), "ophora-input-cache")

    def runs(self, stage: str) -> bool:
        """Whether ``stage`` is part of this run (only the OPTIONAL_STAGES can be skipped)."""
        return stage not in self.skip

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    return {parts[0]: _nest(parts[1:], value) if len(parts) > 1 else value}


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``section.field=value`` -> (dotted key, YAML-parsed value); ValueError when there is no '='."""
    key, eq, raw = text.partition("=")
    if not eq or not key.strip():
        raise ValueError(f"override {text!r} is not KEY=VALUE (e.g. windows.fps=8)")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ValueError(f"override {text!r}: the value is not plain YAML ({' '.join(str(e).split())})") from None

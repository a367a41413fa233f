"""Shared fixtures: one local Ray per test session, one small synthetic corpus per session.

Everything is built in view here so a test reads like the promise it checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

ARTIFACTS = Path(os.environ.get("OPHORA_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files a person may want to look at (screenshots, summaries)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def ray_local():
    """One in-process local Ray for the whole session (2 logical CPUs, no dashboard, on loopback)."""
    import ray

    from ophora.ray_session import start_local

    if not ray.is_initialized():
        start_local(num_cpus=2, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """Three ~40 s synthetic narrated-surgery videos (seed 7) with ground truth under truth/."""
    from ophora.curation.synthetic import generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, videos=3, seed=7, minutes=40 / 60, max_height=480)
    return out


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory) -> str:
    """The name of a tiny open_clip architecture (32-d embeddings, 64 px input), registered for this session: with
    random weights it runs the real open_clip code path in a second on a CPU."""
    import json

    import open_clip

    d = tmp_path_factory.mktemp("clipcfg")
    (d / "ophora-tiny-test.json").write_text(json.dumps({
        "embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16,
                                        "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}))
    open_clip.add_model_config(d)
    return "ophora-tiny-test"


@pytest.fixture(scope="session")
def shard_root(tmp_path_factory) -> Path:
    """A small, real curation output (tests/fixtures/shards.py), read-only by convention: corrupt a ``copy_of`` it."""
    from tests.fixtures.shards import pristine_shards

    return pristine_shards(tmp_path_factory)

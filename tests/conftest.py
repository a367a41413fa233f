"""Fixtures tests in several folders use: one local Ray per test session, the artifacts folder.

Everything is built in view here so a test reads like the promise it checks. Fixtures only one folder uses are in
that folder's conftest.py (curation/: the synthetic corpus, a tiny open_clip; inspection/: a curation output).
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

"""The fixture the shard-inspection tests share: a small, real curation output (tests/fixtures/shards.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.shards import pristine_shards


@pytest.fixture(scope="session")
def shard_root(tmp_path_factory) -> Path:
    """The pristine fixture output (read-only by convention: corrupt a ``copy_of`` it)."""
    return pristine_shards(tmp_path_factory)

"""Fixtures the curation tests share: one small synthetic corpus per session, a tiny open_clip architecture."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """Three ~40 s synthetic narrated-surgery videos (seed 7) with ground truth under truth/."""
    from ophora.synthetic.corpus import generate_corpus

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
    (d / "ophora-tiny-test.json").write_text(
        json.dumps(
            {
                "embed_dim": 32,
                "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
            }
        )
    )
    open_clip.add_model_config(d)
    return "ophora-tiny-test"

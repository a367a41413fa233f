"""Hostile or broken configuration: `--set` values with YAML tags, broken or foreign `--config` files, and training
fields out of range. Documented: exit 2 with one line that names the problem; no object is ever built from a tag
(yaml.safe_load), and nothing runs."""

from __future__ import annotations

import pytest

from tests.fixtures.hostile import Listener, Sandbox, check, run

# A tag that would run a command if anything loaded it unsafely: it would create this file in the sandbox.
PWNED = "!!python/object/apply:os.system ['touch pwned']"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    box = Sandbox(tmp_path_factory.mktemp("hostile-configs"))
    listener = Listener()
    files = {
        "broken.yaml": "windows: [1,\n  fps",
        "list.yaml": "- a\n- b\n",
        "tagged.yaml": f"limit: {PWNED}\n",
        "binary.yaml": b"\xff\xfe\x00garbage",
        "unknown.yaml": "windows:\n  nonsense: 3\n",
        "train-tagged.yaml": f"model: x\nmax_steps: {PWNED}\n",
        "train-list.yaml": "[1, 2]\n",
    }
    for name, text in files.items():
        path = box.inputs / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (box.inputs / "v.mp4").write_bytes(b"never opened")
    yield box, listener
    listener.close()


CURATE = ["curate", "{inputs}/v.mp4", "--out", "{out}", "--profile", "offline"]
TRAIN = ["train", "run", "--stage", "tpt", "--shards", "{inputs}", "--out", "{out}", "--config", "tiny"]
CASES = [
    ("curate --set python tag", CURATE + ["--set", f"limit={PWNED}"], "not plain YAML"),
    ("curate --set without =", CURATE + ["--set", "windows.fps"], "is not KEY=VALUE"),
    ("curate --set negative fps", CURATE + ["--set", "windows.fps=-3"], "windows.fps: Input should be greater than 0"),
    ("curate --set unknown field", CURATE + ["--set", "windows.nonsense=1"], "windows.nonsense: Extra inputs"),
    ("curate --config broken YAML", CURATE + ["--config", "{inputs}/broken.yaml"], "not a YAML file"),
    ("curate --config a list", CURATE + ["--config", "{inputs}/list.yaml"], "must be a YAML mapping"),
    ("curate --config python tag", CURATE + ["--config", "{inputs}/tagged.yaml"], "not a YAML file"),
    ("curate --config binary", CURATE + ["--config", "{inputs}/binary.yaml"], "not a YAML file"),
    ("curate --config missing", CURATE + ["--config", "{inputs}/nowhere.yaml"], "No such file"),
    ("train num_frames=-3", TRAIN + ["--set", "data.num_frames=-3"], "data.num_frames: Input should be greater than 0"),
    ("train num_frames not 4k+1", TRAIN + ["--set", "data.num_frames=10"], "must be 4k+1"),
    ("train height 0", TRAIN + ["--set", "data.height=0"], "data.height: Input should be greater than 0"),
    ("train width not a multiple of 16", TRAIN + ["--set", "data.width=100"], "multiples of 16"),
    ("train negative lr", TRAIN + ["--set", "optim.lr=-1e-4"], "optim.lr: Input should be greater than 0"),
    ("train negative warmup", TRAIN + ["--set", "optim.warmup_steps=-5"], "optim.warmup_steps"),
    ("train fps 0", TRAIN + ["--set", "data.fps=0"], "data.fps: Input should be greater than 0"),
    ("train betas out of range", TRAIN + ["--set", "optim.betas=[0.9, 1.5]"], "must each be in [0, 1)"),
    ("train --set python tag", TRAIN + ["--set", f"optim.lr={PWNED}"], "not plain YAML"),
    ("train --config python tag", TRAIN[:-1] + ["{inputs}/train-tagged.yaml"], "not a YAML file"),
    ("train --config a list", TRAIN[:-1] + ["{inputs}/train-list.yaml"], "must be a YAML mapping"),
]


@pytest.mark.parametrize("case, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_config_exits_2_with_one_line(world, case, args, words):
    box, listener = world
    out = box.out / case.replace(" ", "_")
    result = run(box, *(a.format(inputs=box.inputs, out=out) for a in args))
    check(result, box, 2, words, listener=listener)
    assert len(result.said.strip().splitlines()) == 1, result.said
    assert not (box.cwd / "pwned").exists() and not out.exists()

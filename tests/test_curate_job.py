"""`ray job submit --runtime-env ray_jobs.yaml -- ophora curate ...` against a real head started with `ray start`.

Everything Ray here runs in subprocesses with their own temp dir (so no other Ray on the machine, the session's
`ray_local` included, ever sees this head), on loopback, and the head's process group is ended by its id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from curate_helpers import BACKBONE_FLAGS

from ophora.curation.ledger import read_ledger

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    bin_dir = os.path.dirname(sys.executable)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="disabled",
               RAY_ENABLE_UV_RUN_RUNTIME_ENV="0", RAY_USAGE_STATS_ENABLED="0")
    return env


@pytest.fixture
def ray_head(tmp_path_factory):
    """A 2-CPU Ray head on 127.0.0.1 with its dashboard (the job server): yields the job-submission address."""
    temp = tmp_path_factory.mktemp("rayhead")
    dash = free_port()
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
         "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--dashboard-agent-listen-port={free_port()}",  # the default 52365 clashes with any other local Ray
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=ray_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ok = subprocess.run([ray_bin, "job", "list", "--address", address], env=ray_env(),
                                capture_output=True).returncode == 0
            if ok:
                break
            assert head.poll() is None, "ray start --head exited"
            time.sleep(2)
        else:
            pytest.fail("the Ray head did not come up in 180 s")
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the group this fixture started, by its id
        try:
            head.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def test_ray_job_submit_runs_the_curate_job(ray_head, small_corpus, tmp_path):
    out = tmp_path / "job-out"
    video = sorted((small_corpus / "videos").glob("*.mkv"))[0]
    submit = [os.path.join(os.path.dirname(sys.executable), "ray"), "job", "submit", "--address", ray_head,
              "--runtime-env", str(REPO / "ray_jobs.yaml"), "--", "ophora", "curate", str(video), "--out", str(out),
              "--quiet", *BACKBONE_FLAGS]
    for _ in range(12):  # the job server answers before the node's agent that runs jobs is up
        job = subprocess.run(submit, cwd=REPO, env=ray_env(), capture_output=True, text=True, timeout=500)
        if "No available agent" not in job.stdout + job.stderr:
            break
        time.sleep(5)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 1 and summary["clips_written"] >= 1
    assert set(read_ledger(str(out)).status) == {"done"}

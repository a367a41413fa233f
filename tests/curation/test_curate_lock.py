"""One curate run per --out: a second run on an OUT another live run is writing is refused before it touches
anything; a lock left by a dead run (SIGKILL) is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ophora.curation.out_lock import LOCK_FILE, OutLock, OutLocked, holder_is_live

OPHORA = Path(sys.executable).parent / "ophora"


def plant_lock(out: Path, pid: int, host: str | None = None, heartbeat_age_s: float = 0.0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lock = out / LOCK_FILE
    lock.write_text(
        json.dumps(
            {
                "token": "other-run",
                "host": host or socket.gethostname(),
                "pid": pid,
                "started": now - 60,
                "heartbeat": now - heartbeat_age_s,
            }
        )
    )
    return lock


@pytest.fixture
def live_process():
    proc = subprocess.Popen(["sleep", "120"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_live_run_holds_out_and_a_second_run_is_refused_with_exit_2(tmp_path, live_process):
    out = tmp_path / "out"
    lock = plant_lock(out, live_process)
    (tmp_path / "v.mp4").write_bytes(b"not looked at")
    res = subprocess.run(
        [str(OPHORA), "curate", str(tmp_path / "v.mp4"), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    said = " ".join((res.stdout + res.stderr).split())
    assert "being written by another curate run" in said and f"pid {live_process}" in said, said
    assert json.loads(lock.read_text())["token"] == "other-run"  # the holder's lock is untouched
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # and nothing else was written


def test_a_dead_runs_lock_is_taken_over_and_released_at_the_end(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out"
    plant_lock(out, dead.pid)
    with OutLock(str(out)) as mine:
        assert json.loads((out / LOCK_FILE).read_text())["token"] == mine.token
        with pytest.raises(OutLocked):  # a second run meanwhile, from this same live process
            OutLock(str(out)).acquire()
    assert not (out / LOCK_FILE).exists()


def test_another_hosts_lock_holds_until_its_heartbeat_goes_stale(tmp_path):
    fresh = {"host": "other-node", "pid": 1, "heartbeat": time.time()}
    assert holder_is_live(fresh, stale_after_s=120)
    assert not holder_is_live(fresh, stale_after_s=120, now=time.time() + 121)
    plant_lock(tmp_path / "out", 1, host="other-node", heartbeat_age_s=300)
    with OutLock(str(tmp_path / "out"), stale_after_s=120):
        pass


def test_the_heartbeat_keeps_a_long_run_fresh(tmp_path):
    with OutLock(str(tmp_path / "out"), stale_after_s=0.4):
        first = json.loads((tmp_path / "out" / LOCK_FILE).read_text())["heartbeat"]
        time.sleep(0.5)
        held = json.loads((tmp_path / "out" / LOCK_FILE).read_text())
        assert held["heartbeat"] > first and holder_is_live(held, stale_after_s=0.4)

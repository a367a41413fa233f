"""Helpers for tests that start Ray (or other servers) as separate processes on loopback: free ports, the
environment those processes get, and ending a process group the test started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict[str, str]:
    """This environment with the venv's bin first on PATH, no RAY_ADDRESS, no token auth, no uv, no usage stats."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    bin_dir = os.path.dirname(sys.executable)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="disabled",
               RAY_ENABLE_UV_RUN_RUNTIME_ENV="0", RAY_USAGE_STATS_ENABLED="0")
    return env


def stop_groups(*procs: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End the process groups of ``procs`` (started with ``start_new_session``), by their ids: SIGTERM to all at
    once, SIGKILL to what still runs after ``grace_s`` (a test's Ray has nothing worth a slow shutdown)."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s  # one grace period for all of them
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

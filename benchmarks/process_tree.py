"""Where a command's CPU-seconds and memory go: sample its whole process tree (Ray's GCS, raylet and workers, the
ffmpeg processes they start) while it runs.

A Ray worker names itself after what it runs (``ray::MapWorker(MapBatches(ScenesStage))``, ``ray::IDLE``), so each
process's CPU is put under a label: the stage it ran, ``ray`` (GCS, raylet, dashboard and log agents, idle
workers), ``driver`` (the command itself), and an ffmpeg or other child under its parent's label. CPU is read as
user + system of the process plus its reaped children, at the last sample before it ended (so a process that lives
less than one interval may be missed: keep the interval short next to the work).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

import psutil

_STAGE = re.compile(r"ray::.*?\b([A-Z][A-Za-z]*?)(?:Stage)?\)")


def label(proc: psutil.Process, root_pid: int) -> str:
    """The label of one process (see the module docstring)."""
    if proc.pid == root_pid:
        return "driver"
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return "other"
    if cmd.startswith("ray::"):
        m = _STAGE.search(cmd)
        if m and "IDLE" not in cmd:
            return m.group(1).lower()
        return "ray"
    if any(k in cmd for k in ("gcs_server", "raylet", "dashboard", "log_monitor", "runtime_env", "ray/_private")):
        return "ray"
    return ""  # unknown: its parent's label


class TreeSampler:
    """Samples the tree under ``pid`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.root, self.interval = pid, interval
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (label, CPU-s at its last sample)
        self.parent: dict[int, int] = {}
        self.last_round: dict[int, int] = {}
        self.kids: dict[int, dict[int, float]] = {}  # pid -> {round: CPU-s of its reaped children}
        self.rounds = 0
        self.labels: dict[int, str] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _label(self, proc: psutil.Process) -> str:
        if proc.pid not in self.labels or self.labels[proc.pid] in ("", "ray"):  # a worker is named when it starts work
            own = label(proc, self.root)
            if not own:
                try:
                    parent = proc.ppid()
                except psutil.Error:
                    parent = -1
                own = self.labels.get(parent) or "other"
            self.labels[proc.pid] = own
        return self.labels[proc.pid]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rounds += 1
            try:
                root = psutil.Process(self.root)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            rss = 0
            for p in procs:
                try:
                    with p.oneshot():
                        t = p.cpu_times()
                        rss += p.memory_info().rss
                        name = self._label(p)
                        self.parent.setdefault(p.pid, p.ppid())
                except psutil.Error:
                    continue
                self.cpu[p.pid] = (name, t.user + t.system + t.children_user + t.children_system)
                self.last_round[p.pid] = self.rounds
                self.kids.setdefault(p.pid, {})[self.rounds] = t.children_user + t.children_system
            self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        """``{"cpu_s": {label: CPU-s}, "cpu_s_total", "peak_rss_mb"}``. A child reaped by a sampled parent is counted
        once, under its own label (taken out of the parent's children times)."""
        self._stop.set()
        self._thread.join()
        by: dict[str, float] = {}
        for pid, (name, cpu) in self.cpu.items():
            by[name] = by.get(name, 0.0) + cpu
            parent = self.parent.get(pid)
            if parent not in self.cpu or self.last_round[pid] >= self.last_round[parent]:
                continue
            kids = self.kids[parent]
            grew = kids[self.last_round[parent]] - kids.get(self.last_round[pid], kids[self.last_round[parent]])
            if grew >= 0.5 * cpu:  # reaped by its parent after its last sample: the parent's total holds it already
                by[self.cpu[parent][0]] -= cpu
        return {
            "cpu_s": {k: round(v, 1) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
            "cpu_s_total": round(sum(by.values()), 1),
            "peak_rss_mb": round(self.peak_rss / 2**20),
        }


def run_sampled(cmd: list[str], interval: float = 0.25, **kwargs) -> tuple[float, dict]:
    """Run ``cmd`` to the end; (wall seconds, :meth:`TreeSampler.stop`'s report). Raises if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, **kwargs)
    sampler = TreeSampler(proc.pid, interval)
    rc = proc.wait()
    wall = time.perf_counter() - t0
    report = sampler.stop()
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)
    return wall, report

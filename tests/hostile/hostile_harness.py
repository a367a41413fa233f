"""What every hostile-input case checks, built in view: the command runs as a person would run it (a subprocess
of the ``ophora`` entry point) in a sandbox of its own, and the case asserts its documented exit code, a message
naming the problem, nothing written outside OUT, no network connection (a loopback listener counts accepts), no
file read that the input pointed at (a FIFO canary notices an open), wall time and the peak RSS of the process
tree (psutil, polled)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

OPHORA = str(Path(sys.executable).parent / "ophora")
MAX_SECONDS = 20.0
MAX_RSS = 1 << 30  # 1 GiB, the whole process tree


class Listener:
    """A TCP listener on 127.0.0.1 that accepts and counts connections (and answers nothing)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepts += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Canary:
    """A FIFO that a hostile input names: any process that opens it for reading is noticed (a writer can open a
    FIFO without blocking only while a reader has it open) and let go at once (it reads an end of file)."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.005):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                continue
            self.opened += 1
            os.close(fd)

    def close(self):
        self._stop.set()
        self._thread.join(2)


@dataclass
class Sandbox:
    """Folders of one case: ``inputs`` (what the hostile material is), ``cwd``, ``home`` and ``tmp`` of the
    command, and ``out`` (the only place it may write). ``ignored`` names folders that are not Ophora's output
    (an embedded Ray's session logs)."""

    root: Path
    ignored: tuple[str, ...] = ()
    before: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("inputs", "cwd", "home", "tmp", "log"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    inputs = property(lambda self: self.root / "inputs")
    cwd = property(lambda self: self.root / "cwd")
    out = property(lambda self: self.root / "out")

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """(size, mtime) of every entry outside OUT (FIFOs and links included, never opened)."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if rel.parts[0] in ("out", "log") or any(str(rel).startswith(p) for p in self.ignored):
                continue
            st = path.lstat()  # a folder counts by being there (scratch files made and removed touch its mtime)
            found[str(rel)] = (0, 0) if path.is_dir() and not path.is_symlink() else (st.st_size, st.st_mtime_ns)
        return found

    def freeze(self) -> None:
        self.before = self.snapshot()

    def written_outside_out(self) -> list[str]:
        after = self.snapshot()
        return sorted(k for k in set(after) | set(self.before) if after.get(k) != self.before.get(k))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "AWS_"))}
        env.update(HOME=str(self.root / "home"), TMPDIR=str(self.root / "tmp"), HF_HUB_OFFLINE="1",
                   COLUMNS="200", PYTHONUNBUFFERED="1")
        return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int

    @property
    def said(self) -> str:
        return self.stdout + self.stderr


def run(box: Sandbox, *args: str, timeout: float = MAX_SECONDS * 3, python: str | None = None,
        env: dict[str, str] | None = None) -> Result:
    """Run ``ophora ARGS`` (or ``python -c PYTHON``) in the sandbox, polling the RSS of its process tree."""
    box.freeze()
    cmd = [sys.executable, "-c", python] if python else [OPHORA, *map(str, args)]
    with open(box.root / "log" / "stdout", "w+b") as so, open(box.root / "log" / "stderr", "w+b") as se:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=box.cwd, env={**box.env(), **(env or {})}, stdin=subprocess.DEVNULL,
                                stdout=so, stderr=se)
        peak = 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                for p in [*root.children(recursive=True), root]:
                    p.kill()
                proc.wait()
                break
            peak = max(peak, _tree_rss(root))
            time.sleep(0.02)
        seconds = time.monotonic() - start
        so.seek(0)
        se.seek(0)
        return Result(proc.returncode, so.read().decode("utf-8", "replace"), se.read().decode("utf-8", "replace"),
                      seconds, peak)


def _tree_rss(root: psutil.Process) -> int:
    """Resident memory of the process tree: each process's proportional set size (PSS: a page shared by k
    processes counts 1/k in each, so an embedded Ray's shared object store and libraries count once), its RSS
    where PSS cannot be read."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += getattr(p.memory_full_info(), "pss", None) or p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def check(result: Result, box: Sandbox, code: int, *words: str, listener: Listener | None = None,
          canaries: tuple[Canary, ...] = (), max_seconds: float = MAX_SECONDS, max_rss: int = MAX_RSS) -> None:
    """The promises of every case (see the module docstring); ``words`` must appear in what it printed."""
    said = " ".join(result.said.split())
    assert result.code == code, f"exit {result.code}, documented {code}:\n{result.said[-3000:]}"
    for word in words:
        assert word in said, f"{word!r} not in what the command said:\n{result.said[-3000:]}"
    assert "Traceback" not in result.said, result.said[-3000:]
    assert box.written_outside_out() == [], box.written_outside_out()
    if listener is not None:
        assert listener.accepts == 0, "a network connection was attempted"
    for canary in canaries:
        assert canary.opened == 0, f"{canary.path} (named inside the input) was opened"
    assert result.seconds < max_seconds, f"{result.seconds:.1f} s"
    assert result.peak_rss < max_rss, f"peak RSS of the process tree {result.peak_rss / 2**20:.0f} MiB"

"""One curate run per output folder: a lock file in OUT, kept fresh by a heartbeat while the run lives.

Two runs writing one OUT would each clean the other's unfinished shards as leftovers (resume.py). The lock is
``OUT/.ophora-curate.lock`` (JSON: host, pid, start, heartbeat). A run takes it unless another run holds it: one
whose heartbeat is younger than ``stale_after_s`` and, when it ran on this host, whose process is still alive. A
run killed with SIGKILL leaves its lock behind; on the same host a rerun takes it over at once (the pid is gone),
from another host once the heartbeat is stale. Object stores have no create-if-absent, so there the lock is
advisory: it is written, then read back, and the run refuses when another run's token came back.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import fsspec

LOCK_FILE = ".ophora-curate.lock"


class OutLocked(RuntimeError):
    """Another curate run is writing the same OUT; the message says which and how to go on."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def holder_is_live(lock: dict, stale_after_s: float, now: float | None = None) -> bool:
    """Whether the run that wrote ``lock`` may still be writing."""
    age = (now or time.time()) - float(lock.get("heartbeat", 0))
    if age > stale_after_s:
        return False
    if lock.get("host") == socket.gethostname():
        return _pid_alive(int(lock.get("pid", 0)))
    return True


@dataclass
class OutLock:
    """The lock of one run on ``out``; use as a context manager (taken on enter, released on exit)."""

    out: str
    stale_after_s: float = 120.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _beat: threading.Thread | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return f"{self.out.rstrip('/')}/{LOCK_FILE}"

    def read(self) -> dict | None:
        fs, path = fsspec.core.url_to_fs(self.path)
        try:
            return json.loads(fs.cat_file(path))
        except (FileNotFoundError, ValueError):  # none, or torn by a kill mid-write: nobody holds it
            return None

    def _write(self, started: float) -> None:
        fs, path = fsspec.core.url_to_fs(self.path)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        body = {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "started": started,
                "heartbeat": time.time()}
        fs.pipe_file(path, json.dumps(body).encode())

    def acquire(self) -> None:
        held = self.read()
        if held and held.get("token") != self.token and holder_is_live(held, self.stale_after_s):
            raise OutLocked(self.describe(held))
        self._started = time.time()
        self._write(self._started)
        back = self.read()
        if back and back.get("token") != self.token:  # another run wrote in between
            raise OutLocked(self.describe(back))
        self._beat = threading.Thread(target=self._heartbeat, name="ophora-out-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.stale_after_s / 4):
            try:
                self._write(self._started)
            except OSError:  # a store hiccup: the next beat tries again
                pass

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        held = self.read()
        if held and held.get("token") == self.token:
            fs, path = fsspec.core.url_to_fs(self.path)
            fs.rm_file(path)

    def describe(self, held: dict) -> str:
        age = time.time() - float(held.get("heartbeat", 0))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(held.get("started", 0))))
        return (f"{self.out} is being written by another curate run (host {held.get('host')}, pid {held.get('pid')}, "
                f"since {since}, last heartbeat {age:.0f} s ago). Wait for it to end, or use another --out; if "
                f"that run is dead, delete {self.path} (it goes stale by itself after {self.stale_after_s:g} s)")

    def __enter__(self) -> "OutLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

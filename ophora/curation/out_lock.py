"""One curate run per output folder: a lock file in OUT, kept fresh by a heartbeat while the run lives.

Two runs writing one OUT would each clean the other's unfinished shards as leftovers (resume.py). The lock is
``OUT/.ophora-curate.lock`` (JSON: token, host, pid, start, heartbeat). A run takes it unless another run holds it:
one whose heartbeat is younger than ``stale_after_s`` and, when it ran on this host, whose process is still alive.
A run killed with SIGKILL leaves its lock behind; on the same host a rerun takes it over at once (the pid is gone),
from another host once the heartbeat is stale.

Taking the lock is atomic where the store allows it, so of two runs started at the same instant exactly one wins:

- a local (or NFS) folder: the lock appears by a hard link of a complete temporary file (``O_CREAT|O_EXCL`` where
  links are not supported), which fails when the name exists; a dead run's lock is removed only under a second,
  equally exclusive ``.takeover`` file, so two runs never both remove and re-create it;
- S3 (s3fs): a conditional put, ``If-None-Match: *`` to create, ``If-Match: <ETag>`` to take over a stale lock and
  to beat, so a lock that changed under a run is never overwritten;
- any other object store: advisory only (written, then read back; a run refuses when another run's token came
  back), since it offers no create-if-absent.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import fsspec

LOCK_FILE = ".ophora-curate.lock"
TAKEOVER_SUFFIX = ".takeover"
TAKEOVER_ABANDONED_S = 30.0  # a takeover marker this old belongs to a run killed in the middle of a takeover
log = logging.getLogger(__name__)


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


def _parse(raw: bytes | None) -> dict | None:
    try:
        held = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    return held if isinstance(held, dict) else None


@dataclass
class OutLock:
    """The lock of one run on ``out``; use as a context manager (taken on enter, released on exit)."""

    out: str
    stale_after_s: float = 120.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _beat: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.fs, self._path = fsspec.core.url_to_fs(self.path)
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else tuple(self.fs.protocol)
        self._local = "file" in protocols or "local" in protocols
        self._s3 = "s3" in protocols
        self._etag: str | None = None  # S3: the ETag of the lock as this run last wrote it

    @property
    def path(self) -> str:
        return f"{self.out.rstrip('/')}/{LOCK_FILE}"

    @property
    def atomic(self) -> bool:
        """Whether taking this lock is atomic (local folders and S3) rather than advisory."""
        return self._local or self._s3

    # ------------------------------------------------------------ reading

    def read(self) -> dict | None:
        """The lock's content, or None when there is none (or it is not a JSON object: a torn write)."""
        return _parse(self._raw())

    def _raw(self) -> bytes | None:
        try:
            return self.fs.cat_file(self._path)
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _body(self, started: float) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": started,
                "heartbeat": time.time(),
            }
        ).encode()

    def _judge(self) -> dict | None:
        """The holder that keeps this run out (a live other run), or None."""
        held = self.read()
        if held and held.get("token") != self.token and holder_is_live(held, self.stale_after_s):
            return held
        return None

    # ------------------------------------------------------------ taking

    def acquire(self) -> None:
        self._started = time.time()
        self.fs.makedirs(self._path.rsplit("/", 1)[0], exist_ok=True)
        take = self._take_local if self._local else self._take_s3 if self._s3 else self._take_advisory
        take()
        self._beat = threading.Thread(target=self._heartbeat, name="ophora-out-lock", daemon=True)
        self._beat.start()

    def _refuse(self, held: dict) -> None:
        raise OutLocked(self.describe(held))

    def _take_local(self) -> None:
        for _ in range(20):  # each pass either wins, refuses, or saw the lock change under it
            if self._create_local():
                return
            held_raw = self._raw()
            held = _parse(held_raw)
            if held is None and held_raw is not None and self._age_local() < self.stale_after_s:
                time.sleep(0.05)  # an unreadable lock from a writer of an older version: let it finish
                continue
            if held and held.get("token") != self.token and holder_is_live(held, self.stale_after_s):
                self._refuse(held)
            self._break_local(held_raw)
        raise OutLocked(f"{self.out}: the lock {self.path} kept changing while this run tried to take it")

    def _create_local(self) -> bool:
        """Create the lock with its whole content in one step; False when it exists."""
        tmp = f"{self._path}.{self.token}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self._body(self._started))
        try:
            os.link(tmp, self._path)  # atomic, and fails when the name exists (never replaces)
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: an exclusive create, then the content
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._body(self._started))
            return True
        finally:
            os.unlink(tmp)

    def _age_local(self) -> float:
        try:
            return time.time() - os.stat(self._path).st_mtime
        except FileNotFoundError:
            return 0.0

    def _break_local(self, judged: bytes | None) -> None:
        """Remove the stale lock whose content was ``judged``, under the exclusive takeover marker, only if it is
        still that content (another run may have replaced it meanwhile)."""
        marker = self._path + TAKEOVER_SUFFIX
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            try:
                if time.time() - os.stat(marker).st_mtime > TAKEOVER_ABANDONED_S:
                    os.unlink(marker)
            except FileNotFoundError:
                pass
            time.sleep(0.02)  # another run is taking over right now: look again after it
            return
        os.close(fd)
        try:
            if self._raw() == judged and judged is not None:
                os.unlink(self._path)
        except FileNotFoundError:
            pass
        finally:
            os.unlink(marker)

    def _take_s3(self) -> None:
        for _ in range(20):
            try:
                self._etag = self._put_s3(IfNoneMatch="*")
                return
            except OSError as e:
                if not _precondition_failed(e):
                    raise
            info_etag, held = self._s3_state()
            if held is not None and held.get("token") != self.token and holder_is_live(held, self.stale_after_s):
                self._refuse(held)
            if info_etag is None:
                continue  # removed meanwhile: create again
            try:  # replace exactly the stale lock that was judged; of two runs doing this, one wins
                self._etag = self._put_s3(IfMatch=info_etag)
                return
            except OSError as e:
                if not _precondition_failed(e):
                    raise
        raise OutLocked(f"{self.out}: the lock {self.path} kept changing while this run tried to take it")

    def _s3_state(self) -> tuple[str | None, dict | None]:
        """(ETag, content) of the lock read consistently (the ETag did not change around the read)."""
        for _ in range(5):
            try:
                before = self.fs.info(self._path, refresh=True)["ETag"]
                raw = self.fs.cat_file(self._path)
                after = self.fs.info(self._path, refresh=True)["ETag"]
            except FileNotFoundError:
                return None, None
            if before == after:
                return before, _parse(raw)
        return None, None

    def _put_s3(self, **condition: str) -> str | None:
        out = self.fs.pipe_file(self._path, self._body(self._started), **condition)
        self.fs.invalidate_cache(self._path)
        return out.get("ETag") if isinstance(out, dict) else None

    def _take_advisory(self) -> None:
        held = self._judge()
        if held:
            self._refuse(held)
        self.fs.pipe_file(self._path, self._body(self._started))
        back = self.read()
        if back and back.get("token") != self.token:  # another run wrote in between
            self._refuse(back)

    # ------------------------------------------------------------ keeping and releasing

    def _beat_once(self) -> None:
        if self._local:
            if (self.read() or {}).get("token") != self.token:
                log.error("%s: this run's lock was taken over by another run", self.out)
                return
            tmp = f"{self._path}.{self.token}.beat"
            with open(tmp, "wb") as fh:
                fh.write(self._body(self._started))
            os.replace(tmp, self._path)  # atomic: a reader never sees a half-written lock
        elif self._s3 and self._etag:
            try:
                self._etag = self._put_s3(IfMatch=self._etag)
            except OSError as e:
                if not _precondition_failed(e):
                    raise
                log.error("%s: this run's lock was taken over by another run", self.out)
        else:
            self.fs.pipe_file(self._path, self._body(self._started))

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.stale_after_s / 4):
            try:
                self._beat_once()
            except OSError:  # a store hiccup: the next beat tries again
                pass

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        held = self.read()
        if held and held.get("token") == self.token:
            self.fs.rm_file(self._path)

    def describe(self, held: dict) -> str:
        age = time.time() - float(held.get("heartbeat", 0))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(held.get("started", 0))))
        return (
            f"{self.out} is being written by another curate run (host {held.get('host')}, pid {held.get('pid')}, "
            f"since {since}, last heartbeat {age:.0f} s ago). Wait for it to end, or use another --out; if "
            f"that run is dead, delete {self.path} (it goes stale by itself after {self.stale_after_s:g} s)"
        )

    def __enter__(self) -> OutLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _precondition_failed(error: OSError) -> bool:
    """s3fs's translation of HTTP 412 (the conditional put found the lock other than it required)."""
    text = f"{error} {error.__cause__ or ''}"
    return "PreconditionFailed" in text or "412" in text or "At least one of the pre-conditions" in text

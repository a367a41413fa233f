"""Two curate runs started at the same instant on one OUT: exactly one gets the lock, locally (hard link of a
complete file) and on S3 (conditional put); a stale lock is taken over by exactly one of two runs."""

from __future__ import annotations

import json
import multiprocessing
import socket
import threading
import time

import pytest

from ophora.curation.out_lock import LOCK_FILE, OutLock, OutLocked

TRIALS = 100


def _contender(out_root: str, start, done, results, trials: int) -> None:
    """One run's process: in each trial, wait for the other, try to take the lock, hold it until both tried."""
    for trial in range(trials):
        lock = OutLock(f"{out_root}/{trial}")
        start.wait()
        try:
            lock.acquire()
            got = True
        except OutLocked:
            got = False
        results.put((trial, got))
        done.wait()
        if got:
            lock.release()


def test_two_runs_released_at_the_same_instant_never_both_get_the_lock(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, done, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(str(tmp_path), start, done, results, TRIALS)) for _ in range(2)]
    for p in procs:
        p.start()
    wins: dict[int, int] = {}
    for _ in range(2 * TRIALS):
        trial, got = results.get(timeout=120)
        wins[trial] = wins.get(trial, 0) + got
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(set(wins.values())) == [1], {t: n for t, n in wins.items() if n != 1}


def race(locks: list[OutLock]) -> list[OutLock]:
    """The locks that were taken when every one is tried at the same instant (one thread each)."""
    barrier, got = threading.Barrier(len(locks)), []

    def take(lock: OutLock) -> None:
        barrier.wait()
        try:
            lock.acquire()
            got.append(lock)
        except OutLocked:
            pass

    threads = [threading.Thread(target=take, args=(lk,)) for lk in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return got


def test_of_two_runs_taking_over_a_dead_runs_lock_one_wins(tmp_path):
    for trial in range(20):
        out = tmp_path / str(trial)
        out.mkdir()
        (out / LOCK_FILE).write_text(
            json.dumps(
                {
                    "token": "dead",
                    "host": socket.gethostname(),
                    "pid": 2**22 + 7,
                    "started": 0,
                    "heartbeat": time.time(),
                }
            )
        )
        got = race([OutLock(str(out)) for _ in range(2)])
        assert len(got) == 1, trial
        assert json.loads((out / LOCK_FILE).read_text())["token"] == got[0].token
        got[0].release()


@pytest.fixture(scope="module")
def s3_lock_root():
    """A moto S3 server on 127.0.0.1 and the s3:// folder the locks go in (endpoint given to s3fs directly)."""
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            env.delenv(name, raising=False)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fs = s3fs.S3FileSystem(
            key="testing",
            secret="testing",
            skip_instance_cache=True,
            client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}"},
        )
        fs.mkdir("locks")
        yield fs
    server.stop()


def test_on_s3_a_conditional_put_lets_exactly_one_of_two_runs_in(s3_lock_root, monkeypatch):
    import fsspec

    fs = s3_lock_root
    monkeypatch.setattr(fsspec.core, "url_to_fs", lambda url, **kw: (fs, url.removeprefix("s3://")))
    for trial in range(10):
        locks = [OutLock(f"s3://locks/{trial}") for _ in range(2)]
        assert all(lk.atomic for lk in locks)
        got = race(locks)
        assert len(got) == 1, trial
        got[0].release()
        assert not fs.exists(f"locks/{trial}/{LOCK_FILE}")


def test_on_s3_a_stale_lock_is_replaced_only_if_unchanged(s3_lock_root, monkeypatch):
    import fsspec

    fs = s3_lock_root
    monkeypatch.setattr(fsspec.core, "url_to_fs", lambda url, **kw: (fs, url.removeprefix("s3://")))
    fs.pipe_file(
        f"locks/stale/{LOCK_FILE}",
        json.dumps({"token": "old", "host": "gone", "pid": 1, "started": 0, "heartbeat": 0}).encode(),
    )
    with OutLock("s3://locks/stale", stale_after_s=0.4) as mine:
        assert json.loads(fs.cat_file(f"locks/stale/{LOCK_FILE}"))["token"] == mine.token
        time.sleep(0.3)  # a heartbeat or two, each conditional on the ETag this run wrote
        assert json.loads(fs.cat_file(f"locks/stale/{LOCK_FILE}"))["token"] == mine.token
        with pytest.raises(OutLocked):
            OutLock("s3://locks/stale", stale_after_s=0.4).acquire()

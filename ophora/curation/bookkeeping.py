"""The curate driver's bookkeeping: it tallies the write stage's records per source and, when a source is
settled, writes its index file, removes shards no record names, appends its ledger row and keeps the run's counts
(:class:`Bookkeeper`); :func:`footage_summary` sums the footage yield for summary.json."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ophora.curation.inputs import forget
from ophora.curation.resume import OutState, remove_source_shards, write_index
from ophora.dataset.ledger import append_rows, footage_yield, ledger_row, reason_category

log = logging.getLogger("ophora.curate")


@dataclass
class SourceTally:
    """The records of one source seen so far; complete when every window (or the one source row) arrived."""

    uri: str
    source_id: str = ""
    expected: int = 1
    seen: set[int] = field(default_factory=set)
    duration: float = 0.0
    keys: list[str] = field(default_factory=list)
    index: list[dict] = field(default_factory=list)
    drops: Counter = field(default_factory=Counter)
    dropped: list[tuple[int, float, float, str]] = field(default_factory=list)
    clips: list[tuple[float, float]] = field(default_factory=list)
    phi: Counter = field(default_factory=Counter)
    p2ft: Counter = field(default_factory=Counter)
    rejected: str = ""
    failed: str = ""

    def add(self, rec: dict[str, Any]) -> None:
        self.source_id = rec["source_id"] or self.source_id
        self.expected = max(1, rec["windows_total"])
        self.seen.add(rec["window_index"])
        self.duration = rec["duration"] or self.duration
        self.phi.update(json.loads(rec["phi_json"] or "{}"))  # what scrubbing replaced in every narrated window
        outcome, reason = rec["outcome"], rec["reason"]
        if outcome == "written":
            self.keys.append(rec["key"])
            self.clips.append((rec["start"], rec["end"]))
            self.index.extend(json.loads(rec["index_json"]))
            self.p2ft.update({reason_category(r) for r in json.loads(rec["p2ft_json"] or "[]")})
        elif outcome == "dropped":
            self.drops[reason_category(reason)] += 1
            self.dropped.append((rec["window_index"], rec["start"], rec["end"], reason))
        elif outcome == "rejected":
            self.rejected = reason
        elif outcome == "failed":
            self.failed = self.failed or reason

    @property
    def complete(self) -> bool:
        return len(self.seen) >= self.expected


class Bookkeeper:
    """Driver-side: turns write records into index files and ledger rows, and keeps the run's counts."""

    def __init__(self, out: str, state: OutState, total: int, quiet: bool, every_s: float, cache_dir: str = ""):
        self.cache_dir = cache_dir
        self.out, self.claims, self.total, self.quiet, self.every_s = out, dict(state.claims), total, quiet, every_s
        self.tallies: dict[str, SourceTally] = {}
        self.finished: set[str] = set()
        self.pending_rows: list[dict] = []
        self.status: Counter = Counter()
        self.reasons: Counter = Counter()
        self.drops: Counter = Counter()
        self.phi: Counter = Counter()
        self.p2ft: Counter = Counter()
        self.subsets: Counter = Counter()
        self.clips = 0
        self.source_seconds = 0.0
        self.footage: list[dict[str, Any]] = []  # footage_yield of each settled source, with its uri
        self._last_flush = self._last_line = time.monotonic()

    def add(self, rec: dict[str, Any]) -> None:
        tally = self.tallies.setdefault(rec["source_uri"], SourceTally(rec["source_uri"]))
        tally.add(rec)
        if tally.complete:
            self.finish(self.tallies.pop(rec["source_uri"]))
        now = time.monotonic()
        if now - self._last_flush > self.every_s:
            self.flush()
        if not self.quiet and now - self._last_line > self.every_s:
            self._last_line = now
            log.info(
                "sources %d/%d done (rejected %d, failed %d), clips %d",
                sum(self.status.values()),
                self.total,
                self.status["rejected"],
                self.status["failed"],
                self.clips,
            )

    def finish(self, t: SourceTally, lost: str = "") -> None:
        """Settle one source: index + ledger for done; shards removed for anything else."""
        self.finished.add(t.uri)
        if self.cache_dir:  # a settled remote source's download is not needed again (on this node)
            forget(t.uri, self.cache_dir)
        owner = self.claims.get(t.source_id)
        if lost or t.failed:
            status, reason = "failed", lost or t.failed
        elif t.rejected:
            status, reason = "rejected", t.rejected
        elif owner and owner != t.uri:
            status, reason = "rejected", f"probe: duplicate content of {owner}"
        else:
            status, reason = "done", ""
        mine = {r["shard"] for r in t.index}
        if status == "done":
            if t.source_id:
                remove_source_shards(self.out, t.source_id, keep=mine)
            if t.index:
                write_index(self.out, t.source_id, t.index)
            self.claims[t.source_id] = t.uri
            self.clips += len(t.keys)
            self.subsets.update(r["subset"] for r in t.index)
            self.drops.update(t.drops)
            self.phi.update(t.phi)
            self.p2ft.update(t.p2ft)
            self.source_seconds += t.duration
        elif t.source_id and owner and owner != t.uri:
            self._remove(mine)  # a duplicate: only its own shards, never the owner's
        elif t.source_id:
            remove_source_shards(self.out, t.source_id)
        if reason:
            self.reasons[reason if status == "failed" else reason_category(reason)] += 1
        self.status[status] += 1
        stage = reason.split(":", 1)[0] if reason else ""
        footage = None
        if status != "failed":  # a failed source is retried: its seconds are not lost yet
            footage = footage_yield(
                t.duration,
                t.clips if status == "done" else (),
                [(s, e, r) for _, s, e, r in t.dropped],
                rejected=reason if status != "done" else "",
            )
            self.footage.append({"source": t.uri, **footage})
        self.pending_rows.append(
            ledger_row(
                t.uri,
                t.source_id,
                status,
                stage=stage,
                reason=reason,
                duration=t.duration,
                keys=t.keys if status == "done" else (),
                drops=dict(t.drops),
                dropped=t.dropped,
                footage=footage,
            )
        )

    def _remove(self, shards: set[str]) -> None:
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.out)
        for rel in shards:
            if fs.exists(f"{root}/{rel}"):
                fs.rm(f"{root}/{rel}")

    def flush(self) -> None:
        append_rows(self.out, self.pending_rows)
        self.pending_rows, self._last_flush = [], time.monotonic()


def footage_summary(per_source: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's footage yield: seconds of settled sources, seconds their clips cover, the share, seconds lost
    by "stage: reason", and each source's own share (``by_source``)."""
    lost: Counter = Counter()
    for f in per_source:
        lost.update(f["lost_s"])
    total, clips = sum(f["duration_s"] for f in per_source), sum(f["clip_s"] for f in per_source)
    return {
        "source_s": round(total, 3),
        "clip_s": round(clips, 3),
        "share": round(clips / total, 4) if total else 0.0,
        "lost_s": {k: round(v, 3) for k, v in lost.most_common()},
        "by_source": [
            {"source": f["source"], "duration_s": f["duration_s"], "clip_s": f["clip_s"], "share": f["share"]}
            for f in sorted(per_source, key=lambda f: f["source"])
        ],
    }

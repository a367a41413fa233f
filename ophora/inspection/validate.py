"""``ophora shards validate``: does a curation output keep the shard contract (docs/design.md §3)?

Checks every tar is well-formed and complete, every sample has its members, keys and json follow the schema
(:class:`ClipMeta`), each mp4 decodes to the promised frames, size and fps (skipped with ``quick``), no key appears
in two shards of a subset, and the index, the shards and the ledger agree. Problems become :class:`Finding`s; the
run never stops at the first one.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from ophora.dataset.ledger import read_ledger
from ophora.dataset.shards import (
    LATENT_MEMBERS,
    RAW_MEMBERS,
    ClipMeta,
    Sample,
    ShardError,
    iter_samples,
    list_shards,
    open_shard,
    parse_key,
    refused_shards,
)
from ophora.inspection.catalog import read_index, shard_name, subsets_in, torn_shards

TAR_BLOCK = 512
FPS_TOLERANCE = 0.01
CONTRACT_CODEC = ("h264", "yuv420p")  # docs/design.md §3: H.264, yuv420p
FINDINGS_PER_CODE = 50  # kept with their details; the rest of a code is counted (100k bad members: 50 lines + 1)


@dataclass
class Finding:
    """One problem: ``severity`` error (breaks the contract) or warning, a stable ``code``, where, and why."""

    severity: str
    code: str
    where: str
    message: str
    key: str = ""


@dataclass
class ValidationReport:
    """What validate found. ``findings`` keeps the first ``per_code`` findings of each code; ``suppressed``
    counts the rest by code, and ``error_count`` counts every error, kept or not."""

    root: str
    quick: bool
    shards: int = 0
    samples: int = 0
    decoded: int = 0
    findings: list[Finding] = field(default_factory=list)
    suppressed: Counter = field(default_factory=Counter)
    error_count: int = 0
    per_code: int = FINDINGS_PER_CODE
    _kept: Counter = field(default_factory=Counter, repr=False)

    def add(self, *findings: Finding) -> None:
        for f in findings:
            self.error_count += f.severity == "error"
            if self._kept[f.code] < self.per_code:
                self._kept[f.code] += 1
                self.findings.append(f)
            else:
                self.suppressed[f.code] += 1

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.error_count

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def summary_rows(self) -> list[tuple[str, str, str, str]]:
        """One row per code whose findings were not all kept: how many more there are."""
        return [
            ("...", code, "", f"{n} more {code} findings not listed") for code, n in sorted(self.suppressed.items())
        ]

    def to_json(self) -> str:
        return json.dumps(
            {
                "root": self.root,
                "quick": self.quick,
                "ok": self.ok,
                "shards": self.shards,
                "samples": self.samples,
                "decoded": self.decoded,
                "errors": self.error_count,
                "findings": [asdict(f) for f in self.findings],
                "suppressed": dict(self.suppressed),
            },
            indent=2,
        )


def _shard_error_code(message: str) -> str:
    if "broken tar" in message:
        return "broken-tar"
    if "not contiguous" in message:
        return "split-sample"
    if "max_member_bytes" in message:
        return "oversized-member"
    return "unsafe-member"


def tar_is_complete(shard: str) -> str | None:
    """None when the tar ends like a finished archive (whole 512-byte blocks, two zero blocks at the end), else
    why not. Catches a shard cut between members, which a streaming reader takes for a normal end."""
    fh, size = open_shard(shard)
    with fh:
        if size < 2 * TAR_BLOCK or size % TAR_BLOCK:
            return f"size {size} is not a whole number of {TAR_BLOCK}-byte tar blocks"
        fh.seek(size - 2 * TAR_BLOCK)
        if fh.read(2 * TAR_BLOCK).strip(b"\0"):
            return "no end-of-archive marker (the tar was cut short)"
    return None


def _where(sample: Sample, subset: str) -> str:
    return f"{subset}/{shard_name(sample.shard)}"


def check_sample(sample: Sample, subset: str) -> tuple[list[Finding], ClipMeta | None]:
    """Contract checks on one sample that need no decoding: members, key, schema, agreement of json and txt."""
    out: list[Finding] = []
    where = _where(sample, subset)

    def bad(code: str, message: str) -> None:
        out.append(Finding("error", code, where, message, sample.key))

    try:
        parse_key(sample.key)
    except ShardError as e:
        bad("bad-key", str(e))
    wanted = LATENT_MEMBERS if "latents.npy" in sample.members else RAW_MEMBERS
    missing = [m for m in wanted if m not in sample.members]
    if missing:
        bad("missing-member", f"sample {sample.key} lacks {', '.join('.' + m for m in missing)}")
    if "json" not in sample.members:
        return out, None
    try:
        meta = ClipMeta.model_validate(sample.meta)
    except ShardError as e:  # not JSON, not an object, too large or too deep
        bad("bad-json", str(e))
        return out, None
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'json'}: {err['msg']}" for err in e.errors()[:5])
        bad("bad-json", f"{sample.key}.json breaks the ClipMeta schema: {problems}")
        return out, None
    if meta.key != sample.key:
        bad("meta-mismatch", f"{sample.key}.json names key {meta.key!r}")
    if subset in ("tpt", "p2ft") and subset not in meta.subsets:
        bad("meta-mismatch", f"{sample.key} is in {subset}/ but its json lists subsets {meta.subsets}")
    if "txt" in sample.members:
        try:
            text = sample.instruction
        except ShardError:
            bad("bad-text", f"{sample.key}.txt is not UTF-8")
        else:
            if text != meta.instruction:
                bad("meta-mismatch", f"{sample.key}.txt differs from the instruction in its json")
    return out, meta


def check_video(sample: Sample, meta: ClipMeta, subset: str) -> list[Finding]:
    """Decode the mp4 and compare frames, size and fps with what the json promises."""
    from ophora.video import decoded_facts

    where = _where(sample, subset)
    try:
        facts = decoded_facts(sample.mp4)
    except Exception as e:  # any decoder complaint about untrusted bytes is a finding, not a crash
        return [Finding("error", "bad-video", where, f"{sample.key}.mp4 does not decode: {e}", sample.key)]
    out = []
    if facts.frames != meta.num_frames:
        out.append(
            Finding(
                "error",
                "wrong-frames",
                where,
                f"{sample.key}.mp4 decodes to {facts.frames} frames, json promises {meta.num_frames}",
                sample.key,
            )
        )
    if (facts.width, facts.height) != (meta.width, meta.height):
        out.append(
            Finding(
                "error",
                "wrong-size",
                where,
                f"{sample.key}.mp4 is {facts.width}x{facts.height}, json promises {meta.width}x{meta.height}",
                sample.key,
            )
        )
    if (facts.codec, facts.pix_fmt) != CONTRACT_CODEC:
        out.append(
            Finding(
                "error",
                "wrong-codec",
                where,
                f"{sample.key}.mp4 is {facts.codec} {facts.pix_fmt}, the contract is {' '.join(CONTRACT_CODEC)}",
                sample.key,
            )
        )
    if abs(facts.fps - meta.fps) > FPS_TOLERANCE:
        out.append(
            Finding(
                "error",
                "wrong-fps",
                where,
                f"{sample.key}.mp4 runs at {facts.fps:.3f} fps, json promises {meta.fps}",
                sample.key,
            )
        )
    return out


def validate(
    root: str, quick: bool = False, workers: int = 1, progress: Callable[[str], None] | None = None
) -> ValidationReport:
    """Validate the curation output under ``root``. ``quick`` skips decoding videos; ``workers`` decodes that
    many clips at once (threads; PyAV releases the GIL). ``progress`` is called with each shard's name."""
    report = ValidationReport(root=str(root), quick=quick)
    keys_by_subset: dict[str, dict[str, str]] = defaultdict(dict)  # subset -> key -> shard name
    claimed: dict[str, list[str]] = {}  # key -> the subsets its json says it belongs to
    pool = ThreadPoolExecutor(max_workers=max(1, workers)) if not quick else None
    pending: list[Future] = []

    def drain(limit: int) -> None:
        while len(pending) > limit:
            report.add(*pending.pop(0).result())
            report.decoded += 1

    try:
        for subset in subsets_in(root):
            for tmp in torn_shards(root, subset):
                report.add(
                    Finding(
                        "warning",
                        "torn-shard",
                        f"{subset}/{shard_name(tmp)}",
                        "unfinished .tmp shard left by a writer that died",
                    )
                )
            for path, why in refused_shards(root, subset):
                report.add(
                    Finding(
                        "error",
                        "not-a-shard",
                        f"{subset}/{shard_name(path)}",
                        f"{shard_name(path)} is {why}; never opened",
                    )
                )
            for shard in list_shards(root, subset):
                report.shards += 1
                name = shard_name(shard)
                where = f"{subset}/{name}"
                if progress:
                    progress(where)
                try:
                    why = tar_is_complete(shard)
                    if why:
                        report.add(Finding("error", "incomplete-tar", where, why))
                    refused = lambda message: report.add(  # noqa: E731 - one finding per refused member
                        Finding("error", _shard_error_code(message), where, message)
                    )
                    for sample in iter_samples(shard, on_refused=refused):
                        report.samples += 1
                        if sample.key in keys_by_subset[subset]:
                            report.add(
                                Finding(
                                    "error",
                                    "duplicate-key",
                                    where,
                                    f"{sample.key} is also in {subset}/{keys_by_subset[subset][sample.key]}",
                                    sample.key,
                                )
                            )
                        else:
                            keys_by_subset[subset][sample.key] = name
                        found, meta = check_sample(sample, subset)
                        report.add(*found)
                        if meta is not None:
                            claimed.setdefault(sample.key, meta.subsets)
                        if pool is not None and meta is not None and "mp4" in sample.members:
                            pending.append(pool.submit(check_video, sample, meta, subset))
                            drain(2 * max(1, workers))
                except ShardError as e:
                    report.add(Finding("error", _shard_error_code(str(e)), where, str(e)))
        drain(0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    report.add(*cross_check(root, keys_by_subset, claimed))
    return report


def cross_check(
    root: str, keys_by_subset: dict[str, dict[str, str]], claimed: dict[str, list[str]] | None = None
) -> list[Finding]:
    """Index <-> shards <-> ledger agreement, p2ft/ within tpt/, and every clip in each subset its json names."""
    out: list[Finding] = []
    for key, subsets in (claimed or {}).items():
        for subset in subsets:
            if key not in keys_by_subset.get(subset, {}):
                out.append(
                    Finding(
                        "error",
                        "subset-missing",
                        f"{subset}/",
                        f"{key}.json says it belongs to {subset}, no {subset} shard holds it",
                        key,
                    )
                )
    index = read_index(root)
    if not len(index):
        out.append(Finding("warning", "no-index", "index/", "no clip index; index checks skipped"))
    else:
        indexed = set()
        for row in index.itertuples():
            if (row.subset, row.key) in indexed:
                out.append(
                    Finding(
                        "error", "index-duplicate", "index/", f"{row.key} has two index rows in {row.subset}", row.key
                    )
                )
            indexed.add((row.subset, row.key))
            held = keys_by_subset.get(row.subset, {}).get(row.key)
            if held is None:
                out.append(
                    Finding(
                        "error",
                        "index-orphan",
                        "index/",
                        f"index row {row.key} in {row.subset} points "
                        f"to {row.shard}, but no {row.subset} shard holds that key",
                        row.key,
                    )
                )
            elif held != shard_name(row.shard):
                out.append(
                    Finding(
                        "error",
                        "index-wrong-shard",
                        "index/",
                        f"index row {row.key} names shard {row.shard}, the key is in {row.subset}/{held}",
                        row.key,
                    )
                )
        for subset, keys in keys_by_subset.items():
            for key, shard in keys.items():
                if (subset, key) not in indexed:
                    out.append(
                        Finding(
                            "error",
                            "not-indexed",
                            f"{subset}/{shard}",
                            f"{subset}/{shard} holds {key}, the index has no row for it",
                            key,
                        )
                    )
    for key, shard in keys_by_subset.get("p2ft", {}).items():
        if key not in keys_by_subset.get("tpt", {}) and "tpt" not in (claimed or {}).get(key, []):
            # (when the json names tpt, subset-missing above already says so)
            out.append(Finding("error", "p2ft-not-in-tpt", f"p2ft/{shard}", f"{key} is in p2ft/ but not in tpt/", key))
    ledger = read_ledger(root)
    if not len(ledger):
        out.append(Finding("warning", "no-ledger", "ledger/", "no source ledger; ledger checks skipped"))
        return out
    written: dict[str, str] = {}
    for row in ledger.itertuples():
        try:
            keys = json.loads(row.keys_json or "[]")
        except ValueError:
            out.append(Finding("error", "bad-ledger", "ledger/", f"{row.source_uri}: keys_json is not JSON"))
            continue
        if row.status != "done" and keys:
            out.append(
                Finding(
                    "warning",
                    "ledger-status",
                    "ledger/",
                    f"{row.source_uri} is {row.status} but lists {len(keys)} written clips",
                )
            )
        for key in keys:
            written[key] = row.source_uri
    all_keys = {k: f"{sub}/{s}" for sub, keys in keys_by_subset.items() for k, s in keys.items()}
    for key, uri in sorted(written.items()):
        if key not in all_keys:
            out.append(
                Finding(
                    "error", "ledger-orphan", "ledger/", f"the ledger says {uri} wrote {key}, no shard holds it", key
                )
            )
    for key, shard in sorted(all_keys.items()):
        if key not in written:
            out.append(Finding("error", "not-in-ledger", shard, f"{key} is in a shard but no ledger row lists it", key))
    return out


def findings_rows(report: ValidationReport) -> list[tuple[Any, ...]]:
    return [(f.severity, f.code, f.where, f.message) for f in report.findings] + report.summary_rows()

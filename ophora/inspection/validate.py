"""``ophora shards validate``: does a curation output keep the shard contract (docs/design.md §3)?

Checks every tar is well-formed and complete, every sample has its members, keys and json follow the schema
(:class:`ClipMeta`), each mp4 decodes to the promised frames, size and fps (skipped with ``quick``), no key appears
in two shards of a subset, and the index, the shards and the ledger agree. Problems become :class:`Finding`s; the
run never stops at the first one. The checks across the whole output are in ``cross_check.py``, the findings and
the report in ``findings.py`` (both re-exported here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pydantic import ValidationError

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
from ophora.inspection.catalog import shard_name, subsets_in, torn_shards
from ophora.inspection.cross_check import cross_check
from ophora.inspection.findings import FINDINGS_PER_CODE, Finding, ValidationReport, findings_rows

__all__ = [
    "CONTRACT_CODEC",
    "FINDINGS_PER_CODE",
    "FPS_TOLERANCE",
    "TAR_BLOCK",
    "Finding",
    "ValidationReport",
    "check_sample",
    "check_video",
    "cross_check",
    "findings_rows",
    "tar_is_complete",
    "validate",
]

TAR_BLOCK = 512
FPS_TOLERANCE = 0.01
CONTRACT_CODEC = ("h264", "yuv420p")  # docs/design.md §3: H.264, yuv420p


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

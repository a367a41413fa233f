"""The checks of ``ophora shards validate`` across a whole output: the index, the shards and the ledger agree,
p2ft/ lies within tpt/, and every clip is in each subset its json names."""

from __future__ import annotations

import json

from ophora.dataset.ledger import read_ledger
from ophora.inspection.catalog import read_index, shard_name
from ophora.inspection.findings import Finding


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

"""The same shards open with third-party readers (webdataset, Ray Data, Hugging Face datasets) and every one of
them sees the same samples the contract's own reader sees."""

from __future__ import annotations

import json

from ophora.dataset.shards import SUBSETS, iter_subset, list_shards


def _expected(root) -> dict[str, set[str]]:
    return {s: {sample.key for sample in iter_subset(str(root), s, members=())} for s in SUBSETS}


def test_webdataset_reads_the_same_samples(shard_root):
    import webdataset as wds

    for subset, keys in _expected(shard_root).items():
        ds = wds.WebDataset(list_shards(str(shard_root), subset), shardshuffle=False, empty_check=False)
        seen = []
        for sample in ds:
            assert {"mp4", "txt", "json"} <= set(sample)
            assert json.loads(sample["json"])["key"] == sample["__key__"]
            seen.append(sample["__key__"])
        assert sorted(seen) == sorted(keys)


def test_ray_data_reads_the_same_samples(shard_root, ray_local):
    import ray.data

    for subset, keys in _expected(shard_root).items():
        ds = ray.data.read_webdataset(list_shards(str(shard_root), subset), decoder=None, override_num_blocks=1)
        rows = ds.take_all()
        assert len(rows) == len(keys)
        assert {r["__key__"] for r in rows} == keys
        assert all(len(r["mp4"]) > 1000 and r["txt"] for r in rows)


def test_hugging_face_datasets_reads_the_same_samples(shard_root, tmp_path):
    import datasets

    for subset, keys in _expected(shard_root).items():
        ds = datasets.load_dataset(
            "webdataset",
            data_files={"train": list_shards(str(shard_root), subset)},
            split="train",
            cache_dir=str(tmp_path / "hf-cache"),
        )
        assert ds.num_rows == len(keys)
        assert set(ds["__key__"]) == keys
        # HF infers a Video feature for .mp4 (decoding needs torchcodec); the raw bytes are what we promise
        row = ds.cast_column("mp4", datasets.Video(decode=False))[0]
        assert row["json"]["key"] == row["__key__"]
        assert row["mp4"]["bytes"][4:8] == b"ftyp" and row["txt"] == row["json"]["instruction"]

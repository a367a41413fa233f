"""Runs video2dataset for benchmarks/bench_v2d.py. Executed by the video2dataset venv's python, never by ophora's:
it imports only the standard library and video2dataset (see scripts/make-v2d-venv.sh).

    /work/v2d-venv/bin/python benchmarks/v2d_driver.py --list files.txt --out DIR [--precision exact] [--matched]

One local file per line in ``--list``. The graph is video2dataset's single download pass: CutDetectionSubsampler
(``cuts_are_clips``) -> ClippingSubsampler -> [ResolutionSubsampler, FrameSubsampler] -> webdataset tars.
Prints one JSON line (wall seconds, clips, per-shard stats) as the last line of stdout.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import tarfile
import time
from pathlib import Path


def _patch_v2d() -> None:
    """Two bugs of video2dataset 1.3.0 (the last release) that stop its resize and fps subsamplers from running in
    the download worker at all; patched here, nothing else is changed:

    - the worker reads ``encode_formats`` from the first video subsampler, but the resolution and frame subsamplers
      only have ``encode_format`` (upstream issues #263, #311): AttributeError, the shard fails;
    - FrameSubsampler pops and re-inserts ``streams["video"]`` while the worker iterates that dict: RuntimeError
      "dictionary keys changed during iteration", every sample fails. It gets a shallow copy instead.

    Runs at import so the spawned worker processes (which re-import this file as ``__mp_main__``) get it too."""
    from video2dataset.subsamplers import FrameSubsampler, ResolutionSubsampler

    for cls in (ResolutionSubsampler, FrameSubsampler):
        if not hasattr(cls, "encode_formats"):
            cls.encode_formats = property(lambda self: {"video": self.encode_format})
    call = FrameSubsampler.__call__
    if not getattr(call, "_on_copy", False):

        def on_copy(self, streams, metadata=None):
            return call(self, dict(streams), metadata)

        on_copy._on_copy = True
        FrameSubsampler.__call__ = on_copy


_patch_v2d()


def v2d_config(args: argparse.Namespace) -> dict:
    """The video2dataset config (same shape as its configs/default.yaml)."""
    subsampling: dict = {
        # PySceneDetect ContentDetector on every frame at native fps; v2d picks the downscale (width // 64).
        "CutDetectionSubsampler": {
            "cuts_are_clips": True,
            "args": {"cut_detection_mode": "all", "threshold": args.threshold, "min_scene_len": args.min_scene_len},
        },
        # min_length == max_length: each scene cut into whole clip_seconds windows, the leftover dropped.
        "ClippingSubsampler": {
            "args": {
                "min_length": args.clip_seconds,
                "max_length": args.clip_seconds,
                "max_length_strategy": "all",
                "precision": args.precision,
            }
        },
    }
    if args.matched:
        # scale to height then centre-crop to width x height, then resample the frame rate (each re-encodes).
        subsampling["ResolutionSubsampler"] = {
            "args": {"resize_mode": "scale,crop", "height": args.height, "width": args.width}
        }
        subsampling["FrameSubsampler"] = {"args": {"frame_rate": args.fps}}
    return {
        "subsampling": subsampling,
        "reading": {
            "yt_args": {"download_size": 360, "download_audio_rate": 44100, "yt_metadata_args": None},
            "timeout": 600,
            "sampler": None,
        },
        "storage": {"number_sample_per_shard": args.per_shard, "oom_shard_count": 5, "captions_are_subtitles": False},
        "distribution": {
            "processes_count": args.processes,
            "thread_count": args.threads,
            "subjob_size": 1000,
            "distributor": "multiprocessing",
        },
    }


def count_clips(out: str) -> tuple[int, int]:
    """(mp4 members, bytes of mp4) over every tar in ``out``."""
    clips = size = 0
    for tar in glob.glob(os.path.join(out, "*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".mp4"):
                    clips += 1
                    size += m.size
    return clips, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", required=True, help="text file, one local video path per line")
    ap.add_argument("--out", required=True)
    ap.add_argument("--precision", default="exact", choices=["exact", "low", "keyframe_adjusted"])
    ap.add_argument("--matched", action="store_true", help="also resize/crop and resample fps like ophora's clips")
    ap.add_argument("--clip-seconds", type=float, default=6.125)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--threshold", type=float, default=27.0)
    ap.add_argument("--min-scene-len", type=int, default=15, help="frames at native fps")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-shard", type=int, default=1, help="inputs per shard (a shard is one process's unit)")
    args = ap.parse_args()

    from video2dataset import video2dataset

    out = os.path.abspath(args.out)
    tmp = out.rstrip("/") + ".v2d-tmp"  # video2dataset's scratch; not inside out (it owns out/_tmp)
    for d in (out, tmp):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(tmp)  # out must not exist yet: video2dataset creates it (overwrite mode would delete its _tmp)
    start = time.perf_counter()
    video2dataset(
        url_list=args.list,
        input_format="txt",
        output_folder=out,
        output_format="webdataset",
        encode_formats={"video": "mp4"},
        stage="download",
        enable_wandb=False,
        incremental_mode="incremental",
        tmp_dir=tmp,
        config=v2d_config(args),
    )
    wall = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    stats = [json.loads(Path(p).read_text()) for p in sorted(glob.glob(os.path.join(out, "*_stats.json")))]
    clips, size = count_clips(out)
    print(
        json.dumps(
            {
                "wall_s": wall,
                "clips": clips,
                "clip_bytes": size,
                "config": v2d_config(args),
                "videos": sum(s.get("count", 0) for s in stats),
                "successes": sum(s.get("successes", 0) for s in stats),
                "failed_to_subsample": sum(s.get("failed_to_subsample", 0) for s in stats),
                "failed_to_download": sum(s.get("failed_to_download", 0) for s in stats),
            }
        )
    )


if __name__ == "__main__":
    main()

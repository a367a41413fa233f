"""Tiny training shards made with real ffmpeg and the real ShardWriter: tests, the benchmark and the demo.

Each clip is an ffmpeg test pattern with its own hue and motion, paired with one instruction of the bundled
corpus, so a model can tell clips apart and a loss can fall.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ophora.clip_geometry import TINY
from ophora.dataset.shards import ClipMeta, ShardWriter, clip_key, encode_sample
from ophora.training.models import TINY_CORPUS


def synth_clip(index: int, frames: int = TINY.num_frames, height: int = TINY.height, width: int = TINY.width,
               fps: float = TINY.fps) -> bytes:
    """An H.264 yuv420p mp4 of ``frames`` frames (ffmpeg testsrc2 with a per-clip hue), as bytes."""
    hue = (index * 47) % 360
    cmd = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps:g}",
           "-vf", f"hue=h={hue},scroll=h={0.01 * (index % 5)}", "-frames:v", str(frames), "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov",
           "pipe:1"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def write_clip_shards(root: str | Path, clips_per_subset: dict[str, int], per_shard: int = 4,
                      frames: int = TINY.num_frames, height: int = TINY.height, width: int = TINY.width,
                      source: str = "feedc0de00000001", fps: float = TINY.fps) -> dict[str, list[str]]:
    """Write ``{subset: n}`` clips as shards under ``root/<subset>/``; returns the keys per subset.

    Clip indices continue across subsets, so tpt/ and p2ft/ hold different clips (tests tell them apart)."""
    instructions = [line.strip() for line in TINY_CORPUS.read_text().splitlines() if line.strip()]
    keys: dict[str, list[str]] = {}
    index = 0
    for subset, n in clips_per_subset.items():
        keys[subset] = []
        with ShardWriter(str(root), subset, prefix=f"shard-{source[:8]}", max_count=per_shard) as writer:
            for _ in range(n):
                key = clip_key(source, index)
                meta = ClipMeta(key=key, source_id=source, source_uri=f"synthetic://{source}", clip_index=index,
                                scene_index=0, start=index, end=index + frames / fps, fps=fps, num_frames=frames,
                                width=width, height=height, instruction=instructions[index % len(instructions)],
                                subsets=[subset])
                writer.write(key, encode_sample(meta, synth_clip(index, frames, height, width, fps)))
                keys[subset].append(key)
                index += 1
    return keys

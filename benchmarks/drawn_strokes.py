"""bench_privacy's ``drawn_strokes`` row: annotation strokes in the footage's own colours over the four reference
clips (../shared/reference), and what the privacy stage's overlay checks make of them.

Every stroke of :mod:`tests.fixtures.strokes` (ring, circle, arrow, line; red, orange, yellow, white and a colour
sampled from the frame; 2-5 px) is drawn at one place (drawn from a seed per clip) on all 49 frames of a clip,
which is re-encoded with libx264 and sampled as the stage samples a window (``privacy.frames`` over the clip).
Reported: windows whose drawn stroke the still-stroke check finds, and those the per-frame checks (foreign hue,
rectangle corners) find, by colour, kind and width. Clean: the unmodified clips' windows at every offset that
fits (each frame is in one), and, as a diagnostic for ``stroke_min_samples``, every pair of frames at least the
window's sample spacing apart.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path


def bench_drawn_strokes(reference: Path, cfg, seed: int) -> dict:
    import numpy as np

    from ophora.curation.frames import window_frames
    from ophora.curation.stages.privacy import graphic_colour_share, rectangle_corners
    from ophora.curation.stages.privacy.strokes import still_run, still_stroke, thin_map
    from tests.fixtures.strokes import (
        COLOURS,
        KINDS,
        WIDTHS,
        draw_stroke,
        encode,
        read_all,
        sampled_colour,
        stroke_shape,
    )

    def still(frames) -> float:
        return still_stroke(frames, cfg.stroke_side, cfg.stroke_contrast, cfg.stroke_steadiness, cfg.stroke_min_samples)

    def per_frame_checks(frames) -> bool:
        return any(
            rectangle_corners(f) >= cfg.overlay_corners or graphic_colour_share(f) > cfg.overlay_colour_share
            for f in frames
        )

    found, old, total, cpu, windows = Counter(), Counter(), Counter(), 0.0, 0
    clean_windows = clean_flagged = pairs = pairs_flagged = clean_frames = 0
    flagged_frames: set = set()
    misses = []
    with tempfile.TemporaryDirectory(prefix="ophora-strokes-") as tmp:
        for ci, clip in enumerate(sorted(reference.glob("*.mp4"))):
            frames = read_all(clip)
            n = len(frames)
            clean_frames += n
            maps = [thin_map(f, cfg.stroke_side) for f in frames]  # once per frame: windows and pairs share them
            spacing = max(1, round(n / cfg.frames))  # frames between a window's samples
            for s in range(n - spacing * (cfg.frames - 1)):
                idx = [s + k * spacing for k in range(cfg.frames)]
                clean_windows += 1
                if (
                    still_run([maps[i] for i in idx], cfg.stroke_contrast, cfg.stroke_steadiness)
                    >= cfg.stroke_min_pixels
                ):
                    clean_flagged += 1
                    flagged_frames.update((clip.name, i) for i in idx)
            for i in range(n):
                for j in range(i + spacing, n):
                    pairs += 1
                    pairs_flagged += (
                        still_run([maps[i], maps[j]], cfg.stroke_contrast, cfg.stroke_steadiness)
                        >= cfg.stroke_min_pixels
                    )
            rng = np.random.default_rng([seed, ci])
            for kind in KINDS:
                for colour in [*COLOURS, "sampled"]:
                    for width in WIDTHS:
                        shape = stroke_shape(kind, *frames.shape[1:3], rng)
                        rgb = COLOURS.get(colour) or sampled_colour(frames[0], rng)
                        path = encode(
                            np.stack([draw_stroke(f, kind, shape, rgb, width) for f in frames]),
                            Path(tmp) / f"{windows}.mp4",
                        )
                        window = window_frames(str(path), 0.0, n / 8, cfg.frames, cfg.max_side)
                        t = time.process_time()
                        hit = still(window) >= cfg.stroke_min_pixels
                        cpu += time.process_time() - t
                        windows += 1
                        keys = (f"colour={colour}", f"kind={kind}", f"width={width}", "all")
                        total.update(keys)
                        if hit:
                            found.update(keys)
                        else:
                            misses.append((clip.name, kind, colour, width))
                        if per_frame_checks(window):
                            old.update(keys)
    return {
        "windows": windows,
        "found_by_still_stroke": {k: f"{found[k]}/{total[k]}" for k in sorted(total)},
        "found_by_hue_or_corners": {k: f"{old[k]}/{total[k]}" for k in sorted(total)},
        "missed": misses,
        "clean_windows": clean_windows,
        "clean_windows_flagged": clean_flagged,
        "clean_frames": clean_frames,
        "clean_frames_flagged": len(flagged_frames),
        "clean_frame_pairs": pairs,
        "clean_frame_pairs_flagged": int(pairs_flagged),
        "still_stroke_cpu_ms_per_window": round(1000 * cpu / max(windows, 1), 2),
    }

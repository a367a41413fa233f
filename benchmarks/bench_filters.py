"""Visual filter benchmark on CPU: frames per second of each filter, the chain's cost per clip next to the cost of
transcoding that clip, and the filters' accuracy on the synthetic corpus's ground truth.

    python benchmarks/bench_filters.py --out bench-filters.json
    python benchmarks/bench_filters.py --corpus /tmp/corpus --clip-model ViT-B-32   # + a random-weight CLIP

1. Filter speed: each filter's judgement on in-memory frames (no decoding), frames per second.
   Every time is given as wall clock and as CPU time (process + ffmpeg children): the latter is the fair one on a
   shared machine.
2. Per clip: each stage through its batch interface on real windows of the corpus (decoding included), ms per
   clip, and the clip stage's ffmpeg cut + scale to 720x480 + libx264 of the same 6.125 s windows; the ratio.
3. Accuracy: privacy recall/precision on planted identifying windows, surgical windows wrongly dropped, P2FT share
   of TPT (:func:`ophora.synthetic.filter_eval.evaluate`).

Uses ``--corpus DIR`` (as written by ``ophora.synthetic.corpus.generate_corpus``), else generates a 3-video corpus
in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ophora.curation.stages.dedup import DedupStage  # noqa: E402
from ophora.curation.stages.dynamics import DynamicsStage  # noqa: E402
from ophora.curation.stages.privacy import PrivacyStage  # noqa: E402
from ophora.curation.stages.quality import QualityConfig, QualityStage  # noqa: E402
from ophora.synthetic.filter_eval import evaluate, run_stage, truth_windows  # noqa: E402


class Stopwatch:
    """Wall seconds and CPU seconds (this process plus finished child processes such as ffmpeg): on a shared
    machine the CPU time is the number that does not depend on the neighbours' load."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), self._cpu_now()
        return self

    def __exit__(self, *_) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, self._cpu_now() - self._cpu

    @staticmethod
    def _cpu_now() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime


def filter_speed(stages: dict, repeats: int) -> dict[str, dict[str, float]]:
    """Frames per second of each filter's judgement (wall clock and per CPU second)."""
    from tests.fixtures.scenes import scene_frames, scene_pairs

    out = {}
    for name, stage in stages.items():
        sample = scene_pairs if name == "dynamics" else scene_frames  # dynamics judges velocity pairs
        frames = sample("phi_text", 1, count=stage.frames, max_side=stage.max_side)
        stage.judge(frames)  # warm-up (lazy model state, caches)
        with Stopwatch() as sw:
            for _ in range(repeats):
                stage.judge(frames)
        n = repeats * len(frames)
        out[name] = {"wall": round(n / sw.wall, 2), "cpu": round(n / sw.cpu, 2)}
    return out


def per_clip(corpus: Path, stages: dict) -> dict[str, float]:
    """ms per clip of each stage (decoding included) and of the clip transcode, on full-length surgical windows."""
    from ophora.curation.config import CurateConfig
    from ophora.curation.stages.clip import Clip

    rows = [r for r, scene in truth_windows(corpus) if scene["kind"] == "surgical" and r["end"] - r["start"] > 6.1]
    out: dict[str, dict[str, float]] = {}
    for name, stage in stages.items():
        with Stopwatch() as sw:
            run_stage(stage, rows)
        out[name] = {"wall": 1000 * sw.wall / len(rows), "cpu": 1000 * sw.cpu / len(rows)}
    chain = [n for n in ("dynamics", "quality", "privacy", "dedup")]
    out["chain"] = {k: sum(out[n][k] for n in chain) for k in ("wall", "cpu")}
    with Stopwatch() as sw:
        clipped, _ = run_stage(Clip(CurateConfig.load("offline")), rows)
    failed = [r["drop"] or r["error"] for r in clipped if not r["mp4"]]
    if failed:
        raise RuntimeError(f"clip transcode failed: {failed[:3]}")
    out["transcode"] = {"wall": 1000 * sw.wall / len(rows), "cpu": 1000 * sw.cpu / len(rows)}
    out["chain_over_transcode"] = {k: out["chain"][k] / out["transcode"][k] for k in ("wall", "cpu")}
    rounded = {n: {k: round(v, 2 if n == "chain_over_transcode" else 1) for k, v in d.items()} for n, d in out.items()}
    return {**rounded, "clips": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", help="existing synthetic corpus directory (default: generate 3 videos)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per filter")
    ap.add_argument("--clip-model", default="", help="also time an open_clip architecture with random weights")
    ap.add_argument("--skip-accuracy", action="store_true", help="timings only")
    ap.add_argument("--out", help="write the numbers as JSON here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ophora-bench-filters-") as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "corpus"
        if not args.corpus:
            from ophora.synthetic.corpus import generate_corpus

            generate_corpus(corpus, videos=3, seed=7, minutes=40 / 60, max_height=480)
        privacy = PrivacyStage(None)
        stages = {
            "dynamics": DynamicsStage(None),
            "quality": QualityStage(None),
            "privacy": privacy,
            "dedup": DedupStage(None),
        }
        if args.clip_model:
            stages["quality_clip"] = QualityStage(QualityConfig(clip_model=args.clip_model, clip_pretrained="random"))
        report = {
            "frames_per_second": filter_speed(stages, args.repeats),
            "frames_per_window": {k: s.frames for k, s in stages.items()},
            "ms_per_clip": per_clip(corpus, stages),
        }
        chain = [stages["dynamics"], stages["quality"], privacy, stages["dedup"]]
        if not args.skip_accuracy:
            accuracy = evaluate(corpus, chain, privacy)
            accuracy["outcomes"] = [
                (o.video, o.kind, o.start, o.subsets, o.expect, o.drop) for o in accuracy["outcomes"]
            ]
            report["corpus"] = accuracy
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

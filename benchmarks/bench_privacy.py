"""Privacy benchmark: what reaches stored text and p2ft/ on material the detectors were not written alongside.

    python benchmarks/bench_privacy.py --out bench-privacy.json              # everything (~20 min on 2 cores)
    python benchmarks/bench_privacy.py --skip-curate --compare-faces         # text, faces, reference clips only

Seeds: 0-9999 are tuning seeds (tests and development drew identities, pictures and corpora from them);
10000 and up are evaluation seeds, used here only. Nothing in the detectors was adjusted after looking at them.

1. Text: ``--identities`` Faker identities (evaluation seeds, every locale of the generator) said in every PHI
   template, with and without cue words, lower-cased surnames, and written as capitals, recorder bars and slides:
   planted identifiers left after scrubbing. Clean surgical text (the phase scripts and eponym/device sentences
   written here, many eponyms not in the scrubber's vocabulary): words wrongly scrubbed.
2. Faces: portraits that ship with scikit-image and matplotlib pasted into frames of the four reference clips at
   8-90 % of the frame height, centre and corners (picture-in-picture), plain, grey and side-lit: windows the
   privacy stage does not mark identifying (they would reach tpt/ or p2ft/). ``--compare-faces``: MTCNN and
   BlazeFace side by side (recall, false positives on the reference clips, ms per frame).
3. The four reference clips (../shared/reference): frames flagged as face, text or overlay (every frame); strokes
   in the footage's own colours drawn over them (``drawn_strokes``, see benchmarks/drawn_strokes.py).
4. A curate run (offline profile, extractive refine) on an evaluation-seed corpus: planted identifiers in any
   stored text (clip .json/.txt, index, ledger, summary), clips of identifying scenes in p2ft/ or tpt/, overlay
   recall of the privacy stage on the truth's windows, and the privacy stage's CPU time per clip next to the
   clip transcode.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from drawn_strokes import bench_drawn_strokes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REFERENCE = ROOT / ".." / "shared" / "reference"
EVAL_SEED = 10_000
# Surgical sentences written for this benchmark (not for the scrubber): eponyms and devices, many of them absent
# from the scrubber's vocabulary, which must survive scrubbing.
CLEAN_EXTRA = [
    "I rotate the nucleus with the Sinskey hook and then the Kuglen hook.",
    "The Utrata forceps grasp the flap of the capsulorhexis.",
    "We use the Kelman tip on the Infiniti for the dense nucleus.",
    "Descemet's membrane is intact and the endothelium looks healthy.",
    "I inject Healon GV before the Tecnis lens goes in.",
    "The Alcon Centurion runs at a vacuum of four hundred.",
    "A Malyugin ring expands the small pupil.",
    "The Vannas scissors cut the anterior capsule tag.",
    "I measure the incision with the Castroviejo calipers.",
    "The McPherson forceps hold the haptic.",
    "A Lieberman speculum keeps the lids apart.",
    "Trypan blue stains the anterior capsule.",
    "The Barrett formula gave a power of twenty one diopters.",
    "We check Fuchs dystrophy before the operation.",
    "The Osher ring marks the axis of the toric lens.",
    "I use the Chang chopper to split the nucleus.",
    "The Weck sponge dries the wound edge.",
    "Viscoat protects the endothelium during phaco.",
    "The Zeiss Lumera microscope gives a good red reflex.",
    "The Connor wand lifts the edge of the capsule.",
    "A Seibel chopper helps with the horizontal chop.",
    "Schlemm's canal is not involved in this case.",
    "Elschnig pearls may form on the posterior capsule later.",
    "The Kratz scratcher polishes the posterior capsule.",
    "I place the Cionni ring in the capsular bag.",
]


class Stopwatch:
    def __enter__(self):
        import resource

        self._r = resource
        self._wall, self._cpu = time.perf_counter(), self._now()
        return self

    def _now(self) -> float:
        kids = self._r.getrusage(self._r.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    def __exit__(self, *_):
        self.wall, self.cpu = time.perf_counter() - self._wall, self._now() - self._cpu


def _contains(text: str, secret: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(secret)}(?![\w])", text, re.I) is not None


# ---------------------------------------------------------------- 1. text


def bench_text(identities: int, seed: int = EVAL_SEED) -> dict:
    import numpy as np

    from ophora.curation import phi
    from ophora.synthetic import narration as sn
    from ophora.synthetic.identity import make_identity

    people = [make_identity(np.random.default_rng([seed, i])) for i in range(identities)]
    templates = sn.scripts()["phi"]
    samples: list[tuple[str, str, list[str]]] = []  # (form, text, identifying strings)
    rng = np.random.default_rng(seed)
    for who in people:
        values = who.spoken_values()
        for template in templates:
            text = template.format(**{k: v for k, (v, _) in values.items()})
            words = [w for key, (_, ws) in values.items() if "{" + key + "}" in template for w in ws]
            samples.append(("spoken", text, words))
        last = who.patient.last
        samples.append(
            (
                "spoken, surname lower-cased",
                f"{who.patient.first} {last.lower()} will take over the closing.",
                [w.lower() for w in who.patient.words],
            )
        )
        stamp = who.burned_in_lines(rng)
        samples += [("overlay capitals", t, w) for t, w in stamp]
        samples.append(("recorder bar", *who.recorder_bar(rng)))
        samples += [("slide", t, w) for t, w in who.slide_lines()]
    with Stopwatch() as sw:
        scrubbed = phi.scrub_many([t for _, t, _ in samples])
    per_form: dict[str, Counter] = {}
    leaks = []
    for (form, text, words), (out, _) in zip(samples, scrubbed):
        c = per_form.setdefault(form, Counter())
        for w in words:
            c["planted"] += 1
            if _contains(out, w):
                c["left"] += 1
                leaks.append((form, w, out))
    s = sn.scripts()
    clean = (
        [t for lines in s["phases"].values() for t in lines]
        + s["fillers"]
        + s["asides"]
        + s["intros"]
        + s["outros"]
        + CLEAN_EXTRA
    )
    clean_words = sum(len(t.split()) for t in clean)
    wrongly = []
    for t, spans in zip(clean, phi.find_phi_many(clean)):
        wrongly += [t[a:b] for a, b, _ in spans]
    return {
        "identities": identities,
        "locales": len({p.locale for p in people}),
        "texts": len(samples),
        "planted": sum(c["planted"] for c in per_form.values()),
        "left": len(leaks),
        "by_form": {f: dict(c) for f, c in per_form.items()},
        "leaks": leaks,
        "clean_words": clean_words,
        "clean_words_scrubbed": sum(len(w.split()) for w in wrongly),
        "clean_scrubbed_share": round(sum(len(w.split()) for w in wrongly) / clean_words, 4),
        "clean_scrubbed": wrongly,
        "ms_per_text": round(1000 * sw.wall / len(samples), 2),
    }


# ---------------------------------------------------------------- 2. faces


def _face_cases(seed: int = EVAL_SEED + 1):
    """Portraits pasted so that the face (not the crop) is 8-90 % of the frame height (capped where the crop
    would not fit: the face is then as large as the frame allows)."""
    import cv2
    import numpy as np

    from ophora.curation.frames import frames_at
    from ophora.curation.stages.privacy.faces import Mtcnn
    from tests.fixtures.faces import pasted, portrait

    backgrounds = [f for clip in sorted(REFERENCE.glob("*.mp4")) for f in frames_at(str(clip), [1.0, 4.0], 720)]
    rng = np.random.default_rng(seed)
    for name in ("astronaut", "grace_hopper", "camera"):
        # the face's own height in the head-and-shoulders crop, so `share` is the face's share of the frame
        crop = portrait(name)
        face = max(f.height for f in Mtcnn(0.9, 20)(cv2.resize(crop, None, fx=2, fy=2))) / (2 * crop.shape[0])
        for look in ("plain", "grey", "side-lit"):
            for share in (0.08, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.9):
                for corner in ("centre", "top-left", "bottom-right"):
                    bg = backgrounds[int(rng.integers(len(backgrounds)))]
                    yield (name, look, share, corner), pasted(bg, crop, min(0.98, share / face), corner, look)


def bench_faces(stage) -> dict:
    """Windows whose face the privacy stage's detector (with its gate) misses: they would reach a subset (a found
    face makes a window identifying, so it is dropped before any subset)."""
    missed, n = [], 0
    with Stopwatch() as sw:
        for case, frame in _face_cases():
            n += 1
            if not stage.faces(frame):
                missed.append(case)
    by_share = Counter(c[2] for c in missed)
    return {
        "windows": n,
        "reaching_a_subset": len(missed),
        "reaching_a_subset_by_share": dict(sorted(by_share.items())),
        "missed": missed,
        "cpu_ms_per_frame": round(1000 * sw.cpu / n, 1),
    }


def compare_faces() -> dict:
    from ophora.curation.frames import frames_at
    from ophora.curation.stages.privacy.faces import BlazeFace, face_like

    out = {}
    refs = [
        f
        for clip in sorted(REFERENCE.glob("*.mp4"))
        for f in frames_at(str(clip), [i / 8 + 0.01 for i in range(49)], 720)
    ]
    for name, det in (("blazeface (whole frame + 2x2 tiles)", BlazeFace(0.6, tiles=2)),):  # MTCNN: bench_faces
        found = found_gated = n = 0
        with Stopwatch() as sw:
            for (_, _, share, _), frame in _face_cases():
                n += 1
                faces = det(frame)
                found += bool(faces)
                found_gated += any(face_like(f, *frame.shape[:2]) for f in faces)
        raw = sum(bool(det(f)) for f in refs)
        gated = sum(any(face_like(x, *f.shape[:2]) for x in det(f)) for f in refs)
        out[name] = {
            "recall": round(found / n, 3),
            "recall_gated": round(found_gated / n, 3),
            "reference_frames_flagged": raw,
            "reference_frames_flagged_gated": gated,
            "reference_frames": len(refs),
            "cpu_ms_per_frame": round(1000 * sw.cpu / n, 1),
        }
    return out


# ---------------------------------------------------------------- 3. reference clips


def bench_reference(stage) -> dict:
    from ophora.curation.frames import frames_at

    out, flagged, total = {}, Counter(), 0
    for clip in sorted(REFERENCE.glob("*.mp4")):
        frames = frames_at(str(clip), [i / 8 + 0.01 for i in range(49)], 720)
        kinds = Counter()
        for f in frames:
            found = stage.inspect(f)
            kinds.update(
                k
                for k, v in (
                    ("face", found.faces),
                    ("text", found.lines),
                    (
                        "overlay",
                        found.corners >= stage.cfg.overlay_corners
                        or found.graphic_share > stage.cfg.overlay_colour_share,
                    ),
                )
                if v
            )
            total += 1
        out[clip.name] = dict(kinds)
        flagged.update(kinds)
    return {"frames": total, "flagged": dict(flagged), "by_clip": out}


# ---------------------------------------------------------------- 4. curate run


def bench_curate(work: Path, videos: int, minutes: float) -> dict:
    from ophora.curation.config import CurateConfig
    from ophora.curation.pipeline import run_curation
    from ophora.curation.stages.clip import Clip
    from ophora.curation.stages.privacy import PrivacyStage
    from ophora.dataset.ledger import read_ledger
    from ophora.dataset.shards import read_index
    from ophora.synthetic.corpus import generate_corpus, load_truth
    from ophora.synthetic.filter_eval import evaluate, run_stage, truth_windows
    from tests.fixtures.curate import offline_config

    corpus, out = work / "corpus", work / "curated"
    generate_corpus(corpus, videos=videos, seed=EVAL_SEED + 7, minutes=minutes, max_height=480)
    truths = load_truth(corpus)
    with Stopwatch() as sw:
        summary = run_curation(offline_config(), [str(corpus / "videos")], str(out), quiet=True)
    stored = []
    for subset in ("tpt", "p2ft"):
        from ophora.dataset.shards import iter_subset

        for s in iter_subset(str(out), subset, members=["json", "txt"]):
            stored.append((subset, s.key, json.dumps(s.meta, ensure_ascii=False) + " " + s.instruction, s.meta))
    ledger = read_ledger(str(out))
    index = read_index(str(out))
    extra = (
        " ".join(str(v) for v in ledger.to_numpy().ravel())
        + " "
        + " ".join(str(v) for v in index.to_numpy().ravel())
        + " "
        + (out / "summary.json").read_text()
    )
    planted = sorted({w for t in truths for w in t["phi_words"]})
    leaks = [(k, w) for _, k, text, _ in stored for w in planted if _contains(text, w)]
    leaks += [("ledger/index/summary", w) for w in planted if _contains(extra, w)]
    by_name = {Path(t["file"]).name: t for t in truths}
    identifying = {"phi_text", "face", "face_pip", "slide"}
    in_subset = Counter()
    for subset, key, _, meta in stored:
        truth = by_name[Path(meta["source_uri"]).name]
        mid = (meta["start"] + meta["end"]) / 2
        scene = next(s for s in truth["scenes"] if s["start"] <= mid < s["end"])
        if scene["kind"] in identifying:
            in_subset[(subset, scene["kind"])] += 1
    privacy = PrivacyStage(CurateConfig.load("offline"))
    report = evaluate(corpus, [privacy])
    overlays = [o for o in report["outcomes"] if o.kind in ("overlay", "pip")]
    clean = [o for o in report["outcomes"] if o.kind == "surgical"]
    surgical_rows = [
        r for r, scene in truth_windows(corpus) if scene["kind"] == "surgical" and r["end"] - r["start"] > 6.1
    ][:12]
    with Stopwatch() as p:
        run_stage(privacy, surgical_rows)
    with Stopwatch() as c:
        run_stage(Clip(CurateConfig.load("offline")), surgical_rows)
    kinds = Counter(s["kind"] for t in truths for s in t["scenes"])
    return {
        "videos": videos,
        "minutes": minutes,
        "seed": EVAL_SEED + 7,
        "scene_kinds": dict(kinds),
        "curate_wall_s": round(sw.wall, 1),
        "clips": summary["clips_by_subset"],
        "p2ft_verdict": summary["p2ft_verdict"],
        "planted_words": len(planted),
        "stored_texts": len(stored),
        "planted_left_in_stored_text": leaks,
        "identifying_scene_clips_in_a_subset": {f"{s}/{k}": n for (s, k), n in in_subset.items()},
        "overlay_windows": len(overlays),
        "overlay_windows_kept_out_of_p2ft": sum(1 for o in overlays if "p2ft" not in o.subsets),
        "surgical_windows_kept_out_of_p2ft": f"{sum('p2ft' not in o.subsets for o in clean)}/{len(clean)}",
        "privacy_cpu_ms_per_clip": round(1000 * p.cpu / len(surgical_rows), 1),
        "transcode_cpu_ms_per_clip": round(1000 * c.cpu / len(surgical_rows), 1),
        "privacy_over_transcode": round(p.cpu / c.cpu, 2),
        "clips_timed": len(surgical_rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--identities", type=int, default=550)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=1.5)
    ap.add_argument("--text-only", action="store_true", help="only the text part")
    ap.add_argument(
        "--tuning",
        action="store_true",
        help="draw the text part from a tuning seed (1000), for development; reported numbers never use it",
    )
    ap.add_argument("--skip-curate", action="store_true")
    ap.add_argument("--compare-faces", action="store_true")
    ap.add_argument("--out", help="write the numbers as JSON here")
    ap.add_argument("--show-leaks", type=int, default=0, metavar="N", help="print N leaked texts per form")
    args = ap.parse_args()

    from ophora.curation.config import CurateConfig
    from ophora.curation.stages.privacy import PrivacyStage

    report: dict = {"evaluation_seed": EVAL_SEED}
    report["text"] = bench_text(args.identities, 1000 if args.tuning else EVAL_SEED)
    print(
        json.dumps({k: v for k, v in report["text"].items() if k not in ("leaks", "clean_scrubbed")}),
        flush=True,
    )
    if args.show_leaks:
        shown: Counter = Counter()
        for form, word, out in report["text"]["leaks"]:
            if shown[form] < args.show_leaks:
                shown[form] += 1
                print(f"LEAK [{form}] {word!r}: {out}")
        print("WRONGLY SCRUBBED:", report["text"]["clean_scrubbed"])
    if args.text_only:
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    stage = PrivacyStage(CurateConfig.load("offline"))
    if REFERENCE.is_dir():
        report["faces"] = bench_faces(stage)
        print(json.dumps(report["faces"]), flush=True)
        report["reference_clips"] = bench_reference(stage)
        print(json.dumps(report["reference_clips"]), flush=True)
        report["drawn_strokes"] = bench_drawn_strokes(REFERENCE, stage.cfg, EVAL_SEED + 3)
        print(json.dumps({k: v for k, v in report["drawn_strokes"].items() if k != "missed"}), flush=True)
        if args.compare_faces:
            report["face_detectors"] = compare_faces()
            print(json.dumps(report["face_detectors"]), flush=True)
    if not args.skip_curate:
        with tempfile.TemporaryDirectory(prefix="ophora-bench-privacy-") as tmp:
            report["curate"] = bench_curate(Path(tmp), args.videos, args.minutes)
    text = json.dumps(report, indent=2, default=str, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

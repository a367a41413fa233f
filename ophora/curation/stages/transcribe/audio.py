"""Audio for speech recognition: a source's mono 16 kHz PCM streamed from ffmpeg in chunks (never the whole
track in memory), Silero VAD speech chunks, and long pauses packed out with a map back to source time."""

from __future__ import annotations

import bisect
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ophora.video import input_args

SAMPLE_RATE = 16000


def stream_pcm(uri: str, chunk_s: float, timeout_s: float = 7200.0) -> Iterator[np.ndarray]:
    """Float32 mono 16 kHz audio of a source's first audio stream, ``chunk_s`` seconds at a time.
    Raises RuntimeError("no audio stream ...") when there is none, RuntimeError with ffmpeg's message otherwise."""
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        *input_args(uri),
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-f",
        "s16le",
        "-",
    ]
    want = int(chunk_s * SAMPLE_RATE) * 2
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        watchdog = threading.Timer(timeout_s, proc.kill)  # a stalled read (dead URL) ends instead of hanging
        watchdog.daemon = True
        watchdog.start()
        try:
            got_any = False
            while True:
                data = proc.stdout.read(want)
                if not data:
                    break
                got_any = True
                yield np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
            rc = proc.wait(timeout=timeout_s)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        message = err.read().decode("utf-8", "replace").strip()[-400:]
    if rc != 0 and not got_any:
        if "matches no streams" in message or "does not contain any stream" in message:
            raise RuntimeError(f"{uri}: no audio stream")
        raise RuntimeError(f"{uri}: ffmpeg could not decode the audio: {message}")


def speech_chunks(pcm: Iterator[np.ndarray], vad_options: Any) -> Iterator[tuple[float, np.ndarray, list[dict]]]:
    """(offset s, audio, speech) per streamed chunk, cut at a VAD silence: speech still running at a chunk's end is
    carried into the next chunk, so no word is split. ``speech`` are Silero VAD's ``{"start","end"}`` sample
    ranges inside ``audio`` (padded by ``speech_pad_ms``)."""
    from faster_whisper.vad import get_speech_timestamps

    carry, offset = np.zeros(0, np.float32), 0.0
    chunks = iter(pcm)
    done = False
    while not done:
        nxt = next(chunks, None)
        done = nxt is None
        buf = carry if nxt is None else np.concatenate([carry, nxt])
        if buf.size == 0:
            break
        speech = get_speech_timestamps(buf, vad_options)
        cut = buf.size
        if not done and speech and speech[-1]["end"] >= buf.size - SAMPLE_RATE // 10 and speech[-1]["start"] > 0:
            cut = speech[-1]["start"]  # last speech runs into the chunk end: decode it with the next chunk
            speech = speech[:-1]
        if speech:
            yield offset, buf[:cut], speech
        carry, offset = buf[cut:], offset + cut / SAMPLE_RATE


class TimeMap:
    """Maps times in packed audio (speech pieces laid end to end) back to times in the original audio."""

    def __init__(self) -> None:
        self.packed_starts: list[float] = []
        self.shifts: list[float] = []  # original start - packed start, per piece

    def add(self, packed_start: float, original_start: float) -> None:
        self.packed_starts.append(packed_start)
        self.shifts.append(original_start - packed_start)

    def __call__(self, t: float, is_end: bool = False) -> float:
        # an end exactly on a junction belongs to the piece before it
        i = (bisect.bisect_left if is_end else bisect.bisect_right)(self.packed_starts, t) - 1
        return t + self.shifts[max(i, 0)] if self.shifts else t


def pack_speech(
    audio: np.ndarray, speech: list[dict], max_pause_s: float, max_clip_s: float = 30.0
) -> tuple[np.ndarray, list[dict], TimeMap]:
    """(audio to decode, whisper clips in it in seconds, map back to ``audio``'s times): the speech pieces with the
    pauses between them shortened to ``max_pause_s`` (the real audio of the pause, not made-up silence), so each
    30 s window whisper encodes holds more speech (the encoder costs the same for 3 s or 30 s) while whisper
    still hears the speaker pause; consecutive speech grouped into clips of at most ``max_clip_s``."""
    keep = int(max_pause_s * SAMPLE_RATE)
    tmap, clips, pieces, pos, prev_end = TimeMap(), [], [], 0, None
    for s in speech:
        begin = s["start"] if prev_end is None else max(prev_end, s["start"] - keep)
        tmap.add(pos / SAMPLE_RATE, begin / SAMPLE_RATE)
        start, end = (pos + s["start"] - begin) / SAMPLE_RATE, (pos + s["end"] - begin) / SAMPLE_RATE
        if clips and end - clips[-1]["start"] <= max_clip_s:
            clips[-1]["end"] = end
        else:
            clips.append({"start": start, "end": end})
        pieces.append(audio[begin : s["end"]])
        pos, prev_end = pos + s["end"] - begin, s["end"]
    return (np.concatenate(pieces) if pieces else audio[:0]), clips, tmap


# ---------------------------------------------------------------- hallucination guards

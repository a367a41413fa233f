"""Sidecar subtitles: SubRip (.srt), WebVTT (.vtt) and YouTube/yt-dlp timed text (.json3) -> timed cues.

:func:`load` returns ``[{"start", "end", "text"}]`` in seconds, sorted, markup removed, or raises
:class:`SubtitleError` naming the file and why (unreadable, too large, undecodable, malformed, empty). A file is
never executed or unpickled; json3 is parsed with ``json``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ophora.bounded_json import JSONRefused
from ophora.bounded_json import loads as bounded_loads

MAX_BYTES = 32 << 20  # a subtitle file larger than this is not a subtitle file
SUFFIXES = (".srt", ".vtt", ".json3")

_TIME = r"(?:(\d{1,3}):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE_TIME = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <c.colour>, <00:00:01.000>, {\an8}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


class SubtitleError(ValueError):
    """A subtitle sidecar cannot be used; the message names the file and the problem."""


def language_of(path: str | Path) -> str | None:
    """The language tag in a name such as ``talk.en.vtt`` or ``talk.pt-BR.json3`` (lower-cased primary tag)."""
    parts = Path(path).name.split(".")
    if len(parts) >= 3 and re.fullmatch(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*", parts[-2]):
        return parts[-2].split("-")[0].split("_")[0].lower()
    return None


def decode(data: bytes, name: str) -> str:
    """Text of a subtitle file: a BOM decides (UTF-8/16/32), else UTF-8, else Windows-1252 (old SRTs); text with
    NUL or other control characters after decoding is refused as binary or mis-declared."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
                break
            except UnicodeDecodeError as e:
                raise SubtitleError(f"{name}: declares {codec} by its byte-order mark but is not ({e})") from e
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError as e:
                raise SubtitleError(f"{name}: neither UTF-8 nor Windows-1252 text ({e})") from e
    if _CONTROL.search(text):
        raise SubtitleError(f"{name}: holds control characters; binary, or UTF-16 without a byte-order mark")
    return text.lstrip("\ufeff")


def _seconds(h: str | None, m: str, s: str, frac: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _clean(lines: list[str]) -> str:
    text = " ".join(_TAG.sub("", ln).strip() for ln in lines)
    return re.sub(
        r"\s+", " ", text.replace("&nbsp;", " ").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    ).strip()


def parse_timed_blocks(text: str, name: str) -> list[dict]:
    """Cues of SRT or VTT text: blocks separated by blank lines, each with one ``start --> end`` line. Blocks
    without a timing line (numbers, WEBVTT header, NOTE, STYLE, REGION) are skipped; a timing line that does not
    parse, or ends before it starts, makes the whole file malformed."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        at = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if at is None:
            continue
        m = _CUE_TIME.match(lines[at])
        if not m:
            raise SubtitleError(f"{name}: malformed cue timing {lines[at][:80]!r}")
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        if end < start:
            raise SubtitleError(f"{name}: cue ends before it starts ({lines[at][:80]!r})")
        body = _clean(lines[at + 1 :])
        if body:
            cues.append({"start": start, "end": end, "text": body})
    return cues


def parse_json3(text: str, name: str) -> list[dict]:
    """Cues of YouTube timed text (``{"events": [{"tStartMs", "dDurationMs", "segs": [{"utf8"}]}]}``)."""
    try:
        doc = bounded_loads(text, name, max_bytes=MAX_BYTES)
    except JSONRefused as e:  # not JSON, or nested deeper than any timed text (a RecursionError otherwise)
        raise SubtitleError(str(e)) from None
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise SubtitleError(f"{name}: json3 without an 'events' list")
    cues = []
    for ev in events:
        if not isinstance(ev, dict) or not isinstance(ev.get("segs"), list):
            continue
        try:
            start = float(ev["tStartMs"]) / 1000
            end = start + float(ev.get("dDurationMs", 0)) / 1000
        except (KeyError, TypeError, ValueError) as e:
            raise SubtitleError(f"{name}: event without a usable tStartMs/dDurationMs ({e})") from e
        body = _clean(["".join(str(s.get("utf8", "")) for s in ev["segs"] if isinstance(s, dict))])
        if body:
            cues.append({"start": start, "end": max(end, start), "text": body})
    return cues


def _drop_rolling_repeats(cues: list[dict]) -> list[dict]:
    """Auto-captions repeat the previous cue's text at the start of the next; keep each phrase once."""
    out: list[dict] = []
    for cue in cues:
        if out and cue["text"].startswith(out[-1]["text"]) and cue["start"] < out[-1]["end"] + 0.5:
            rest = cue["text"][len(out[-1]["text"]) :].strip()
            if not rest:
                out[-1]["end"] = max(out[-1]["end"], cue["end"])
                continue
            cue = {**cue, "text": rest}
        out.append(cue)
    return out


def load(path: str | Path, duration: float | None = None) -> list[dict]:
    """Cues ``[{"start", "end", "text"}]`` (seconds, sorted by start) of a .srt, .vtt or .json3 file.

    With ``duration`` (the video's length), cues starting after it are dropped and ends are clipped to it.
    Raises SubtitleError (never anything else for bad content) naming the file when it cannot be read, is larger
    than MAX_BYTES, cannot be decoded, is malformed, or holds no cue with text."""
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SubtitleError(f"{name}: unknown subtitle format {suffix!r} (expected one of {', '.join(SUFFIXES)})")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SubtitleError(f"{name}: {size} bytes is too large for a subtitle file")
        data = path.read_bytes()
    except OSError as e:
        raise SubtitleError(f"{name}: cannot read ({e.strerror or e})") from e
    text = decode(data, name)
    if not text.strip():
        raise SubtitleError(f"{name}: empty")
    cues = parse_json3(text, name) if suffix == ".json3" else parse_timed_blocks(text, name)
    cues = _drop_rolling_repeats(sorted(cues, key=lambda c: (c["start"], c["end"])))
    if duration is not None:
        cues = [{**c, "end": min(c["end"], duration)} for c in cues if c["start"] < duration]
    if not cues:
        raise SubtitleError(
            f"{name}: no cue with text" + (f" inside the video's {duration:.1f} s" if duration is not None else "")
        )
    return cues

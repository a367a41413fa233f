"""probe: ffprobe facts about a source, its stable source id, and rejection of unusable inputs with a reason."""

from __future__ import annotations

import json
import os
import re
import stat
from fractions import Fraction
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from ophora.bounded_json import JSONRefused
from ophora.bounded_json import loads as bounded_loads
from ophora.curation.inputs import localize
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import Reject, RowStage, ToolError, ffmpeg_args, run_tool
from ophora.dataset.shards import source_id_for_file, source_id_from_stable_id
from ophora.video import CONTAINER_FORMATS, admitted, ffmpeg_input, ffprobe_args

_REFUSED = re.compile(r"\[(\w+) @ [^\]]*\] Format not on whitelist")  # "[hls @ 0x55d...] Format not on ..."
_MAX_INFO_JSON = 8 << 20  # .info.json sidecars are small; a huge one is not read


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if value > 0 else 0.0


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    return int(stream.get("tags", {}).get("rotate", 0) or 0) % 360


def _stable_id(sidecars: dict[str, str]) -> str | None:
    """The ``id`` of the source's ``.info.json`` (None when there is none or it names none); Reject when the
    sidecar exists but is no usable JSON object (too large, nested too deep, not JSON): the id would name the
    clips, so guessing past a broken one would give other keys once it is fixed."""
    uri = sidecars.get("info.json")
    if not uri:
        return None
    try:
        with fsspec.open(uri, "rb") as fh:
            raw = fh.read(_MAX_INFO_JSON + 1)
        info = bounded_loads(raw, ".info.json sidecar", max_bytes=_MAX_INFO_JSON, want=dict)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Reject(f"unreadable .info.json sidecar ({e})") from None
    except JSONRefused as e:
        raise Reject(f"unusable {e}") from None
    value = info.get("id")
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


class ProbeConfig(BaseModel):
    """The ``probe`` section: input checks (ffprobe)."""

    model_config = ConfigDict(extra="forbid")

    min_duration: float = Field(2.0, gt=0, description="reject inputs shorter than this many seconds")
    min_width: int = Field(64, gt=0, description="reject inputs narrower than this (display pixels)")
    min_height: int = Field(64, gt=0, description="reject inputs lower than this (display pixels)")
    max_pixels: int = Field(
        3840 * 2160,
        gt=0,
        description="reject frames larger than this many pixels (8K is refused by default: "
        "decoding it costs ~4x a 4K input for clips that are 720 wide anyway)",
    )
    timeout_s: float = Field(120.0, gt=0, description="ffprobe time limit per input")


class Probe(RowStage):
    """Fills ``source_id``, ``local_path``, ``duration`` and ``facts_json`` (width/height as displayed, fps,
    rotation, audio, codec, variable frame rate); rejects empty, unreadable, undecodable, audio-only, too short,
    too small and too large inputs."""

    name = "probe"
    level = "source"
    sections = {"probe": ProbeConfig}
    resources = stage_resources(0.1, (1, 1))
    holds_model = False  # cheap to build: Ray tasks in pooled workers, not an actor process of its own

    def process(self, row: dict[str, Any]) -> None:
        sidecars = json.loads(row["sidecars_json"] or "{}")
        try:
            local = localize(row["source_uri"], self.run.cache_dir)
            if os.path.isdir(local):
                raise Reject("not a file")
            if not stat.S_ISREG(os.stat(local).st_mode):  # a FIFO or device would block or never end
                raise Reject("not a regular file (a FIFO, socket or device)")
            if os.path.getsize(local) == 0:
                raise Reject("empty file (0 bytes)")
            stable = _stable_id(sidecars)
            if stable:
                row["source_id"] = source_id_from_stable_id(stable)
            else:
                with open(local, "rb") as fh:
                    row["source_id"] = source_id_for_file(fh)
        except FileNotFoundError as e:
            raise Reject(f"unreadable (not found: {e})") from e
        except PermissionError as e:
            raise Reject(f"unreadable (permission denied: {e})") from e
        row["local_path"] = local
        facts = self._facts(local)
        row["facts_json"] = json.dumps(facts, sort_keys=True)
        row["duration"] = facts["duration"]

    def _facts(self, local: str) -> dict[str, Any]:
        args = ffprobe_args(local, "-show_format", "-show_streams", "-of", "json")
        try:
            info = json.loads(run_tool(args, self.cfg.timeout_s) or b"{}")
        except ToolError as e:
            refused = _REFUSED.search(e.stderr)  # ffmpeg refused the demuxer before it read a header
            if refused:
                raise Reject(
                    f"not a video container ({refused.group(1)}: playlists and references to other files "
                    f"are never followed; admitted: {', '.join(CONTAINER_FORMATS)})"
                ) from e
            raise Reject(f"undecodable ({e})") from e
        if not admitted(info.get("format", {}).get("format_name", "")):
            raise Reject(f"not a video container ({info.get('format', {}).get('format_name', '?')})")
        streams = info.get("streams", [])
        videos = [
            s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
        ]
        if not videos:
            raise Reject(
                "no video stream" + (" (audio only)" if any(s.get("codec_type") == "audio" for s in streams) else "")
            )
        v = videos[0]
        width, height = int(v.get("width") or 0), int(v.get("height") or 0)
        rotation = _rotation(v)
        if rotation in (90, 270):
            width, height = height, width
        fmt = info.get("format", {})
        duration = float(v.get("duration") or fmt.get("duration") or 0.0)
        avg, real = _rate(v.get("avg_frame_rate")), _rate(v.get("r_frame_rate"))
        facts = {
            "width": width,
            "height": height,
            "rotation": rotation,
            "duration": duration,
            "fps": avg or real,
            "variable_frame_rate": bool(avg and real and abs(avg - real) > 0.01 * real),
            "codec": v.get("codec_name", ""),
            "pix_fmt": v.get("pix_fmt", ""),
            "has_audio": any(s.get("codec_type") == "audio" for s in streams),
            "format": fmt.get("format_name", ""),
            "size": int(fmt.get("size") or 0),
        }
        if width * height == 0:
            raise Reject("undecodable (the video stream has no frame size)")
        if width * height > self.cfg.max_pixels:
            raise Reject(f"too large ({width}x{height} frames exceed probe.max_pixels={self.cfg.max_pixels})")
        if width < self.cfg.min_width or height < self.cfg.min_height:
            raise Reject(f"too small ({width}x{height}, minimum {self.cfg.min_width}x{self.cfg.min_height})")
        if duration < self.cfg.min_duration:
            raise Reject(f"too short ({duration:.2f} s, minimum {self.cfg.min_duration:g} s)")
        self._check_decodes(local)
        return facts

    def _check_decodes(self, local: str) -> None:
        """Decode the first frame: a container ffprobe can read may still hold an undecodable stream."""
        args = ffmpeg_args(ffmpeg_input(local).output("-", format="null", vframes=1))
        try:
            run_tool(args, self.cfg.timeout_s)
        except ToolError as e:
            raise Reject(f"undecodable ({e})") from e

"""What every curation stage shares: the row every stage reads and returns, and how a stage drops or rejects.

A row is one source (``window_index == -1``, before the window split) or one clip window of a source (after it).
Rows carry paths and small facts only; ``mp4`` holds bytes from the clip stage on. Values are never None so
that every block has the same Arrow schema. Things later stages add about a clip (instruction, narration,
scores, flags, ``p2ft_reasons``...) go into ``meta_json``, whose keys are :class:`~ophora.dataset.shards.ClipMeta`
fields. ``transcript_json`` carries a source's transcript from the transcribe stage to the window split (which
empties it); ``phi_json`` counts, by kind, what PHI scrubbing replaced in a window's stored text (for the summary).

A stage signals outcomes by raising :class:`Reject` (a source-level stage: the source is rejected; a window-level
stage: the window is dropped), or by letting any other exception escape (recorded as an error: the source is
failed and retried by a resume). Either way the row goes on, so every input reaches the ledger.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from ophora.curation.stages.base import Stage
from ophora.dataset.shards import ClipMeta

# what stages may put in ``meta_json``: the clip metadata fields a stage fills (the writer adds the key and ids)
META_FIELDS = frozenset(ClipMeta.model_fields)

ROW_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("source_id", pa.string()),
        ("sidecars_json", pa.string()),
        ("local_path", pa.string()),
        ("facts_json", pa.string()),
        ("duration", pa.float64()),
        ("scenes_json", pa.string()),
        ("window_index", pa.int64()),
        ("windows_total", pa.int64()),
        ("scene_index", pa.int64()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("reject", pa.string()),
        ("error", pa.string()),
        ("drop", pa.string()),
        ("meta_json", pa.string()),
        ("transcript_json", pa.string()),
        ("phi_json", pa.string()),
        ("dedup_signature", pa.string()),
        ("mp4", pa.binary()),
    ]
)

_DEFAULTS: dict[str, Any] = {
    "source_uri": "",
    "source_id": "",
    "sidecars_json": "{}",
    "local_path": "",
    "facts_json": "{}",
    "duration": 0.0,
    "scenes_json": "[]",
    "window_index": -1,
    "windows_total": 0,
    "scene_index": 0,
    "start": 0.0,
    "end": 0.0,
    "reject": "",
    "error": "",
    "drop": "",
    "meta_json": "{}",
    "transcript_json": "{}",
    "phi_json": "{}",
    "dedup_signature": "",
    "mp4": b"",
}


class Reject(Exception):
    """Raised by a stage: the source is unusable (source-level stage) or the window is dropped (window-level
    stage). The message is the reason a person reads in the ledger, without the stage name."""


def new_row(**fields: Any) -> dict[str, Any]:
    """A row with every column present (defaults for the ones not given)."""
    unknown = set(fields) - set(_DEFAULTS)
    if unknown:
        raise KeyError(f"not row columns: {sorted(unknown)}")
    return {**_DEFAULTS, **fields}


def batch_to_rows(batch: pa.Table) -> list[dict[str, Any]]:
    return batch.to_pylist()


def rows_to_batch(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> one Arrow batch of :data:`ROW_SCHEMA`; a key that is not a row column is a stage's bug and raises
    here, where the stage emits it (KeyError naming it)."""
    return pa.Table.from_pylist([new_row(**r) for r in rows], schema=ROW_SCHEMA)


def is_settled(row: dict[str, Any]) -> bool:
    """True when nothing more should happen to the row: the source was rejected or failed, or the window dropped."""
    return bool(row["reject"] or row["error"] or row["drop"])


def read_meta(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["meta_json"] or "{}")


def update_meta(row: dict[str, Any], **fields: Any) -> None:
    """Merge ClipMeta fields into the row's ``meta_json`` (lists such as ``p2ft_reasons`` are extended); a name that
    is not a ClipMeta field raises KeyError here, in the stage that wrote it, not at the write stage."""
    unknown = set(fields) - META_FIELDS
    if unknown:
        raise KeyError(f"not clip metadata fields (ClipMeta): {sorted(unknown)}")
    meta = read_meta(row)
    for k, v in fields.items():
        meta[k] = meta.get(k, []) + list(v) if isinstance(v, list) and isinstance(meta.get(k), list) else v
    row["meta_json"] = json.dumps(meta, sort_keys=True)


class RowStage(Stage):
    """Base of the stages that handle one row at a time: ``__call__(batch) -> batch`` applies :meth:`process` to
    every live row and turns :class:`Reject` and errors into row outcomes. ``level`` is "source" (runs before the
    window split) or "window" (runs on clip windows)."""

    def process(self, row: dict[str, Any]) -> None:  # pragma: no cover - every stage overrides it
        raise NotImplementedError

    def wants(self, row: dict[str, Any]) -> bool:
        return not is_settled(row) and ((row["window_index"] >= 0) == (self.level == "window"))

    def apply(self, row: dict[str, Any], step=None) -> None:
        """Run ``step(row)`` (default :meth:`process`) on one row, recording a Reject or an error on the row
        instead of raising."""
        try:
            (step or self.process)(row)
        except Reject as e:
            row["reject" if self.level == "source" else "drop"] = f"{self.name}: {e}"
        except Exception as e:  # noqa: BLE001 - any failure of one input must not stop the run
            row["error"] = f"{self.name}: {type(e).__name__}: {e}"[:2000]

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch_to_rows(batch)
        for row in rows:
            if self.wants(row):
                self.apply(row)
        return rows_to_batch(rows)


class ToolError(RuntimeError):
    """ffmpeg/ffprobe exited non-zero or ran out of time; the message is its last stderr line, ``stderr`` the
    end of what it printed."""

    def __init__(self, message: str, stderr: str = ""):
        super().__init__(message)
        self.stderr = stderr


def run_tool(args: list[str], timeout: float) -> bytes:
    """Run ffmpeg/ffprobe from an argument list (never a shell) with a time limit; its stdout on success."""
    import subprocess

    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"{args[0]} took longer than {timeout:g} s") from e
    if done.returncode != 0:
        text = done.stderr.decode("utf-8", "replace").strip()
        lines = text.splitlines()
        raise ToolError(lines[-1][:300] if lines else f"{args[0]} exited with {done.returncode}", text[-4000:])
    return done.stdout


def ffmpeg_args(stream) -> list[str]:
    """The argument list of an ffmpeg-python stream, quiet and non-interactive (global options first)."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", *stream.compile()[1:]]

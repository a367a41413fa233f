"""Prompts to sample from: read from CSV, plain text or JSONL, or the bundled cataract-phase set.

A prompt that cannot be used (empty, too long for the text encoder, a broken JSONL line) is kept as a
:class:`Prompt` with ``problem`` set, so the sampler can report it in the manifest instead of crashing the run.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

BUILTIN = {"cataract-phases": "cataract_phases.csv"}
_SAFE_ID = re.compile(r"[^0-9A-Za-z._-]+")


class PromptError(ValueError):
    """The prompt file as a whole cannot be read; the message names the file and why."""


@dataclass
class Prompt:
    """One instruction to render. ``seed`` (optional) overrides the run's seed for this prompt."""

    id: str
    text: str
    phase: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def safe_id(value: str, fallback: str) -> str:
    """``value`` reduced to characters safe in a file name (never a path), or ``fallback`` when nothing is left."""
    cleaned = _SAFE_ID.sub("_", value).strip("._")[:80]
    return cleaned or fallback


def _seed(value: Any, where: str) -> tuple[int | None, str]:
    if value in (None, ""):
        return None, ""
    try:
        return int(value), ""
    except (TypeError, ValueError):
        return None, f"{where}: seed {value!r} is not an integer"


def _from_row(
    row: dict[str, Any], n: int, where: str, id_column: str, prompt_column: str, phase_column: str, seed_column: str
) -> Prompt:
    text = row.get(prompt_column)
    seed, problem = _seed(row.get(seed_column), where)
    extra = {k: v for k, v in row.items() if k not in (id_column, prompt_column, phase_column, seed_column)}
    prompt = Prompt(
        id=safe_id(str(row.get(id_column) or ""), f"p{n:04d}"),
        text=str(text or "").strip(),
        phase=(str(row[phase_column]).strip() or None) if row.get(phase_column) else None,
        seed=seed,
        extra=extra,
        problem=problem,
    )
    if text is None:
        prompt.problem = f"{where}: no {prompt_column!r} field"
    return prompt


def read_prompts(
    path: str | Path,
    id_column: str = "id",
    prompt_column: str = "prompt",
    phase_column: str = "phase",
    seed_column: str = "seed",
) -> list[Prompt]:
    """Prompts from ``path``: ``.csv``/``.tsv`` (header row; columns named by the arguments), ``.jsonl`` (one
    object per line with the same keys, or a bare JSON string) or any other suffix as text (one prompt per line;
    blank lines and lines starting with ``#`` skipped). ``path`` may also name a bundled set
    (``cataract-phases``). Ids are made file-name safe and unique."""
    name = str(path)
    if name in BUILTIN:
        return read_prompts(builtin_path(name), id_column, prompt_column, phase_column, seed_column)
    p = Path(path)
    if not p.is_file():
        raise PromptError(f"{p}: no such prompt file (or bundled set: {', '.join(BUILTIN)})")
    try:
        body = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise PromptError(f"{p}: cannot read as UTF-8 text ({e})") from e
    cols = (id_column, prompt_column, phase_column, seed_column)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        prompts = _read_table(body, p, "\t" if suffix == ".tsv" else ",", cols)
    elif suffix == ".jsonl":
        prompts = _read_jsonl(body, p, cols)
    else:
        prompts = [
            Prompt(id=f"p{n:04d}", text=line.strip())
            for n, line in enumerate(
                (ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), start=1
            )
        ]
    return unique_ids(prompts)


def _read_table(body: str, p: Path, delimiter: str, cols: tuple[str, str, str, str]) -> list[Prompt]:
    reader = csv.DictReader(body.splitlines(), delimiter=delimiter)
    if reader.fieldnames is None or cols[1] not in reader.fieldnames:
        raise PromptError(
            f"{p}: no {cols[1]!r} column (header: {reader.fieldnames}); name the column with --prompt-column"
        )
    return [_from_row(row, n, f"{p.name} row {n}", *cols) for n, row in enumerate(reader, start=1)]


def _read_jsonl(body: str, p: Path, cols: tuple[str, str, str, str]) -> list[Prompt]:
    prompts = []
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            prompts.append(Prompt(id=f"p{n:04d}", text="", problem=f"{where}: not JSON ({e.msg})"))
            continue
        if isinstance(row, str):
            row = {cols[1]: row}
        if not isinstance(row, dict):
            prompts.append(Prompt(id=f"p{n:04d}", text="", problem=f"{where}: not an object or string"))
            continue
        prompts.append(_from_row(row, n, where, *cols))
    return prompts


def unique_ids(prompts: Iterable[Prompt]) -> list[Prompt]:
    """The prompts with repeated ids suffixed ``-2``, ``-3``... so every output file name is distinct."""
    seen: dict[str, int] = {}
    out = []
    for prompt in prompts:
        count = seen.get(prompt.id, 0) + 1
        seen[prompt.id] = count
        if count > 1:
            prompt.id = f"{prompt.id}-{count}"
        out.append(prompt)
    return out


def builtin_path(name: str) -> Path:
    """The file of a bundled prompt set (``cataract-phases``: one instruction per Cataract-1K phase)."""
    return Path(str(resources.files("ophora.inference").joinpath("prompts", BUILTIN[name])))


def as_prompts(prompts: str | Path | Prompt | Iterable[str | Prompt]) -> list[Prompt]:
    """Whatever a caller passes (a file, a bundled set name, one text, Prompt objects) as a list of Prompts."""
    if isinstance(prompts, Prompt):
        return [prompts]
    if isinstance(prompts, Path) or (isinstance(prompts, str) and (prompts in BUILTIN or Path(prompts).is_file())):
        return read_prompts(prompts)
    if isinstance(prompts, str):
        return [Prompt(id="p0001", text=prompts.strip())]
    out = [
        p if isinstance(p, Prompt) else Prompt(id=f"p{n:04d}", text=str(p).strip())
        for n, p in enumerate(prompts, start=1)
    ]
    return unique_ids(out)


def check_prompt(prompt: Prompt, tokenizer: Any, max_tokens: int) -> str:
    """Why ``prompt`` cannot be rendered ('' when it can): empty, or more tokens than the text encoder takes
    (the pipeline would silently cut it, and the video would not follow the whole instruction)."""
    if prompt.problem:
        return prompt.problem
    if not prompt.text:
        return "empty prompt"
    count = len(tokenizer(prompt.text, add_special_tokens=True).input_ids)
    if count > max_tokens:
        return f"prompt is {count} tokens, over the text encoder's limit of {max_tokens}"
    return ""

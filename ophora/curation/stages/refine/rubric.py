"""The instruction rubric (benchmarks/instruction_rubric.yaml): is a refine result a valid imperative naming what
its narration line does. Used by benchmarks/bench_footage.py and tests/curation/test_instruction_form.py."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ophora.curation.stages.refine.instruction_form import parse_imperative

RUBRIC = Path(__file__).resolve().parents[4] / "benchmarks" / "instruction_rubric.yaml"


def load_lines(path: str | Path = RUBRIC, part: str = "lines") -> list[dict]:
    """The rubric's narration lines: ``{"narration", "verbs", "objects"}`` or ``{"narration", "action": "none"}``;
    ``part`` "lines" (the development set) or "held_out" (written after the rules, measured once)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))[part]


def rubric_parts(path: str | Path = RUBRIC) -> list[str]:
    """The rubric's parts in file order: "lines" (development), "held_out", "held_out_2", ..."""
    return list(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def judge(result: dict, line: dict) -> tuple[bool, str]:
    """(passes, why not) for a refine result on a rubric line (see the rubric in the YAML file)."""
    from ophora.curation.stages.refine import RefineConfig, complaint

    if line.get("action") == "none":
        return (not result["relevant"], "" if not result["relevant"] else "wrote an instruction for no action")
    if not result["relevant"]:
        return False, f"said no action: {result.get('reason', '')}"
    text = result["instruction"]
    action, why = parse_imperative(text)
    if action is None:
        return False, f"form: {why}"
    if action.verb not in line["verbs"]:
        return False, f"action: verb {action.verb!r} is not one of {line['verbs']}"
    words = set(re.findall(r"[a-z0-9/-]+", text.lower()))
    if not words & {o.lower() for o in line["objects"]}:
        return False, f"object: none of {line['objects']} named"
    foreign = complaint({"relevant": True, "instruction": text}, RefineConfig(), line["narration"])
    if foreign and not foreign.startswith("the instruction names no cataract"):
        return False, f"foreign: {foreign}"
    return True, ""

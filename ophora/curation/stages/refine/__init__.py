"""Refine stage: a window's (PHI-scrubbed) narration -> one concise, imperative surgical instruction, or a drop
with "not a surgical action".

An LLM backend (transformers, CTranslate2 or OpenAI-compatible, ``backends.py``) answers JSON ``{relevant, instruction,
phase}`` from the versioned prompt in ``prompts/``. Each answer is validated (``validator.py``): length, no first
person, no talk of the video, no PHI, its form read by spaCy's parser (one imperative sentence whose first word is an
action verb with an object, no dangling clause: ``instruction_form.py``), names a surgical action of its own, and
says what the narration says (its phase, or its verb or object); a rejected answer gets one retry with the
validator's complaint, then the extractive rules answer instead (``fallback: true``). Backend, model, prompt
version, fallback and reason are recorded with every result.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation import phi
from ophora.curation.cataract_actions import PHASES, phase_of, phase_scores
from ophora.curation.stages.base import stage_resources
from ophora.curation.stages.common import RowStage, read_meta, update_meta
from ophora.curation.stages.refine.backends import make_backend
from ophora.curation.stages.refine.extractive import ExtractiveBackend
from ophora.curation.stages.refine.instruction_form import parse_imperative
from ophora.curation.stages.refine.validator import complaint

__all__ = ["NOT_SURGICAL", "RefineConfig", "RefineStage", "Refiner", "complaint", "parse_answer"]

NOT_SURGICAL = "not a surgical action"
STEER_START = '{"relevant": true, "instruction": "'
_ARTICLES = frozenset("the a an".split())


class RefineConfig(BaseModel):
    """The ``refine`` section: narration -> one instruction (LLM)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["extractive", "transformers", "ctranslate2", "openai"] = Field(
        "extractive",
        description="who writes instructions: rules only, a local causal LM (through transformers, or "
        "converted once to CTranslate2 int8: ~Nx faster on CPU), or an HTTP endpoint",
    )
    model: str = Field(
        "",
        description="transformers, ctranslate2: model dir, hub id or .gguf file (empty: the "
        "bundled SmolLM2 GGUF; ctranslate2 also takes a converted folder); openai: the "
        "served model's name",
    )
    prompt: str = Field("refine_v2", description="prompt template under ophora/curation/stages/refine/prompts/")
    device: str = Field(
        "auto",
        description="transformers, ctranslate2: device ('auto': cuda when available, in "
        "bfloat16 / int8_float16; else cpu in float32 / int8)",
    )
    threads: int = Field(
        0,
        ge=0,
        description="transformers, ctranslate2: CPU threads (0: the library's default; ctranslate2 on a CPU: up to "
        "4 batches side by side, a thread each)",
    )
    compute_type: str = Field(
        "auto", description="ctranslate2: compute precision ('auto': int8 on CPU, int8_float16 on GPU)"
    )
    batch_size: int = Field(8, gt=0, description="transformers, ctranslate2: conversations generated together")
    max_new_tokens: int = Field(64, gt=0, description="answer length cap in tokens")
    base_url: str = Field("", description="openai: endpoint base, e.g. http://host:8000/v1")
    api_key_env: str = Field("OPHORA_REFINE_API_KEY", description="openai: environment variable holding the key")
    timeout_s: float = Field(30.0, gt=0, description="openai: per-request timeout")
    retries: int = Field(2, ge=0, description="openai: retries on timeouts, 429 and 5xx (with backoff)")
    concurrency: int = Field(4, gt=0, description="openai: requests in flight per actor")
    json_mode: bool = Field(True, description="openai: ask for response_format json_object")
    recheck_irrelevant: bool = Field(
        True,
        description="an LLM's 'not a surgical action' is challenged when the narration names a cataract "
        "action by the vocabulary (small models often say no too readily)",
    )
    steer: bool = Field(
        False,
        description="transformers, ctranslate2: when the narration describes an action, the answer is made to "
        'start with \'{"relevant": true, "instruction": "\' so the model only writes the '
        "instruction (a small model says 'not relevant' to most narration)",
    )
    steer_action: bool = Field(
        True,
        description="with steer: the instruction is made to start at the verb of the narration's main action "
        "as the rules read it (spaCy's parse), so a small model writes what the verb acts on "
        "rather than choosing a verb; where the rules find no action the model answers unsteered. "
        "Off: steered whenever the cataract vocabulary names an action",
    )
    steer_gate: bool = Field(
        False,
        description="with steer_action: a narration in which the rules find no action is answered by the rules "
        "('not a surgical action') without asking the model (SmolLM2-135M, on the 73 such rubric lines, never "
        "found an action the rules missed and was rejected twice on 35); off for a model that may find more",
    )
    min_words: int = Field(3, gt=0, description="shortest acceptable instruction, in words")
    max_words: int = Field(40, gt=0, description="longest acceptable instruction, in words")


@lru_cache(maxsize=8)
def load_prompt(name: str) -> dict:
    """A prompt template from ``prompts/<name>.yaml`` (version, system, user, retry, examples)."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"invalid prompt name {name!r}")
    text = resources.files("ophora.curation.stages.refine").joinpath(f"prompts/{name}.yaml").read_text(encoding="utf-8")
    prompt = yaml.safe_load(text)
    missing = {"version", "system", "user", "retry", "examples"} - set(prompt)
    if missing:
        raise ValueError(f"prompts/{name}.yaml lacks {sorted(missing)}")
    return prompt


def conversation(prompt: dict, narration: str) -> list[dict]:
    """System rules, the few-shot examples as earlier turns, then this narration."""
    msgs = [{"role": "system", "content": prompt["system"].format(phases=", ".join(PHASES))}]
    for ex in prompt["examples"]:
        msgs.append({"role": "user", "content": prompt["user"].format(narration=ex["narration"])})
        msgs.append({"role": "assistant", "content": json.dumps(ex["answer"])})
    msgs.append({"role": "user", "content": prompt["user"].format(narration=narration)})
    return msgs


def parse_answer(text: str) -> dict | None:
    """The first JSON object in an LLM's answer (code fences and chatter around it ignored), or None."""
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
        start = text.find("{", start + 1)
    return None


def _result(
    answer: dict,
    backend: str,
    model: str,
    prompt_version: str,
    fallback: bool,
    reason: str,
    narration: str = "",
    steered: str = "",
) -> dict:
    relevant = bool(answer.get("relevant"))
    instruction = " ".join(str(answer.get("instruction") or "").split()) if relevant else ""
    phase = answer.get("phase") if answer.get("phase") in PHASES else None
    named = phase_scores(f"{instruction} {narration}")
    if relevant and (phase is None or (named and phase not in named)):  # a phase the words do not name: ours
        phase = phase_of(instruction) or phase_of(narration)
    if not relevant and not reason:
        reason = NOT_SURGICAL
    return {
        "relevant": relevant,
        "instruction": instruction,
        "phase": phase if relevant else None,
        "backend": backend,
        "model": model,
        "prompt_version": prompt_version,
        "fallback": fallback,
        "reason": reason,
        "steered": steered if relevant and not fallback else "",
    }


class Refiner:
    """``refine(narration)`` / ``refine_many(narrations)`` -> result dicts: ``{"relevant", "instruction", "phase",
    "backend", "model", "prompt_version", "fallback", "reason", "steered"}`` (``steered``: the words the LLM's
    instruction was made to begin with, "" when none). The backend loads lazily, once."""

    def __init__(self, config: RefineConfig | dict | None = None):
        self.cfg = config if isinstance(config, RefineConfig) else RefineConfig.model_validate(config or {})
        self.prompt = load_prompt(self.cfg.prompt)
        self.backend = make_backend(self.cfg)
        self.rules = ExtractiveBackend()

    def refine(self, narration: str) -> dict:
        return self.refine_many([narration])[0]

    def _rules(self, narration: str) -> dict:
        return self.rules.answer(narration, accept=lambda a: complaint(a, self.cfg, narration))

    def _extractive(self, narration: str, fallback: bool, reason: str, answer: dict | None = None) -> dict:
        answer = answer or self._rules(narration)
        why = reason if fallback else ("" if answer["relevant"] else answer.get("reason", ""))
        if not answer["relevant"]:
            why = f"{NOT_SURGICAL}: {why}" if why else NOT_SURGICAL
        return _result(answer, self.rules.name, self.rules.model_id, self.prompt["version"], fallback, why)

    def _start(self, narration: str, rules: dict | None, attempt: int = 0) -> str:
        """The text the LLM's answer is made to begin with (see ``RefineConfig.steer``), or "": the rules' verb
        (with its article, so the model cannot run on into "Grabbed"), and on the retry the verb and what it acts
        on ("Insert the foldable intraocular lens"), never the rules' whole instruction."""
        if not self.cfg.steer:
            return ""
        if rules is None:
            return STEER_START if phase_of(narration) else ""
        if not rules["relevant"]:
            return ""
        text = rules["instruction"]
        words = text.split()
        steer = " ".join(words[:2] if len(words) > 2 and words[1].lower() in _ARTICLES else words[:1])
        if attempt:
            action, _ = parse_imperative(text)
            head = action.text[: action.object_end] if action else ""  # offsets count in the parsed (spaced) text
            steer = head if len(steer) < len(head) < len(text.rstrip(".")) else steer
        return STEER_START + steer

    def refine_many(self, narrations: list[str]) -> list[dict]:
        results: list[dict | None] = [None] * len(narrations)
        todo = []
        for i, text in enumerate(narrations):
            if not (text or "").strip():
                results[i] = _result(
                    {"relevant": False},
                    self.backend.name,
                    self.backend.model_id,
                    self.prompt["version"],
                    False,
                    f"{NOT_SURGICAL}: empty narration",
                )
            elif isinstance(self.backend, ExtractiveBackend):
                results[i] = self._extractive(text, False, "")
            else:
                todo.append(i)
        if not todo:
            return results  # type: ignore[return-value]
        rules = {i: self._rules(narrations[i]) for i in todo} if self.cfg.steer and self.cfg.steer_action else {}
        if self.cfg.steer_gate:  # no action as the rules read it: their answer, the model is not asked
            for i in [i for i in todo if i in rules and not rules[i]["relevant"]]:
                results[i] = self._extractive(narrations[i], False, "", rules[i])
                todo.remove(i)
            if not todo:
                return results  # type: ignore[return-value]
        convs = {i: conversation(self.prompt, narrations[i]) for i in todo}
        starts = {i: self._start(narrations[i], rules.get(i)) for i in todo}
        retry: dict[int, str] = {}
        for attempt in (0, 1):
            ids = todo if attempt == 0 else sorted(retry)
            if not ids:
                break
            answers = (
                self.backend.generate([convs[i] for i in ids], [starts[i] for i in ids])
                if any(starts.values())
                else self.backend.generate([convs[i] for i in ids])
            )
            for i, raw in zip(ids, answers):
                if isinstance(raw, Exception):  # the endpoint failed after its own retries: rules answer
                    results[i] = self._extractive(narrations[i], True, f"backend error: {raw}", rules.get(i))
                    retry.pop(i, None)
                    continue
                answer = parse_answer(raw)
                why = (
                    complaint(answer, self.cfg, narrations[i]) if answer is not None else "the answer is not valid JSON"
                )
                if why is None:
                    results[i] = _result(
                        answer,
                        self.backend.name,
                        self.backend.model_id,
                        self.prompt["version"],
                        False,
                        "",
                        narrations[i],
                        starts[i][len(STEER_START) :],
                    )
                    retry.pop(i, None)
                elif attempt == 0:
                    retry[i] = why
                    starts[i] = self._start(narrations[i], rules.get(i), 1)
                    convs[i] = convs[i] + [
                        {"role": "assistant", "content": raw[:2000]},
                        {"role": "user", "content": self.prompt["retry"].format(complaint=why)},
                    ]
                else:
                    results[i] = self._extractive(
                        narrations[i], True, f"llm answer rejected twice: {retry[i]}; then {why}", rules.get(i)
                    )
        return results  # type: ignore[return-value]


class RefineStage(RowStage):
    """Window-level stage: reads ``narration`` from ``meta_json``, writes ``instruction``, ``phase``, ``refine``
    and ``models.refine``; drops the window with "not a surgical action ..." otherwise. All live windows of a
    batch are refined together (one batched generate / concurrent requests)."""

    name = "refine"
    level = "window"
    optional = True
    sections = {"refine": RefineConfig}
    resources = stage_resources(0.1, (1, 1), 16, 1600)  # give it num_gpus for a local LLM on a GPU node

    def setup(self) -> None:
        model = self.run.models.get("refine")  # models.refine names the model (the config checks both)
        self.refiner = Refiner(self.cfg.model_copy(update={"model": model}) if model else self.cfg)
        phi.use_model(self.run.models.get("phi"))  # loaded once per actor, here

    def refine_rows(self, rows: list[dict[str, Any]]) -> None:
        live = [r for r in rows if self.wants(r)]
        # idempotent: align already scrubbed; one spaCy batch for the whole batch of windows
        narrations = [n for n, _ in phi.scrub_many([read_meta(row).get("narration", "") for row in live])]
        for row, narration, res in zip(live, narrations, self.refiner.refine_many(narrations)):
            meta = read_meta(row)
            models = {**meta.get("models", {}), "refine": f"{res['backend']}:{res['model']}@{res['prompt_version']}"}
            update_meta(row, narration=narration, refine=res, models=models)
            if res["relevant"]:
                update_meta(row, instruction=res["instruction"], phase=res["phase"])
            else:
                row["drop"] = f"{self.name}: {res['reason']}"

    def __call__(self, batch):
        from ophora.curation.stages.common import batch_to_rows, rows_to_batch

        rows = batch_to_rows(batch)
        try:
            self.refine_rows(rows)
        except Exception as e:  # noqa: BLE001 - a backend crash fails these windows, never the run
            for row in rows:
                if self.wants(row):
                    row["error"] = f"{self.name}: {type(e).__name__}: {e}"[:2000]
        return rows_to_batch(rows)

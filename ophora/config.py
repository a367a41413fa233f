"""Config plumbing every job shares: one YAML file -> one pydantic model, ``--set key.path=value`` overrides, deep
merge, and the effective config printed back as YAML. The jobs' models live with the jobs
(:mod:`ophora.curation.config`, :mod:`ophora.training.config`, :mod:`ophora.inference.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, mappings merged key by key (a new dict; neither input changes)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested mappings: ``{"optim.lr": 1e-5}`` -> ``{"optim": {"lr": 1e-5}}``."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r} sets a field inside {part!r}, which another override sets")
        node[last] = value
    return nested


def parse_override(text: str) -> tuple[str, Any]:
    """``section.field=value`` -> (dotted key, value parsed as plain YAML: ``yaml.safe_load``, so no tag ever
    builds a Python object); ValueError when it is not KEY=VALUE or the value is not YAML."""
    key, eq, raw = text.partition("=")
    if not eq or not key.strip():
        raise ValueError(f"override {text!r} is not KEY=VALUE (e.g. windows.fps=8)")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ValueError(f"override {text!r}: the value is not plain YAML ({' '.join(str(e).split())})") from None


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (``what`` names the config in the error)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # yaml.safe_load: a tag never builds an object
        raise ValueError(f"{path}: not a YAML file ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a {what} must be a YAML mapping, not {type(data).__name__}")
    return data


def build(model: type[M], *layers: dict[str, Any], overrides: dict[str, Any] | None = None) -> M:
    """``model`` validated from ``layers`` merged in order, then the dotted ``overrides``."""
    data: dict[str, Any] = {}
    for layer in layers:
        data = merge(data, layer or {})
    return model.model_validate(merge(data, nest(overrides or {})))


def load(model: type[M], path: str | Path | None, flags: dict[str, Any], overrides: dict[str, Any] | None = None) -> M:
    """A job's config: ``model``'s defaults <- the YAML at ``path`` <- the flags given (None: not given) <- dotted
    ``overrides`` (``--set``)."""
    given = {k: v for k, v in flags.items() if v is not None}
    return build(model, read_mapping(path, model.__name__) if path else {}, given, overrides=overrides)


def to_yaml(config: BaseModel) -> str:
    """The effective config as YAML, fields in declaration order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

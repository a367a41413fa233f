"""Result folders on object storage: a job that writes a folder of results (a training run's export and summary,
sampled videos) works in a local staging folder and publishes it to an ``s3://`` or ``gs://`` URL when it ends.

Shards, the index, the ledger, latents and Ray Train checkpoints are written to URLs directly (fsspec and Ray
Train storage); these folders are staged because the tools that write them (ffmpeg, diffusers' ``save_pretrained``,
TensorBoard) want a local path. Credentials and endpoint come from the usual environment (``AWS_*``, including
``AWS_ENDPOINT_URL``). Paths inside published JSON, JSON Lines and HTML files are rewritten from the staging folder
to the URL, so a summary names where things are, not where they were made.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_REWRITTEN = (".json", ".jsonl", ".html")


def is_url(target: str | Path) -> bool:
    """True for an object-store or other fsspec URL (``s3://bucket/x``), False for a local path or ``file://``."""
    text = str(target)
    return "://" in text and not text.startswith("file://")


@contextmanager
def staged(target: str | Path) -> Iterator[Path]:
    """A local folder to write ``target``'s contents in: ``target`` itself when it is local; else a temporary
    folder that is published to the URL when the block ends without an error, and removed either way."""
    if not is_url(target):
        yield Path(target)
        return
    local = Path(tempfile.mkdtemp(prefix="ophora-staged-"))
    try:
        yield local
        publish(local, str(target))
    finally:
        shutil.rmtree(local, ignore_errors=True)


def relocate(data: Any, local: str | Path, url: str) -> Any:
    """``data`` (JSON-able) with every path under ``local`` rewritten to lie under ``url`` (unchanged when ``url``
    is a local path: nothing was staged)."""
    if not is_url(url):
        return data
    return json.loads(json.dumps(data).replace(json.dumps(str(local))[1:-1], url.rstrip("/")))


def publish(local: str | Path, url: str) -> None:
    """Copy the folder ``local`` to ``url`` (merged with what is there), paths in its text files rewritten."""
    import fsspec

    local = Path(local)
    for path in local.rglob("*"):
        if path.is_file() and path.suffix in _REWRITTEN:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            if str(local) in text:
                path.write_text(text.replace(str(local), url.rstrip("/")), encoding="utf-8", errors="surrogateescape")
    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(root, exist_ok=True)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"{root.rstrip('/')}/{path.relative_to(local).as_posix()}")

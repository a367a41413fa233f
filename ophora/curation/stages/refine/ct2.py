"""The refine stage's fast local backend: a Llama-architecture causal LM (the bundled SmolLM2-135M GGUF, a model
folder or a hub id) run by CTranslate2 in int8.

The model is converted once (a GGUF is de-quantised by transformers first, sharing the transformers backend's
cached copy) and kept under ``$OPHORA_CACHE/ct2/<name>-<content hash>-int8``, so a changed file gets a new
conversion and concurrent actors never read half of one. Prompts are generated in batches; the system prompt and
few-shot turns they share are computed once and cached by CTranslate2 (``static_prompt``). An answer made to begin
inside the instruction string (a steered start) stops at the string's closing quote: the instruction is all the
refine stage reads, and the phase is taken from its words.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

from ophora.curation.stages.refine.backends import (
    LocalModel,
    gguf_conversion,
    ophora_cache,
    save_gguf_conversion,
    shared_prefix,
)

QUANTIZATION = "int8"
_QUOTE = re.compile(r'(?<!\\)"')


@lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_digest(source: str) -> str:
    """sha256 of a model file's bytes; of a folder's file names, sizes and modification times (hashing a 7B
    model's weights would cost minutes); of the name itself for a hub id."""
    path = Path(source)
    if path.is_file():
        st = path.stat()
        return _file_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
    if path.is_dir():
        facts = sorted(
            f"{p.relative_to(path)}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in path.rglob("*") if p.is_file()
        )
        return hashlib.sha256("\n".join(facts).encode()).hexdigest()
    return hashlib.sha256(source.encode()).hexdigest()


def ct2_folder(source: str) -> Path:
    """Where the conversion of ``source`` is kept (whether or not it exists yet)."""
    name = Path(source).stem if Path(source).exists() else re.sub(r"[^A-Za-z0-9._-]+", "_", source)
    return ophora_cache() / "ct2" / f"{name}-{source_digest(source)[:16]}-{QUANTIZATION}"


def is_ct2_model(path: str | Path) -> bool:
    return (Path(path) / "model.bin").is_file() and (Path(path) / "config.json").is_file()


def _transformers_folder(source: str) -> str:
    """A folder (or hub id) transformers can read ``source`` from: a GGUF's de-quantised copy, made now if need be."""
    if not source.endswith(".gguf"):
        return source
    if gguf_conversion(source) is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, name = str(Path(source).parent), Path(source).name
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        save_gguf_conversion(source, AutoModelForCausalLM.from_pretrained(folder, gguf_file=name), tok)
    converted = gguf_conversion(source)
    if converted is None:
        raise OSError(
            f"could not keep a de-quantised copy of {source} under {ophora_cache()} (set OPHORA_CACHE to a "
            f"writable folder)"
        )
    return converted[0]


def convert_to_ct2(source: str) -> Path:
    """The CTranslate2 model folder for ``source`` (a ``.gguf`` file, a transformers model folder or a hub id),
    converted to int8 with its tokenizer on first use (~30-60 s for SmolLM2-135M on 2 cores) and cached."""
    dest = ct2_folder(source)
    if is_ct2_model(dest):
        return dest
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoTokenizer

    hf = _transformers_folder(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        TransformersConverter(hf, low_cpu_mem_usage=True).convert(
            str(tmp / "model"), quantization=QUANTIZATION, force=True
        )
        AutoTokenizer.from_pretrained(hf).save_pretrained(str(tmp / "model"))
        try:
            os.rename(tmp / "model", dest)
        except OSError:  # another actor finished its conversion first
            if not is_ct2_model(dest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def open_string(start: str) -> bool:
    """True when ``start`` ends inside a JSON string (an odd number of unescaped quotes)."""
    return len(_QUOTE.findall(start)) % 2 == 1


class CTranslate2Backend(LocalModel):
    """``generate(conversations, starts)`` with a CTranslate2 generator; loads (and converts) on first use."""

    name = "ctranslate2"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        compute_type: str = "auto",
        max_new_tokens: int = 64,
        batch_size: int = 16,
        threads: int = 0,
    ):
        self.model_path, self.device, self.compute_type = model, device, compute_type
        self.max_new_tokens, self.batch_size, self.threads = max_new_tokens, batch_size, threads
        self.min_prefix_tokens = 128
        self._model = self._tok = None
        self._static: list[int] | None = None  # token ids of the cached static prompt
        self._workers = 1
        self._lock = threading.RLock()

    def _load(self) -> None:
        """Convert (first time only), then load the generator and the tokenizer."""
        import ctranslate2
        from transformers import AutoTokenizer

        folder = self.model_path if is_ct2_model(self.model_path) else convert_to_ct2(self.model_path)
        if self.device == "auto":
            self.device = "cuda" if ctranslate2.get_cuda_device_count() else "cpu"
        if self.compute_type == "auto":
            self.compute_type = "int8_float16" if self.device == "cuda" else "int8"
        tok = AutoTokenizer.from_pretrained(str(folder))
        vocab = tok.get_vocab()
        self._ends = [t for t in (tok.eos_token, "<|im_end|>", "<end_of_turn>") if t and t in vocab]
        # tokens that close a JSON string ('."', '",', ...): where a steered answer's instruction ends
        self._quotes = self._ends + [t for t in vocab if _QUOTE.search(t.replace("\\\\", ""))]
        # on a CPU, batches run side by side, one thread each: a 135M model's matrices are too small to share
        # well between threads (on 2 cores, 2.0 lines/s against 1.5 with one batch on two threads)
        cpu = self.device == "cpu"
        self._workers = (self.threads or min(4, os.cpu_count() or 1)) if cpu else 1
        self._model = ctranslate2.Generator(
            str(folder),
            device=self.device,
            compute_type=self.compute_type,
            inter_threads=self._workers,
            intra_threads=1 if cpu else self.threads,
        )
        self._tok = tok

    def generate(self, conversations: list[list[dict]], starts: list[str] | None = None) -> list[str | Exception]:
        """Answers in order, each beginning with its ``starts[i]`` (optional). Greedy; batches of ``batch_size``
        sorted by length. An answer started inside a string ends at the string's end and is closed (``"}``)."""
        self.load()
        starts = starts or [""] * len(conversations)
        with self._lock:
            ids = [
                self._tok(
                    self._tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + s,
                    add_special_tokens=False,
                )["input_ids"]
                for c, s in zip(conversations, starts)
            ]
            static = shared_prefix(ids, self._static, self.min_prefix_tokens)
            self._static = static if static is not None else self._static
            out: list[str | Exception] = [""] * len(ids)
            for inside in (True, False):
                group = [i for i, s in enumerate(starts) if open_string(s) == inside]
                if group:
                    for i, text in zip(group, self._run([ids[i] for i in group], static, inside)):
                        out[i] = starts[i] + (_QUOTE.split(text, 1)[0] + '"}' if inside else text)
            return out

    def _run(self, ids: list[list[int]], static: list[int] | None, inside: bool) -> list[str]:
        tokens = self._tok.convert_ids_to_tokens
        kwargs = {"static_prompt": tokens(static)} if static else {}
        results = self._model.generate_batch(
            [tokens(x[len(static) :] if static else x) for x in ids],
            max_batch_size=max(1, min(self.batch_size, -(-len(ids) // self._workers))),  # a batch per worker
            max_length=self.max_new_tokens,
            sampling_topk=1,
            include_prompt_in_result=False,
            end_token=self._quotes if inside else self._ends,
            return_end_token=inside,
            **kwargs,
        )
        return [self._tok.decode(r.sequences_ids[0], skip_special_tokens=True) for r in results]

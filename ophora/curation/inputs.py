"""Input discovery: directories (recursive), globs, manifests (txt/CSV of paths or URLs) and single files or URLs.

Each input becomes a :class:`SourceInput` (its URI plus the sidecars that travel with it: ``.srt``, ``.vtt``,
``.info.json`` with the same stem). Discovery never opens a video; it only lists names, so it is cheap on the
driver whatever the corpus size. :func:`localize` gives a stage a local path for a remote URI (streamed to a
cache file, never held in memory).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import fsspec

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".wmv", ".flv", ".3gp"}
)
MANIFEST_EXTENSIONS = frozenset({".txt", ".csv", ".tsv", ".lst"})
SIDECAR_SUFFIXES = (".info.json", ".srt", ".vtt", ".json3")  # .json3: yt-dlp's timed text
REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "gcs://", "az://", "abfs://")
_MANIFEST_COLUMNS = ("path", "url", "uri", "source", "video")


class InputError(ValueError):
    """An input argument names nothing usable (missing path, empty glob, unreadable manifest)."""


MAX_MANIFEST_DEPTH = 8  # manifests listing manifests: deeper than this is a mistake, not a corpus


@dataclass(frozen=True)
class SourceInput:
    """One source to curate: its URI (an absolute local path or a URL) and its sidecars (suffix -> URI).
    ``reject`` is set ("inputs: why") for an entry discovery already knows is unusable (a manifest that lists
    itself); it reaches the ledger as a rejected source without being opened."""

    uri: str
    sidecars: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    reject: str = field(default="", compare=False)


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def discover(specs: list[str]) -> tuple[list[SourceInput], list[str]]:
    """Every source named by ``specs`` in order, each URI once; also the repeated URIs that were skipped.

    Raises InputError for a spec that names nothing (a missing path, a glob without matches)."""
    seen: dict[str, SourceInput] = {}
    repeated: list[str] = []
    rejects: dict[str, str] = {}
    for spec in specs:
        for uri in _expand(spec, (), rejects):
            key = os.path.realpath(uri) if not is_remote(uri) else uri
            if key in seen:
                repeated.append(uri)
                continue
            seen[key] = SourceInput(uri, {} if uri in rejects else find_sidecars(uri), rejects.get(uri, ""))
    return list(seen.values()), repeated


def _expand(spec: str, reading: tuple[str, ...] = (), rejects: dict[str, str] | None = None) -> list[str]:
    """The source URIs ``spec`` names; ``reading`` holds the manifests being read (outermost first), and a
    manifest met again inside itself, or nested too deep, becomes an entry of ``rejects`` (URI -> reason)."""
    if spec.startswith(("http://", "https://")):
        return [spec]
    if is_remote(spec):
        return _expand_remote(spec)
    path = Path(spec)
    if path.is_dir():
        return sorted(
            os.path.abspath(p)
            for p in path.rglob("*")
            if p.suffix.lower() in VIDEO_EXTENSIONS and (p.is_file() or p.is_symlink()) and not p.name.startswith(".")
        )
    if path.exists() or path.is_symlink():
        if path.suffix.lower() in MANIFEST_EXTENSIONS:
            return _read_manifest(path, reading, rejects)
        return [os.path.abspath(spec)]  # named explicitly: probed whatever its extension
    if glob.has_magic(spec):
        found = sorted(os.path.abspath(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        if not found:
            raise InputError(f"{spec}: the glob matches no file")
        return [
            u
            for p in found
            for u in (
                _read_manifest(Path(p), reading, rejects) if Path(p).suffix.lower() in MANIFEST_EXTENSIONS else [p]
            )
        ]
    raise InputError(f"{spec}: no such file, directory or URL")


def _expand_remote(spec: str) -> list[str]:
    """An object-store URL (s3://, gs://, ...): a folder lists its videos recursively, a glob its matches, anything
    else is one source (probed whatever its extension, as a local file named explicitly)."""
    fs, path = fsspec.core.url_to_fs(spec)
    proto = spec.split("://", 1)[0] + "://"
    try:
        if glob.has_magic(path):
            found = [p for p, info in fs.glob(path, detail=True).items() if info.get("type") == "file"]
        elif spec.endswith("/") or fs.isdir(path):
            found = [p for p in fs.find(path) if Path(p).suffix.lower() in VIDEO_EXTENSIONS]
        else:
            return [spec]
        found = [p for p in found if not p.rsplit("/", 1)[-1].startswith(".")]  # as local globs and folders
    except OSError as e:  # an unreachable store or a missing bucket names the spec
        raise InputError(f"{spec}: cannot list ({e})") from e
    if not found:
        raise InputError(f"{spec}: no video matches" if glob.has_magic(path) else f"{spec}: no video under this prefix")
    return sorted(proto + p for p in found)


def _read_manifest(path: Path, reading: tuple[str, ...] = (), rejects: dict[str, str] | None = None) -> list[str]:
    """A manifest lists one path or URL per line (txt) or per row (CSV/TSV with a path/url column, or the first
    column). Relative paths are relative to the manifest's directory; '#' lines are comments. A manifest that
    lists itself (directly or through others), or manifests nested deeper than MAX_MANIFEST_DEPTH, is not read
    again: it is returned as one entry with its reason in ``rejects``."""
    here = os.path.realpath(path)
    why = ""
    if here in reading:
        chain = " -> ".join(Path(p).name for p in (*reading[reading.index(here) :], here))
        why = f"inputs: manifest lists itself ({chain}); read once"
    elif len(reading) >= MAX_MANIFEST_DEPTH:
        why = f"inputs: manifests nested deeper than {MAX_MANIFEST_DEPTH} levels"
    if why:
        if rejects is None:
            raise InputError(f"{path}: {why.removeprefix('inputs: ')}")
        rejects.setdefault(os.path.abspath(path), why)
        return [os.path.abspath(path)]
    reading = (*reading, here)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read manifest ({e})") from e
    if path.suffix.lower() in (".csv", ".tsv"):
        rows = list(csv.reader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
        col = 0
        if rows and any(c.strip().lower() in _MANIFEST_COLUMNS for c in rows[0]):
            header = [c.strip().lower() for c in rows[0]]
            col = next(header.index(c) for c in _MANIFEST_COLUMNS if c in header)
            rows = rows[1:]
        entries = [r[col].strip() for r in rows if len(r) > col]
    else:
        entries = [line.strip() for line in text.splitlines()]
    out = []
    for entry in entries:
        if not entry or entry.startswith("#"):
            continue
        if is_remote(entry):
            out.append(entry)
        else:
            p = Path(entry) if os.path.isabs(entry) else path.parent / entry
            out.extend(_expand(str(p), reading, rejects))
    return out


def find_sidecars(uri: str) -> dict[str, str]:
    """Sidecars next to a video: ``<stem>.srt``, ``<stem>.vtt``, ``<stem>.info.json`` and language-tagged
    subtitles such as ``<stem>.en.vtt`` (first match per suffix). HTTP(S) sources are not searched."""
    if uri.startswith(("http://", "https://")):
        return {}
    fs, path = fsspec.core.url_to_fs(uri)
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    found: dict[str, str] = {}
    try:
        siblings = fs.ls(path.rsplit("/", 1)[0], detail=False) if "/" in path else []
    except (OSError, ValueError):
        return {}
    proto = "" if not is_remote(uri) else uri.split("://", 1)[0] + "://"
    for suffix in SIDECAR_SUFFIXES:
        exact = stem + suffix
        tagged = sorted(
            s
            for s in siblings
            if s.startswith(stem + ".") and s.endswith(suffix) and s.count(".") == exact.count(".") + 1
        )
        match = exact if exact in siblings else (tagged[0] if tagged else None)
        if match:
            found[suffix.lstrip(".")] = (proto + match) if proto and not match.startswith(proto) else match
    return found


def cache_path(uri: str, cache_dir: str) -> str:
    """Where :func:`localize` keeps a remote URI on a node."""
    name = hashlib.sha256(uri.encode()).hexdigest()[:24] + Path(uri.split("?", 1)[0]).suffix[:8]
    return os.path.join(cache_dir, name)


def forget(uri: str, cache_dir: str) -> None:
    """Delete this node's cached copy of a remote URI (nothing for local paths)."""
    if is_remote(uri):
        try:
            os.unlink(cache_path(uri, cache_dir))
        except FileNotFoundError:
            pass


def local_source(row: dict, cache_dir: str) -> str:
    """A local path of a row's source on this node: the copy probe made when it is here, else a fresh one (a
    stage on another node than probe fetches the source itself; decoders are never handed a URL)."""
    local = row.get("local_path")
    if local and os.path.exists(local):
        return local
    return localize(row["source_uri"], cache_dir)


def localize(uri: str, cache_dir: str) -> str:
    """A local path holding ``uri``: the path itself for local files, else a cache file (downloaded once per
    node, streamed in chunks, renamed into place when complete). Raises FileNotFoundError / PermissionError /
    OSError naming the URI."""
    if not is_remote(uri):
        return uri
    os.makedirs(cache_dir, exist_ok=True)
    target = cache_path(uri, cache_dir)
    if os.path.exists(target):
        return target
    tmp = f"{target}.{os.getpid()}.part"
    try:
        with fsspec.open(uri, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, target)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: not found ({e})") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target

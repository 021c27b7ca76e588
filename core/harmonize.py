"""Make depth edges land on mask edges (stage 4).

Minimises, over the disparity map d (1 / depth, where planes are affine in the image):

    sum_i w_i (d_i - d0_i)^2                                  data fidelity, strong in mask interiors
  + smoothness * sum_{i~j, same mask} (d_i - d_j)^2           smooth inside a mask, free across mask edges
  + boundary   * sum_{i~j, masks a|b} (d_i - d_j - delta_ab)^2  the jump between masks keeps their
                                                              robust (median) disparity difference

over 4-neighbour pairs. The normal equations are symmetric positive definite (w_i > 0), solved by
conjugate gradient with a Jacobi preconditioner, warm-started from a coarser solve so that 30 iterations
at full working resolution are enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .options import HarmonizeOptions
from .pcg import pcg
from .progress import Progress

EDGE_BAND_FRACTION = 0.008
"""Pixels this close to a mask edge (share of the longest side, at least 3 px) get the weak data weight:
that is where depth models bleed across object boundaries."""


@dataclass
class HarmonizeInfo:
    iterations: int
    relative_residual: float


def label_medians(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Median of ``values`` per label (labels 0..K-1)."""
    flat = labels.ravel()
    # The same stable order either way; numpy radix-sorts 16-bit keys, several times faster than int32 ones.
    keys = flat.astype(np.uint16) if flat.size and flat.min() >= 0 and flat.max() < 1 << 16 else flat
    order = np.argsort(keys, kind="stable")
    sorted_labels = labels.ravel()[order]
    sorted_values = values.ravel()[order]
    count = int(labels.max()) + 1
    starts = np.searchsorted(sorted_labels, np.arange(count), side="left")
    ends = np.searchsorted(sorted_labels, np.arange(count), side="right")
    medians = np.zeros(count, dtype=np.float64)
    for k in range(count):
        if ends[k] > starts[k]:
            medians[k] = np.median(sorted_values[starts[k] : ends[k]])
    return medians


class _System:
    """The SPD operator of the energy above, applied matrix-free with array shifts."""

    def __init__(self, d0: np.ndarray, labels: np.ndarray, options: HarmonizeOptions, medians: np.ndarray):
        same_h = labels[:, 1:] == labels[:, :-1]
        same_v = labels[1:, :] == labels[:-1, :]
        lam, mu = options.smoothness, options.boundary_weight
        # Per-edge weights: smoothness inside a mask, boundary weight across masks.
        self.wh = np.where(same_h, lam, mu).astype(np.float32)
        self.wv = np.where(same_v, lam, mu).astype(np.float32)
        # Target difference d_i - d_j per edge: 0 inside a mask, the median gap across masks.
        self.th = np.where(same_h, 0.0, medians[labels[:, :-1]] - medians[labels[:, 1:]])
        self.tv = np.where(same_v, 0.0, medians[labels[:-1, :]] - medians[labels[1:, :]])
        edge = np.zeros(labels.shape, dtype=bool)
        edge[:, 1:] |= ~same_h
        edge[:, :-1] |= ~same_h
        edge[1:, :] |= ~same_v
        edge[:-1, :] |= ~same_v
        band = max(3, round(EDGE_BAND_FRACTION * max(labels.shape)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band - 1, 2 * band - 1))
        near_edge = cv2.dilate(edge.astype(np.uint8), kernel) > 0
        self.w = np.where(near_edge, options.data_weight_edge, options.data_weight_interior).astype(np.float32)
        self.diag = self.w.copy()
        self.diag[:, :-1] += self.wh
        self.diag[:, 1:] += self.wh
        self.diag[:-1, :] += self.wv
        self.diag[1:, :] += self.wv
        # Right-hand side: W d0 + sum over edges of w_e * t_e distributed with sign.
        b = self.w * d0
        b[:, :-1] += self.wh * self.th
        b[:, 1:] -= self.wh * self.th
        b[:-1, :] += self.wv * self.tv
        b[1:, :] -= self.wv * self.tv
        self.b = b

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = self.diag * x
        out[:, :-1] -= self.wh * x[:, 1:]
        out[:, 1:] -= self.wh * x[:, :-1]
        out[:-1, :] -= self.wv * x[1:, :]
        out[1:, :] -= self.wv * x[:-1, :]
        return out


def _solve(d0: np.ndarray, labels: np.ndarray, options: HarmonizeOptions, medians: np.ndarray, level: int):
    h, w = d0.shape
    system = _System(d0, labels, options, medians)
    x = d0.astype(np.float32).copy()
    if level > 0 and min(h, w) >= 32:
        # A coarse solve removes the low-frequency error that plain PCG needs many iterations for.
        coarse_shape = (w // 2, h // 2)
        d0_c = cv2.resize(d0, coarse_shape, interpolation=cv2.INTER_AREA)
        labels_c = cv2.resize(labels, coarse_shape, interpolation=cv2.INTER_NEAREST)
        x_c, _, _ = _solve(d0_c, labels_c, options, medians, level - 1)
        x = d0 + cv2.resize(x_c - d0_c, (w, h), interpolation=cv2.INTER_LINEAR)
        x = x.astype(np.float32)
    iterations = options.iterations if level == _levels(d0.shape) else max(options.iterations, 60)
    return pcg(system.apply, system.b, system.diag, x, iterations, options.tolerance)


def _levels(shape: tuple[int, int]) -> int:
    return max(0, min(3, int(np.log2(max(1, min(shape) // 64)))))


def harmonize_depth(
    depth: np.ndarray, labels: np.ndarray, options: HarmonizeOptions, progress: Progress | None = None
) -> tuple[np.ndarray, HarmonizeInfo]:
    """Snap depth discontinuities to mask edges; returns the new depth (same shape, > 0) and solver info."""
    if not options.enabled or labels.max() == 0:
        return depth.astype(np.float32), HarmonizeInfo(0, 0.0)
    labels = labels.astype(np.int32)
    disparity = (1.0 / np.maximum(depth, 1e-6)).astype(np.float32)
    scale = float(np.percentile(disparity, 99)) or 1.0
    d0 = disparity / scale  # about 0..1 so the weights mean the same on every photo
    medians = label_medians(d0, labels)
    x, iterations, residual = _solve(d0, labels, options, medians, _levels(d0.shape))
    if progress is not None:
        progress.update(0.9, f"converged in {iterations} iterations")
    lo, hi = float(d0.min()), float(d0.max())
    x = np.clip(x, max(lo * 0.5, 1e-6), hi * 1.5)  # no sign flips from the boundary term
    return (1.0 / (x * scale)).astype(np.float32), HarmonizeInfo(iterations, residual)

"""Make depth edges land on mask edges (stage 4).

Minimises, over the disparity map d (1 / depth, where planes are affine in the image):

    sum_i w_i (d_i - d0_i)^2                                  data fidelity, strong in mask interiors
  + smoothness * sum_{i~j, same mask} (d_i - d_j)^2           smooth inside a mask, free across mask edges
  + boundary   * sum_{i~j, masks a|b} (d_i - d_j - delta_ij)^2  the jump between masks is what their
                                                              slanted planes say at that boundary

over 4-neighbour pairs. Each mask's disparity is fitted with a plane (least squares over its pixels away
from mask edges, where depth models bleed), and ``delta_ij`` is the difference of the two masks' planes at
the boundary between pixels i and j: a slanted floor or wall cut into superpixels has planes that meet
there, so it stays one plane instead of turning into steps, while a true object edge keeps its jump. A mask
too small or too thin for a plane uses its median as a flat plane.

The normal equations are symmetric positive definite (w_i > 0), solved by
conjugate gradient with a Jacobi preconditioner, warm-started from a coarser solve so that 30 iterations
at full working resolution are enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

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


def near_mask_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels within the edge band (``EDGE_BAND_FRACTION``) of a boundary between two masks."""
    same_h = labels[:, 1:] == labels[:, :-1]
    same_v = labels[1:, :] == labels[:-1, :]
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= ~same_h
    edge[:, :-1] |= ~same_h
    edge[1:, :] |= ~same_v
    edge[:-1, :] |= ~same_v
    band = max(3, round(EDGE_BAND_FRACTION * max(labels.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band - 1, 2 * band - 1))
    return cv2.dilate(edge.astype(np.uint8), kernel) > 0


MIN_PLANE_PIXELS = 30
"""Fewer interior pixels than this and a mask's plane is its median (flat)."""


def _fit_planes(columns, d, flat, weight, count, planes, min_pixels: float) -> np.ndarray:
    normal = np.empty((count, 3, 3))
    rhs = np.empty((count, 3))
    for i in range(3):
        rhs[:, i] = np.bincount(flat, weight * columns[i] * d, count)
        for j in range(i, 3):
            normal[:, i, j] = normal[:, j, i] = np.bincount(flat, weight * columns[i] * columns[j], count)
    pixels = np.bincount(flat, (weight > 0).astype(np.float64), count)
    ok = np.flatnonzero(pixels >= min_pixels)
    if ok.size:
        # A thin or collinear mask makes the system (nearly) singular: keep its flat plane then.
        good = ok[np.linalg.cond(normal[ok]) < 1e8]
        if good.size:
            planes[good] = np.linalg.solve(normal[good], rhs[good][..., None])[..., 0]
    return planes


PLANE_ROUNDS = 3
"""Reweighted least-squares rounds of the plane fit: pixels far off their mask's plane (depth that bled in
from a neighbour, a thin structure) count less each round."""


PLANE_STRIDE = 2
"""The plane fits take every second pixel each way: a plane is four numbers' worth of a mask, and a quarter
of its pixels pin them as well (the fits are a third of harmonize's time otherwise)."""


def label_planes(values: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per label k, (a, b, c) of the robust weighted least-squares plane ``values ~ a u + b v + c`` with u, v
    the pixel centre in units of the image's width and height (so the planes hold at any resolution). A label
    with too few weighted pixels, or whose pixels lie on a line, gets the flat plane of its median."""
    h, w = labels.shape
    count = int(labels.max()) + 1
    step = PLANE_STRIDE if min(h, w) >= 8 * PLANE_STRIDE else 1
    v, u = np.mgrid[0:h:step, 0:w:step].astype(np.float64)
    columns = (((u + 0.5) / w).ravel(), ((v + 0.5) / h).ravel(), np.ones(u.size))
    flat = labels[::step, ::step].ravel()
    base = weights[::step, ::step].ravel().astype(np.float64)
    d = values[::step, ::step].ravel().astype(np.float64)
    planes = np.zeros((count, 3))
    planes[:, 2] = label_medians(values, labels)
    weight = base
    pixels = np.maximum(np.bincount(flat, base, count), 1e-9)
    for _ in range(PLANE_ROUNDS):
        planes = _fit_planes(columns, d, flat, weight, count, planes, MIN_PLANE_PIXELS / step**2)
        residual = d - (planes[flat, 0] * columns[0] + planes[flat, 1] * columns[1] + planes[flat, 2])
        # Cauchy weights on the residual in units of each mask's spread (1.25 x its mean absolute residual,
        # the standard deviation for Gaussian noise).
        spread = 1.25 * np.bincount(flat, base * np.abs(residual), count) / pixels + 1e-6
        weight = base / (1.0 + (residual / (2.0 * spread[flat])) ** 2)
    return planes


def _plane_gaps(labels: np.ndarray, planes: np.ndarray, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``delta`` for every horizontal and vertical neighbour pair: plane(a) - plane(b) at the pair's shared
    boundary, each plane clipped to its own mask's disparity range (no wild extrapolation); zero inside a mask.
    Only the pairs across a boundary (a few percent) are evaluated."""
    h, w = labels.shape

    def value(label: np.ndarray, uu: np.ndarray, vv: np.ndarray) -> np.ndarray:
        plane = planes[label]
        return np.clip(plane[:, 0] * uu + plane[:, 1] * vv + plane[:, 2], ranges[label, 0], ranges[label, 1])

    gaps = []
    # The boundary between (y, x) and (y, x + 1) is at x + 1; between (y, x) and (y + 1, x) at y + 1.
    for first, second, (du, dv) in (
        (labels[:, :-1], labels[:, 1:], (1.0, 0.5)),
        (labels[:-1, :], labels[1:, :], (0.5, 1.0)),
    ):
        gap = np.zeros(first.shape, np.float64)
        ys, xs = np.nonzero(first != second)
        uu, vv = (xs + du) / w, (ys + dv) / h
        a, b = first[ys, xs], second[ys, xs]
        gap[ys, xs] = value(a, uu, vv) - value(b, uu, vv)
        gaps.append(gap)
    return gaps[0], gaps[1]


def label_ranges(values: np.ndarray, labels: np.ndarray, margin: float = 0.25) -> np.ndarray:
    """(count, 2) range of ``values`` per label, widened by ``margin`` of its width each way: a plane is
    evaluated up to its mask's edge, where an exact plane reaches its extremes."""
    index = np.arange(int(labels.max()) + 1)
    lo = np.nan_to_num(np.asarray(ndimage.minimum(values, labels, index), np.float64))
    hi = np.nan_to_num(np.asarray(ndimage.maximum(values, labels, index), np.float64))
    pad = margin * (hi - lo)
    return np.stack([lo - pad, hi + pad], axis=-1)


class _System:
    """The SPD operator of the energy above, applied matrix-free with array shifts."""

    def __init__(self, d0: np.ndarray, labels: np.ndarray, options: HarmonizeOptions, planes: np.ndarray, ranges):
        same_h = labels[:, 1:] == labels[:, :-1]
        same_v = labels[1:, :] == labels[:-1, :]
        lam, mu = options.smoothness, options.boundary_weight
        # Per-edge weights: smoothness inside a mask, boundary weight across masks.
        self.wh = np.where(same_h, lam, mu).astype(np.float32)
        self.wv = np.where(same_v, lam, mu).astype(np.float32)
        # Target difference d_i - d_j per edge: 0 inside a mask, the planes' gap across masks.
        gap_h, gap_v = _plane_gaps(labels, planes, ranges)
        self.th = np.where(same_h, 0.0, gap_h)
        self.tv = np.where(same_v, 0.0, gap_v)
        near_edge = near_mask_edges(labels)
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


def _solve(d0: np.ndarray, labels: np.ndarray, options: HarmonizeOptions, planes: np.ndarray, ranges, level: int):
    h, w = d0.shape
    system = _System(d0, labels, options, planes, ranges)
    x = d0.astype(np.float32).copy()
    if level > 0 and min(h, w) >= 32:
        # A coarse solve removes the low-frequency error that plain PCG needs many iterations for.
        coarse_shape = (w // 2, h // 2)
        d0_c = cv2.resize(d0, coarse_shape, interpolation=cv2.INTER_AREA)
        labels_c = cv2.resize(labels, coarse_shape, interpolation=cv2.INTER_NEAREST)
        x_c, _, _ = _solve(d0_c, labels_c, options, planes, ranges, level - 1)
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
    # Planes from the pixels away from mask edges: there the depth is the mask's own.
    planes = label_planes(d0, labels, ~near_mask_edges(labels))
    ranges = label_ranges(d0, labels)
    x, iterations, residual = _solve(d0, labels, options, planes, ranges, _levels(d0.shape))
    if progress is not None:
        progress.update(0.9, f"converged in {iterations} iterations")
    lo, hi = float(d0.min()), float(d0.max())
    x = np.clip(x, max(lo * 0.5, 1e-6), hi * 1.5)  # no sign flips from the boundary term
    return (1.0 / (x * scale)).astype(np.float32), HarmonizeInfo(iterations, residual)

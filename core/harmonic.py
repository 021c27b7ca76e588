"""Harmonic (Laplace) extension of a field into unknown pixels, used to inpaint depth.

Known pixels are Dirichlet values; the border of the domain is free (Neumann), so values never flow in
from pixels outside the domain (nearer layers). Solved coarse to fine: each level starts from the
upsampled coarser solution and runs a few Jacobi-preconditioned CG iterations.
"""

from __future__ import annotations

import cv2
import numpy as np

_REGULARISATION = 1e-4
"""Keeps components with no known pixel solvable (they settle on their initial guess)."""


def _neighbour_sum(x: np.ndarray, domain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of in-domain 4-neighbour values and their count, per pixel."""
    xs = np.where(domain, x, 0.0).astype(np.float32)
    dm = domain.astype(np.float32)
    total = np.zeros_like(xs)
    count = np.zeros_like(xs)
    total[1:] += xs[:-1]
    total[:-1] += xs[1:]
    total[:, 1:] += xs[:, :-1]
    total[:, :-1] += xs[:, 1:]
    count[1:] += dm[:-1]
    count[:-1] += dm[1:]
    count[:, 1:] += dm[:, :-1]
    count[:, :-1] += dm[:, 1:]
    return total, count


def _cg(values, known, domain, init, iterations):
    unknown = domain & ~known
    if not unknown.any():
        return values
    _, degree = _neighbour_sum(np.zeros_like(values), domain)
    diag = np.where(unknown, degree + _REGULARISATION, 1.0).astype(np.float32)
    fixed = np.where(known & domain, values, 0.0).astype(np.float32)
    known_sum, _ = _neighbour_sum(fixed, known & domain)
    b = np.where(unknown, known_sum + _REGULARISATION * init, 0.0).astype(np.float32)

    def apply(x):
        neighbours, _ = _neighbour_sum(x, unknown)
        return np.where(unknown, diag * x - neighbours, 0.0).astype(np.float32)

    x = np.where(unknown, init, 0.0).astype(np.float32)
    r = b - apply(x)
    z = r / diag
    p = z.copy()
    rz = float(np.vdot(r, z))
    for _ in range(iterations):
        if rz <= 1e-20:
            break
        ap = apply(p)
        alpha = rz / float(np.vdot(p, ap))
        x += alpha * p
        r -= alpha * ap
        z = r / diag
        rz_new = float(np.vdot(r, z))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return np.where(unknown, x, values).astype(np.float32)


def harmonic_extend(values: np.ndarray, known: np.ndarray, domain: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Fill ``domain & ~known`` with the harmonic extension of ``values`` on ``known``."""
    values = values.astype(np.float32)
    h, w = values.shape
    fallback = float(np.median(values[known])) if known.any() else 0.0
    if min(h, w) >= 16 and (domain & ~known).sum() > 256:
        # Coarse solve: a known coarse pixel averages the known fine pixels it covers.
        size = (max(1, w // 2), max(1, h // 2))
        weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        total = cv2.resize(np.where(known, values, 0.0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        coarse_known = weight > 0.5
        coarse_values = np.where(coarse_known, total / np.maximum(weight, 1e-6), fallback)
        coarse_domain = cv2.resize(domain.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        coarse_domain |= coarse_known
        coarse = harmonic_extend(coarse_values, coarse_known, coarse_domain, iterations)
        init = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        init = np.full_like(values, fallback)
        iterations = max(iterations, 200)
    return _cg(values, known, domain, init, iterations)

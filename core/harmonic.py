"""Harmonic (Laplace) extension of a field into unknown pixels, used to inpaint depth.

Known pixels are Dirichlet values; the border of the domain is free (Neumann), so values never flow in
from pixels outside the domain (nearer layers). Solved coarse to fine: each level starts from the
upsampled coarser solution and runs a few Jacobi-preconditioned CG iterations.

The solution is smooth away from the known pixels, so the upsampled half-resolution solution is already
close there; what it misses is the detail next to the known pixels, which a few fine iterations recover
(CG corrects the short wavelengths first). The finest level therefore runs ``fine_iterations`` (12) and the
coarser ones, a quarter of the pixels each, ``iterations`` (60): under half the work of 40 iterations on
every level, and on the benchmark photo's layers no farther from the converged solution
(``tests/test_pipeline_speed_harmonic.py`` checks the discrete Laplace equation).
"""

from __future__ import annotations

import cv2
import numpy as np

from .pcg import pcg

_REGULARISATION = 1e-4
"""Keeps components with no known pixel solvable (they settle on their initial guess)."""

FINE_ITERATIONS = 12
"""CG iterations at full resolution, after the coarser levels' ``iterations`` each."""

_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def _shift_sum(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of the four neighbours of every pixel (zero outside the image), written into ``out``.

    One OpenCV pass (it releases the GIL) instead of five numpy ones; equal up to float rounding.
    """
    return cv2.filter2D(x, -1, _CROSS, dst=out, borderType=cv2.BORDER_CONSTANT)


def _cg(values, known, domain, init, iterations):
    unknown = domain & ~known
    if not unknown.any():
        return values
    # Work on the bounding box of the unknown pixels plus a one-pixel ring of their neighbours.
    rows, cols = np.nonzero(unknown)
    y0, y1 = max(rows.min() - 1, 0), min(rows.max() + 2, unknown.shape[0])
    x0, x1 = max(cols.min() - 1, 0), min(cols.max() + 2, unknown.shape[1])
    crop = (slice(y0, y1), slice(x0, x1))
    unknown_c, domain_c, known_c = unknown[crop], domain[crop], known[crop] & domain[crop]
    scratch = np.empty(unknown_c.shape, np.float32)
    degree = _shift_sum(domain_c.astype(np.float32), scratch.copy())
    diag = np.where(unknown_c, degree + _REGULARISATION, 1.0).astype(np.float32)
    known_sum = _shift_sum(np.where(known_c, values[crop], 0.0).astype(np.float32), scratch.copy())
    mask = unknown_c.astype(np.float32)
    b = mask * (known_sum + _REGULARISATION * init[crop])

    def apply(x):
        # x is zero outside the unknown pixels, so unmasked neighbour sums are exact.
        out = np.multiply(diag, x)
        out -= _shift_sum(x, scratch)
        out *= mask
        return out

    x, _, _ = pcg(apply, b, diag, (mask * init[crop]).astype(np.float32), iterations)
    out = values.astype(np.float32).copy()
    out[crop] = np.where(unknown_c, x, out[crop])
    return out


def harmonic_extend(
    values: np.ndarray,
    known: np.ndarray,
    domain: np.ndarray,
    iterations: int = 60,
    fine_iterations: int = FINE_ITERATIONS,
) -> np.ndarray:
    """Fill ``domain & ~known`` with the harmonic extension of ``values`` on ``known``.

    ``iterations`` CG iterations on every coarser level, ``fine_iterations`` on this one when a coarser
    solution starts it (the coarsest level runs at least 200).
    """
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
        coarse = harmonic_extend(coarse_values, coarse_known, coarse_domain, iterations, iterations)
        init = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        iterations = fine_iterations
    else:
        init = np.full_like(values, fallback)
        iterations = max(iterations, 200)
    return _cg(values, known, domain, init, iterations)

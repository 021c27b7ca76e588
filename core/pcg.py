"""Jacobi-preconditioned conjugate gradient over image-shaped arrays, shared by the depth solvers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def pcg(
    apply: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    diag: np.ndarray,
    x: np.ndarray,
    iterations: int,
    tolerance: float = 0.0,
) -> tuple[np.ndarray, int, float]:
    """Solve ``A x = b`` for SPD ``A`` (given as ``apply``) from ``x``; returns x, iterations, relative residual.

    ``x`` is updated in place. The vectors live in preallocated buffers updated in place: an iteration is then
    about a dozen passes over the image instead of twice that with temporaries (the arithmetic is the same).
    """
    b_norm = float(np.linalg.norm(b)) or 1.0
    r = b - apply(x)
    z = np.divide(r, diag)
    p = z.copy()
    step = np.empty_like(p)
    rz = float(np.vdot(r, z))
    done = 0
    while done < iterations and rz > 1e-20:
        done += 1
        ap = apply(p)
        curvature = float(np.vdot(p, ap))
        if not np.isfinite(curvature) or curvature <= 0.0:
            break  # converged to float precision: a further step would divide by zero
        alpha = rz / curvature
        x += np.multiply(p, alpha, out=step)
        r -= np.multiply(ap, alpha, out=step)
        if tolerance > 0 and np.linalg.norm(r) / b_norm < tolerance:
            break
        np.divide(r, diag, out=z)
        rz_new = float(np.vdot(r, z))
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, done, float(np.linalg.norm(r) / b_norm)

"""Harmonic (Laplace) extension of a field into unknown pixels, used to inpaint depth.

Known pixels are Dirichlet values; the border of the domain is free (Neumann), so values never flow in
from pixels outside the domain (nearer layers). Every level of a 2x pyramid is the same discrete problem as
before: the coarse known pixels average the fine known ones they cover, and a level is regularised towards
the upsampled coarser solution (``_REGULARISATION``). What changed is the solver (issue 12).

Full multigrid: the coarsest level is solved exactly, and every finer level starts from the upsampled coarser
solution and runs a few conjugate-gradient iterations preconditioned by a geometric multigrid V-cycle over the
coarser levels (damped Jacobi smoothing with the same masked operator, bilinear prolongation and its
transpose as restriction, an exact solve at the bottom). The V-cycle is a symmetric positive definite
operator, so plain preconditioned CG applies. Each iteration shrinks the error about tenfold at every
wavelength, where Jacobi CG only shrinks the short ones: a few iterations per level land much closer to the
converged solution than the previous cascade of Jacobi CG, in less time.

A regularised level's operator is ``degree + eps`` on its unknown pixels; seen from a level ``k`` steps
coarser, the same operator is ``degree + eps * 4**k`` (the Galerkin scale of a constant term under 2x
coarsening), which the V-cycle uses: in a wide region far from the known pixels the regulariser is what
holds the solution, and the coarse correction must weigh it as the fine level does.
"""

from __future__ import annotations

import cv2
import numpy as np

from .pcg import pcg

_REGULARISATION = 1e-4
"""Keeps components with no known pixel solvable (they settle on their initial guess)."""

COARSE_ITERATIONS = 4
"""Multigrid-preconditioned CG iterations on every coarser level."""

FINE_ITERATIONS = 2
"""Multigrid-preconditioned CG iterations at full resolution (the bulk of the time)."""

_OMEGA = 0.8
"""Damped Jacobi weight: the best smoother of its kind for the five-point Laplacian."""

_DENSE_MAX = 1200
"""A coarsest level with at most this many unknown pixels is solved with a dense inverse; above, Jacobi CG."""

_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)
_TRANSPOSE_LINEAR = np.array([0.25, 0.75, 0.75, 0.25], np.float32)


def _shift_sum(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of the four neighbours of every pixel (zero outside the image), written into ``out``.

    One OpenCV pass (it releases the GIL) instead of five numpy ones; equal up to float rounding.
    """
    return cv2.filter2D(x, -1, _CROSS, dst=out, borderType=cv2.BORDER_CONSTANT)


def _prolong(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear 2x upsampling (OpenCV's, edge pixels replicated); an odd last row or column repeats its
    neighbour."""
    h, w = shape
    hc, wc = coarse.shape
    fine = cv2.resize(coarse, (2 * wc, 2 * hc), interpolation=cv2.INTER_LINEAR)
    if (2 * hc, 2 * wc) != (h, w):
        fine = np.pad(fine, ((0, h - 2 * hc), (0, w - 2 * wc)), mode="edge")
    return fine


def _restrict(fine: np.ndarray, coarse_shape: tuple[int, int]) -> np.ndarray:
    """The transpose of ``_prolong``: every coarse pixel sums the fine pixels with the weights it gave them."""
    hc, wc = coarse_shape
    if fine.shape != (2 * hc, 2 * wc):
        folded = fine[: 2 * hc, : 2 * wc].copy()
        if fine.shape[0] > 2 * hc:
            folded[-1] += fine[2 * hc :, : 2 * wc].sum(axis=0)
        if fine.shape[1] > 2 * wc:
            folded[:, -1] += fine[: 2 * hc, 2 * wc :].sum(axis=1)
            if fine.shape[0] > 2 * hc:
                folded[-1, -1] += fine[2 * hc :, 2 * wc :].sum()
        fine = folded
    # out[i] = .25 f[i-1] + .75 f[i] + .75 f[i+1] + .25 f[i+2]; at the edges the mirrored pixel is the
    # edge pixel itself, as the replicated border of the bilinear upsampling makes it.
    summed = cv2.sepFilter2D(
        fine, -1, _TRANSPOSE_LINEAR, _TRANSPOSE_LINEAR, anchor=(1, 1), borderType=cv2.BORDER_REFLECT
    )
    return np.ascontiguousarray(summed[::2, ::2])


def _block_any(mask: np.ndarray, coarse_shape: tuple[int, int]) -> np.ndarray:
    """Whether any pixel of each coarse pixel's block is set (an odd last row or column joins the block
    before it, as in ``_prolong``)."""
    hc, wc = coarse_shape
    block = mask[: 2 * hc, : 2 * wc].copy()
    if mask.shape[0] > 2 * hc:
        block[-1] |= mask[2 * hc :, : 2 * wc].any(axis=0)
    if mask.shape[1] > 2 * wc:
        block[:, -1] |= mask[: 2 * hc, 2 * wc :].any(axis=1)
        if mask.shape[0] > 2 * hc:
            block[-1, -1] |= mask[2 * hc :, 2 * wc :].any()
    return block.reshape(hc, 2, wc, 2).any(axis=(1, 3))


class _Grid:
    """A masked operator: ``(degree + eps) x - (sum of the neighbours)`` on the ``free`` pixels, where the degree
    counts the neighbours in ``domain``; x is zero off the free pixels. ``coarse`` is the next grid of its
    V-cycle (None at the bottom)."""

    def __init__(self, free: np.ndarray, domain: np.ndarray, eps: float):
        self.free, self.shape, self.eps = free, free.shape, eps
        self.mask = free.astype(np.float32)
        self._scratch = np.empty(self.shape, np.float32)
        degree = _shift_sum(domain.astype(np.float32), np.empty(self.shape, np.float32))
        self.diag = np.where(free, degree + np.float32(eps), 1.0).astype(np.float32)
        self.smoothing = (self.mask * (_OMEGA / self.diag)).astype(np.float32)
        self.count = int(free.sum())
        self.coarse: _Grid | None = None
        self._inverse: np.ndarray | None = None

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The operator on ``x`` (zero off the free pixels, so unmasked neighbour sums are exact)."""
        out = np.multiply(self.diag, x)
        out -= _shift_sum(x, self._scratch)
        out *= self.mask
        return out

    def coarsen(self, domain: np.ndarray) -> None:
        """Build the V-cycle's coarser grids down to a few hundred free pixels.

        A coarse pixel is held at zero if its block holds a fixed fine pixel (in ``domain`` but not free), and
        in the domain if its block holds any domain pixel: the coarse problem is never less constrained than
        the fine one, so the coarse correction never overshoots (the majority rule of the pyramid's own levels
        can drop a thin line of known pixels, and the correction of the smooth errors then explodes).
        """
        grid = self
        while grid.count > 256 and min(grid.shape) >= 4:
            coarse_shape = (grid.shape[0] // 2, grid.shape[1] // 2)
            coarse_domain = _block_any(domain, coarse_shape)
            fixed = _block_any(domain & ~grid.free, coarse_shape)
            grid.coarse = _Grid(coarse_domain & ~fixed, coarse_domain, 4.0 * grid.eps)
            grid, domain = grid.coarse, coarse_domain

    def bottom_solve(self, r: np.ndarray) -> np.ndarray:
        """The coarsest grid's solve: exact (a dense inverse) when small, else a fixed number of Jacobi
        sweeps (linear and symmetric, so the V-cycle stays a valid CG preconditioner)."""
        if self.count > _DENSE_MAX:
            x = self.smoothing * r
            for _ in range(39):
                x += self.smoothing * (r - self.apply(x))
            return x
        if self._inverse is None:
            self._inverse = np.linalg.inv(self._dense())
        x = np.zeros(self.shape, np.float32)
        x[self.free] = self._inverse @ r[self.free].astype(np.float64)
        return x

    def _dense(self) -> np.ndarray:
        index = -np.ones(self.shape, np.int64)
        ys, xs = np.nonzero(self.free)
        index[ys, xs] = np.arange(self.count)
        matrix = np.diag(self.diag[ys, xs].astype(np.float64))
        h, w = self.shape
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            y2, x2 = ys + dy, xs + dx
            inside = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
            me, other = np.flatnonzero(inside), index[y2[inside], x2[inside]]
            matrix[me[other >= 0], other[other >= 0]] = -1.0
        return matrix


def _v_cycle(grid: _Grid, r: np.ndarray) -> np.ndarray:
    """One V-cycle from zero: an approximate inverse of the grid's operator (symmetric positive definite)."""
    if grid.coarse is None:
        return grid.bottom_solve(r)
    coarse = grid.coarse
    x = grid.smoothing * r
    residual = r - grid.apply(x)
    correction = _v_cycle(coarse, coarse.mask * _restrict(residual, coarse.shape))
    x += grid.mask * _prolong(correction, grid.shape)
    x += grid.smoothing * (r - grid.apply(x))
    return x


class _Level:
    """One pyramid level: its values and masks, as the coarse-to-fine solve sees them."""

    def __init__(self, values: np.ndarray, known: np.ndarray, domain: np.ndarray, fallback: float):
        self.values, self.known, self.domain, self.fallback = values, known, domain, fallback
        self.unknown = domain & ~known
        self.shape = values.shape


def _pyramid(values: np.ndarray, known: np.ndarray, domain: np.ndarray) -> list[_Level]:
    """The levels, finest first; a coarse known pixel averages the known fine pixels it covers."""
    levels = []
    while True:
        fallback = float(np.median(values[known])) if known.any() else 0.0
        levels.append(_Level(values, known, domain, fallback))
        h, w = values.shape
        if not (min(h, w) >= 16 and (domain & ~known).sum() > 256):
            return levels
        size = (max(1, w // 2), max(1, h // 2))
        weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        total = cv2.resize(np.where(known, values, 0.0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        coarse_known = weight > 0.5
        values = np.where(coarse_known, total / np.maximum(weight, 1e-6), fallback).astype(np.float32)
        coarse_domain = cv2.resize(domain.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        domain = coarse_domain | coarse_known
        known = coarse_known


def _solve(level: _Level, init: np.ndarray, iterations: int, coarsest: bool) -> np.ndarray:
    """The level's values with the unknown pixels solved from ``init``: exactly on the coarsest level, else by
    ``iterations`` multigrid-preconditioned CG iterations."""
    if not level.unknown.any():
        return level.values
    grid = _Grid(level.unknown, level.domain, _REGULARISATION)
    known_sum = _shift_sum(
        np.where(level.known & level.domain, level.values, 0.0).astype(np.float32), np.empty(level.shape, np.float32)
    )
    b = grid.mask * (known_sum + np.float32(_REGULARISATION) * init)
    x = (grid.mask * init).astype(np.float32)
    if coarsest and grid.count <= _DENSE_MAX:
        return np.where(level.unknown, grid.bottom_solve(b), level.values)
    if coarsest:
        x, _, _ = pcg(grid.apply, b, grid.diag, x, 200)
        return np.where(level.unknown, x, level.values)
    grid.coarsen(level.domain)
    r = b - grid.apply(x)
    z = _v_cycle(grid, r)
    p = z.copy()
    rz = float(np.vdot(r, z))
    for _ in range(iterations):
        if rz <= 1e-30:
            break
        ap = grid.apply(p)
        curvature = float(np.vdot(p, ap))
        if not np.isfinite(curvature) or curvature <= 0.0:
            break  # converged to float precision
        alpha = rz / curvature
        x += np.float32(alpha) * p
        r -= np.float32(alpha) * ap
        z = _v_cycle(grid, r)
        rz_new = float(np.vdot(r, z))
        p *= np.float32(rz_new / rz)
        p += z
        rz = rz_new
    return np.where(level.unknown, x, level.values)


def harmonic_extend(
    values: np.ndarray,
    known: np.ndarray,
    domain: np.ndarray,
    iterations: int = COARSE_ITERATIONS,
    fine_iterations: int = FINE_ITERATIONS,
) -> np.ndarray:
    """Fill ``domain & ~known`` with the harmonic extension of ``values`` on ``known``.

    ``iterations`` multigrid-preconditioned CG iterations on every coarser level, ``fine_iterations`` on this
    one (the coarsest level is solved exactly).
    """
    values = values.astype(np.float32)
    levels = _pyramid(values, known, domain)
    bottom = levels[-1]
    solution = _solve(bottom, np.full(bottom.shape, bottom.fallback, np.float32), iterations, True)
    for level in reversed(levels[:-1]):
        h, w = level.shape
        init = cv2.resize(solution.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        solution = _solve(level, init, fine_iterations if level is levels[0] else iterations, False)
    return solution.astype(np.float32)

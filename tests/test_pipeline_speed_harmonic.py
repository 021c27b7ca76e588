"""The harmonic depth fill's speed structure (issue 11): most CG iterations on the coarser levels, a few at full
resolution, and a CG that updates its vectors in place. No timing is asserted: only that the cheaper solve
still solves the discrete Laplace equation, and that the in-place CG is the textbook one."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from core.harmonic import FINE_ITERATIONS, _shift_sum, harmonic_extend
from core.pcg import pcg


def _neighbour_sum(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    out[1:] += x[:-1]
    out[:-1] += x[1:]
    out[:, 1:] += x[:, :-1]
    out[:, :-1] += x[:, 1:]
    return out


def _exact_harmonic(values: np.ndarray, known: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """The discrete Laplace equation on ``domain & ~known`` (Neumann outside ``domain``), solved directly."""
    unknown = domain & ~known
    index = -np.ones(unknown.shape, np.int64)
    ys, xs = np.nonzero(unknown)
    index[ys, xs] = np.arange(len(ys))
    h, w = unknown.shape
    rows, cols, entries = [], [], []
    rhs = np.zeros(len(ys))
    degree = np.zeros(len(ys))
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        y2, x2 = ys + dy, xs + dx
        inside = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
        y2, x2, me = y2[inside], x2[inside], np.flatnonzero(inside)
        in_domain = domain[y2, x2]
        degree[me[in_domain]] += 1
        free = in_domain & unknown[y2, x2]
        rows.append(me[free])
        cols.append(index[y2[free], x2[free]])
        entries.append(-np.ones(int(free.sum())))
        fixed = in_domain & known[y2, x2]
        np.add.at(rhs, me[fixed], values[y2[fixed], x2[fixed]])
    rows.append(np.arange(len(ys)))
    cols.append(np.arange(len(ys)))
    entries.append(degree)
    matrix = sparse.csr_matrix((np.concatenate(entries), (np.concatenate(rows), np.concatenate(cols))))
    out = values.astype(np.float64).copy()
    out[ys, xs] = spsolve(matrix.tocsc(), rhs)
    return out


def _scene(h: int = 192, w: int = 256):
    """A layer's disparity (a smooth, bent surface) seen around a large irregular hole, inside a domain that
    leaves out a notch (a nearer layer the fill must not take values from)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    values = (0.3 + 0.001 * xx + 0.2 * np.sin(xx / 40.0) * np.cos(yy / 30.0)).astype(np.float32)
    hole = ((xx - 120) / 80.0) ** 2 + ((yy - 96) / 60.0) ** 2 < 1.0
    hole |= (yy > 60) & (yy < 80) & (xx > 150) & (xx < 230)
    domain = np.ones((h, w), bool)
    domain[150:, 40:70] = False  # outside the layer's extent: Neumann
    values[~domain] = 5.0  # nearer depth: never read
    known = domain & ~hole
    return values, known, domain, hole


def test_the_fill_solves_the_discrete_laplace_equation():
    values, known, domain, hole = _scene()
    filled = harmonic_extend(values, known, domain)
    exact = _exact_harmonic(values, known, domain)
    data_range = float(values[known].max() - values[known].min())
    # Known pixels and pixels outside the domain are untouched.
    np.testing.assert_array_equal(filled[known], values[known])
    np.testing.assert_array_equal(filled[~domain], values[~domain])
    # The filled pixels are the solution of the discrete Laplace equation, within a small share of the range.
    error = np.abs(filled - exact)[hole]
    assert error.max() < 0.02 * data_range and error.mean() < 0.005 * data_range
    # And each filled pixel is (almost) the mean of its domain neighbours.
    degree = _neighbour_sum(domain.astype(np.float64))
    residual = degree * filled - _neighbour_sum(np.where(domain, filled, 0.0).astype(np.float64))
    assert np.abs(residual[hole]).mean() < 1e-4 * data_range
    assert filled[hole].min() >= values[known].min() - 1e-6 and filled[hole].max() <= values[known].max() + 1e-6


def test_more_fine_iterations_only_get_closer_to_the_exact_solution():
    values, known, domain, hole = _scene()
    exact = _exact_harmonic(values, known, domain)
    errors = [
        float(np.abs(harmonic_extend(values, known, domain, fine_iterations=n) - exact)[hole].mean())
        for n in (FINE_ITERATIONS // 2, FINE_ITERATIONS, 4 * FINE_ITERATIONS)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_the_neighbour_sum_is_the_four_neighbour_sum():
    x = np.random.default_rng(4).random((37, 53)).astype(np.float32)
    np.testing.assert_allclose(_shift_sum(x, np.empty_like(x)), _neighbour_sum(x), rtol=0, atol=1e-6)


def test_in_place_cg_is_the_textbook_jacobi_cg_to_the_bit():
    rng = np.random.default_rng(9)
    h, w = 30, 40
    weights = rng.random((h, w)).astype(np.float32) + 0.1
    diag = (4.0 + weights).astype(np.float32)

    def apply(x):
        return diag * x - _neighbour_sum(x)

    b = rng.random((h, w)).astype(np.float32)

    def textbook(x, iterations):
        r = b - apply(x)
        z = r / diag
        p = z.copy()
        rz = float(np.vdot(r, z))
        for _ in range(iterations):
            ap = apply(p)
            alpha = rz / float(np.vdot(p, ap))
            x = x + alpha * p
            r = r - alpha * ap
            z = r / diag
            rz_new = float(np.vdot(r, z))
            p = z + (rz_new / rz) * p
            rz = rz_new
        return x

    start = np.zeros((h, w), np.float32)
    x, done, residual = pcg(apply, b, diag, start.copy(), 25)
    assert done == 25 and residual < 1e-3
    np.testing.assert_array_equal(x, textbook(start.copy(), 25))

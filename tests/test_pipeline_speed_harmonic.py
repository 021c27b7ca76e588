"""The harmonic depth fill: a 2x pyramid of regularised Laplace equations, solved by full
multigrid (a few multigrid-preconditioned CG iterations per level), and the in-place CG the other depth solvers
share. No timing is asserted (``scripts/bench_harmonic.py`` measures it): only that the fill solves the
discrete Laplace equation, converges to the pyramid's solution, keeps out what lies outside its domain, and
that the V-cycle is a valid CG preconditioner."""

from __future__ import annotations

import warnings

import numpy as np

from core.harmonic import FINE_ITERATIONS, _block_mean, _block_spread, _Grid, _shift_sum, harmonic_extend
from core.pcg import pcg
from tests.harmonic_reference import exact_harmonic, exact_pyramid


def _neighbour_sum(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    out[1:] += x[:-1]
    out[:-1] += x[1:]
    out[:, 1:] += x[:, :-1]
    out[:, :-1] += x[:, 1:]
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
    exact = exact_harmonic(values, known, domain)
    data_range = float(values[known].max() - values[known].min())
    # Known pixels and pixels outside the domain are untouched.
    np.testing.assert_array_equal(filled[known], values[known])
    np.testing.assert_array_equal(filled[~domain], values[~domain])
    # The filled pixels are the solution of the discrete Laplace equation, within a small share of the range
    # (the multigrid solver: 0.18 % at worst and 0.07 % on average, where the earlier cascade was at 1.1 % and
    # 0.29 %; its bounds were 2 % and 0.5 %).
    error = np.abs(filled - exact)[hole]
    assert error.max() < 0.004 * data_range and error.mean() < 0.0015 * data_range
    # And each filled pixel is (almost) the mean of its domain neighbours.
    degree = _neighbour_sum(domain.astype(np.float64))
    residual = degree * filled - _neighbour_sum(np.where(domain, filled, 0.0).astype(np.float64))
    assert np.abs(residual[hole]).mean() < 1e-4 * data_range
    assert filled[hole].min() >= values[known].min() - 1e-6 and filled[hole].max() <= values[known].max() + 1e-6


def test_more_fine_iterations_only_get_closer_to_the_exact_solution():
    values, known, domain, hole = _scene()
    exact = exact_harmonic(values, known, domain)
    errors = [
        float(np.abs(harmonic_extend(values, known, domain, fine_iterations=n) - exact)[hole].mean())
        for n in (FINE_ITERATIONS // 2, FINE_ITERATIONS, 4 * FINE_ITERATIONS)
    ]
    assert errors[0] > errors[1] > errors[2]


def _ramp_scene(h: int = 160, w: int = 240):
    """A linear ramp along x, known on ragged bands at the left and right and on irregular islands, in a domain
    with holes whose sides are parallel to the gradient (their ends lie in known discs). With Neumann sides
    parallel to the gradient, the ramp itself is the harmonic extension, on every level of the pyramid."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = (0.2 + 0.6 * xx / (w - 1)).astype(np.float32)
    known = (xx < 24 + 8 * np.sin(yy / 9.0)) | (xx > w - 26 - 7 * np.cos(yy / 13.0))
    known |= ((yy - 40) / 14) ** 2 + ((xx - 90) / 9) ** 2 < 1
    known |= np.hypot(yy - 118, xx - 150) < 10 + 4 * np.sin(5 * np.arctan2(yy - 118, xx - 150))
    domain = np.ones((h, w), bool)
    for r0, r1, c0, c1 in ((70, 78, 60, 130), (132, 138, 80, 200), (20, 26, 120, 190)):
        domain[r0:r1, c0:c1] = False
        for c in (c0, c1):
            disc = np.hypot(yy - (r0 + r1) / 2, xx - c) < (r1 - r0) + 3
            known |= disc
            domain |= disc
    known &= domain
    return ramp, known, domain


def test_a_linear_ramp_is_its_own_harmonic_extension():
    ramp, known, domain = _ramp_scene()
    values = np.where(known, ramp, np.float32(5.0))
    unknown = domain & ~known
    # The default (a few iterations per level): within 1e-3 on average, 1 % of the range (0.6) at worst, in the
    # long channel under the lower hole.
    error = np.abs(harmonic_extend(values, known, domain) - ramp)[unknown]
    assert error.mean() < 1e-3 and error.max() < 6e-3
    # Converged: within 1e-3 everywhere (what is left is the regulariser's pull towards the coarser levels).
    error = np.abs(harmonic_extend(values, known, domain, iterations=10, fine_iterations=10) - ramp)[unknown]
    assert error.max() < 1e-3


def test_the_fill_converges_to_the_pyramid_of_regularised_laplace_equations():
    """A wide layer held by a few known pixels: far from them the regulariser holds the fill (each level
    follows the coarser one), the case where the float32 rounding of the regulariser used to bias the fill."""
    h, w = 96, 384
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    values = (0.3 + 0.1 * np.sin(xx / 23.0) + 0.05 * np.cos(yy / 11.0)).astype(np.float32)
    known = (xx < 40) & (yy > 30) | (np.hypot(yy - 20, xx - 200) < 6)
    domain = np.ones((h, w), bool)
    domain[40:44, 100:300] = False
    exact = exact_pyramid(values, known, domain)
    unknown = domain & ~known
    data_range = float(values[known].max() - values[known].min())
    converged = harmonic_extend(values, known, domain, iterations=30, fine_iterations=30)
    assert np.abs(converged - exact)[unknown].max() < 1e-4 * data_range
    # The default few iterations per level: this is the hardest case, every level following the coarser one
    # over most of the layer (1.9 % of the range on average, where the earlier cascade was at 3.9 %; the
    # benchmark photo's layers, held by many more known pixels, are within 0.5 %).
    default = np.abs(harmonic_extend(values, known, domain) - exact)[unknown]
    assert default.mean() < 0.025 * data_range


def test_values_outside_the_domain_never_reach_the_fill():
    values, known, domain, hole = _scene()
    reference = harmonic_extend(np.where(domain, values, 0.0).astype(np.float32), known, domain)
    rng = np.random.default_rng(5)
    for wild in (np.float32(1e30), np.float32(-1e30), np.float32(np.inf), np.float32(np.nan)):
        noisy = values.copy()
        noisy[~domain] = wild * rng.random(int((~domain).sum())).astype(np.float32)
        filled = harmonic_extend(noisy, known, domain)
        np.testing.assert_array_equal(filled[domain], reference[domain])
        np.testing.assert_array_equal(filled[~domain], noisy[~domain])


def test_a_component_without_known_pixels_settles():
    h, w = 160, 512
    yy, xx = np.mgrid[0:h, 0:w]
    values = (0.3 + 0.0005 * xx + 0.001 * yy).astype(np.float32)
    domain = xx < 200
    domain[:, 100:104] = False  # a wall: the strip right of it is a component with no known pixel
    domain[79:82, 69:72] = False
    domain[80, 70] = True  # a pixel alone, with no neighbour in the domain
    known = domain & (xx < 20)
    values[~domain] = np.nan
    filled = harmonic_extend(values, known, domain)
    assert np.isfinite(filled[domain]).all()
    low, high = float(values[known].min()), float(values[known].max())
    assert low <= filled[domain].min() and filled[domain].max() <= high
    orphan = domain & (xx > 104) & (xx < 200)
    assert np.ptp(filled[orphan]) < 0.03 * (high - low)  # nearly constant, as a Neumann-only component is
    np.testing.assert_array_equal(filled[known], values[known])


def test_a_pixel_alone_far_from_the_rest_settles():
    """Held by the regulariser only, and alone on every coarser grid of the V-cycle, where its diagonal is
    eps / 4**k: a diagonal rounded to zero there would divide by zero."""
    h, w = 576, 1024
    xx = np.mgrid[0:h, 0:w][1]
    values = (0.3 + 0.0001 * xx).astype(np.float32)
    domain = xx < 300
    known = domain & (xx < 100)
    domain[450, 800] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        filled = harmonic_extend(values, known, domain)
    assert np.isfinite(filled[domain]).all()
    assert float(values[known].min()) <= filled[450, 800] <= float(values[known].max())


def test_the_v_cycle_is_symmetric_positive_definite():
    """CG needs a fixed symmetric positive definite preconditioner: the V-cycle on an irregular grid (a thin
    line of known pixels, a narrow neck, a component with no known pixel, odd sizes)."""
    h, w = 101, 143
    yy, xx = np.mgrid[0:h, 0:w]
    domain = np.ones((h, w), bool)
    domain[:, 70:72] = False
    domain[50:52, 70:72] = True  # the neck
    domain[:, 110] = False  # the right strip has no known pixel
    fixed = domain & ((xx == 20) | (np.hypot(yy - 30, xx - 90) < 4))
    free = domain & ~fixed
    degree = _shift_sum(domain.astype(np.float32), np.empty((h, w), np.float32))
    grid = _Grid.level(free, degree).coarsen()
    assert grid.coarse is not None and grid.coarse.coarse is not None
    rng = np.random.default_rng(7)
    u, v = (grid.mask * rng.standard_normal((h, w)).astype(np.float32) for _ in range(2))
    mu, mv = grid.v_cycle(u).astype(np.float64), grid.v_cycle(v).astype(np.float64)
    assert abs(np.vdot(u, mv) - np.vdot(mu, v)) < 1e-4 * np.sqrt(np.vdot(u, mu) * np.vdot(v, mv))
    assert np.vdot(u, mu) > 0 and np.vdot(v, mv) > 0


def test_the_block_spread_is_the_transpose_of_the_block_sum():
    rng = np.random.default_rng(3)
    for h, w in ((16, 20), (17, 21), (17, 20), (9, 16)):
        coarse = rng.random((h // 2, w // 2)).astype(np.float32)
        fine = rng.random((h, w)).astype(np.float32)
        spread = _block_spread(coarse, np.empty((h, w), np.float32)).astype(np.float64)
        assert np.isclose(
            np.vdot(spread, fine), 4 * np.vdot(coarse.astype(np.float64), _block_mean(fine, coarse.shape))
        )


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

"""Harmonic (Laplace) extension of a field into unknown pixels, used to inpaint depth.

Known pixels are Dirichlet values; the border of the domain is free (Neumann), so values never flow in
from pixels outside the domain (nearer layers).

The problem: a 2x pyramid whose coarse known pixels average the fine known pixels
they cover; every level is the five-point Laplace equation on its unknown pixels with a small regulariser
(``_REGULARISATION``) pulling towards the upsampled coarser solution (on the coarsest level, towards the median
known value). Far from the known pixels of a wide layer the regulariser is what holds the solution, so there
each level follows the coarser one, and a level is only as good as the levels below it.

The solver is full multigrid. The coarsest level is solved to ``_COARSEST_TOLERANCE``; every finer
level starts from the upsampled coarser solution and runs a few conjugate-gradient iterations preconditioned
by a multigrid V-cycle on that level's own operator:

* Coarse grids aggregate 2x2 blocks: a coarse pixel is free when its block holds a free pixel, the
  prolongation copies it to the free pixels of its block, and the restriction (its transpose, up to a factor)
  is the block mean.
* The coarse operator is again a five-point operator, built from the fine one: a block's anchor (its coupling
  to fixed pixels plus its regulariser) is the sum of its pixels', as in the Galerkin product, which is exact
  for the piecewise-constant errors that the regulariser and the Dirichlet pixels act on; the coupling between
  two blocks is half the sum of the fine couplings across their common edge (the Galerkin value is twice too
  stiff for smooth errors: two unit edges cross a block edge where the five-point operator at the coarse
  scale has one). The coarse operator thus lies between half the Galerkin operator and the Galerkin operator,
  and the coarse correction overshoots at most twofold. Rediscretising the masks instead (the pyramid's
  majority rule can drop a thin line of known pixels or close a narrow neck), or a bilinear prolongation (it
  spills a weakly held coarse pixel into strongly held fine pixels across a wall), overshoots by orders of
  magnitude on some of the benchmark photo's layers, and the V-cycle diverges. Here a narrow neck, a thin line
  of known pixels, a component with no known pixel or a pixel alone keep their weight on every grid.
* Damped Jacobi smoothing with the same masked operator (one step before and one after the coarse correction
  on a level's own grid, ``_COARSE_SMOOTHING`` on the aggregated grids) and an exact solve at the bottom make
  the V-cycle a fixed symmetric positive definite operator, so plain preconditioned CG applies.

Each iteration then reduces the error at every wavelength, where Jacobi-preconditioned CG only reduced the
short ones. On the benchmark photo's layers (``scripts/bench_harmonic.py``, 1080p) the fill is 0.3 % of the
range from the converged solution on average, where the earlier cascade of Jacobi-preconditioned CG was at
4.7 %, in about half the CPU time.

Two details matter for the accuracy. The residual of the starting guess is computed without the regulariser's
terms (they cancel exactly): in float32 the regulariser on the diagonal (``degree + 1e-4``) is rounded and the
one on the right-hand side is not, and a region held by the regulariser alone drifts by a fraction of a percent
of the range (the earlier cascade had that bias too). And every level works on the bounding box of its unknown
pixels plus a one-pixel ring (the operator is the same). The neighbour sums of a level's own grid and the grid
transfers are OpenCV calls, which release the GIL (inpainting runs fills on threads).
"""

from __future__ import annotations

import cv2
import numpy as np

_REGULARISATION = 1e-4
"""Keeps components with no known pixel solvable (they settle on their initial guess)."""

COARSE_ITERATIONS = 3
"""Multigrid-preconditioned CG iterations (V-cycles) on every coarser level of the pyramid."""

FINE_ITERATIONS = 2
"""Multigrid-preconditioned CG iterations (V-cycles) at full resolution, where most of the time goes."""

_COARSEST_ITERATIONS = 50
"""At most this many on the coarsest level (stopping at ``_COARSEST_TOLERANCE``); one when it is small enough
for the V-cycle's dense solve."""

_COARSEST_TOLERANCE = 1e-5
"""The coarsest level's CG stops once ``sqrt(r.z)`` has fallen by this factor."""

_OMEGA = np.float32(0.8)
"""Damped Jacobi weight: the best smoother of its kind for the five-point Laplacian."""

_COARSE_SMOOTHING = 2
"""Damped Jacobi steps before and after the coarse-grid correction on the aggregated grids (one on a level's
own grid)."""

_BOTTOM = 32
"""A V-cycle coarsens until its grid has at most this many free pixels, then solves it with a dense inverse."""

_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def _shift_sum(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of the four neighbours of every pixel (zero outside the image), written into ``out``.

    One OpenCV pass (it releases the GIL) instead of five numpy ones; equal up to float rounding.
    """
    return cv2.filter2D(x, -1, _CROSS, dst=out, borderType=cv2.BORDER_CONSTANT)


def _block_mean(a: np.ndarray, coarse_shape: tuple[int, int]) -> np.ndarray:
    """Mean over each coarse pixel's 2x2 block; an odd last row or column joins the block before it (its pixels
    add to that block's sum, which is still divided by four)."""
    hc, wc = coarse_shape
    h, w = a.shape
    even = a[: 2 * hc, : 2 * wc]
    if (h, w) != (2 * hc, 2 * wc):
        even = even.copy()
        if h > 2 * hc:
            even[-1] += a[2 * hc, : 2 * wc]
        if w > 2 * wc:
            even[:, -1] += a[: 2 * hc, 2 * wc]
            if h > 2 * hc:
                even[-1, -1] += a[2 * hc, 2 * wc]
    # OpenCV's exact 2x area average.
    return cv2.resize(even, (wc, hc), interpolation=cv2.INTER_AREA)


def _block_spread(coarse: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Every coarse pixel copied to its block (the transpose of a block sum), into ``out``."""
    hc, wc = coarse.shape
    if out.shape == (2 * hc, 2 * wc):
        return cv2.resize(coarse, (2 * wc, 2 * hc), dst=out, interpolation=cv2.INTER_NEAREST)
    out[: 2 * hc, : 2 * wc] = cv2.resize(coarse, (2 * wc, 2 * hc), interpolation=cv2.INTER_NEAREST)
    out[2 * hc :, : 2 * wc] = out[2 * hc - 1, : 2 * wc]
    out[:, 2 * wc :] = out[:, 2 * wc - 1 : 2 * wc]
    return out


def _pair_sum(a: np.ndarray, axis: int, count: int) -> np.ndarray:
    """Sums of consecutive pairs along ``axis`` (``count`` of them; a leftover last element joins the last)."""
    a = a if axis == 0 else a.T
    out = a[0 : 2 * count : 2] + a[1 : 2 * count : 2]
    if a.shape[0] > 2 * count:
        out[-1] += a[2 * count]
    return out if axis == 0 else np.ascontiguousarray(out.T)


class _Grid:
    """A masked operator ``A = D - W`` on the ``free`` pixels (x is zero elsewhere): W couples a pixel with the
    next one in its row by ``east`` and with the one below by ``south``; D is the sum of a pixel's couplings and
    its ``anchor`` (its coupling to fixed pixels plus its regulariser).

    A pyramid level's own grid has unit couplings between free pixels (``east`` is None): W is one OpenCV
    filter. ``coarse`` is the next grid of the V-cycle, None at the bottom. A V-cycle works in the grid's own
    buffers: what it returns is overwritten by the next V-cycle on the grid.
    """

    def __init__(self, free, mask, diag, east=None, south=None, anchor=None):
        self.free, self.mask, self.diag, self.shape = free, mask, diag, free.shape
        self.east, self.south, self.anchor = east, south, anchor
        self.count = int(np.count_nonzero(free))
        self.smoothing = mask * _OMEGA
        self.smoothing /= diag
        self.steps = 1 if east is None else _COARSE_SMOOTHING
        self.coarse: _Grid | None = None
        self._inverse: np.ndarray | None = None
        self._x, self._t, self._work = (np.empty(self.shape, np.float32) for _ in range(3))

    @classmethod
    def level(cls, free: np.ndarray, degree: np.ndarray) -> _Grid:
        """A pyramid level's five-point operator, ``degree`` (the neighbours in the domain) plus the regulariser
        on the diagonal: Neumann outside the domain, Dirichlet at its pixels that are not free."""
        mask = free.astype(np.float32)
        # degree + eps on the free pixels, one elsewhere (exactly: a tiny diagonal must not round away).
        diag = degree + np.float32(_REGULARISATION)
        diag *= mask
        diag += np.float32(1.0) - mask
        return cls(free, mask, diag)

    def _aggregate(self) -> _Grid:
        """The coarse grid of 2x2 blocks (module docstring), divided by four so that the restriction is the
        block mean: anchors add up, couplings across the blocks' edges add up and halve."""
        h, w = self.shape
        hc, wc = h // 2, w // 2
        if self.east is None:
            m = self.mask
            east = m[:, 1 : 2 * wc - 2 : 2] * m[:, 2 : 2 * wc - 1 : 2]
            south = m[1 : 2 * hc - 2 : 2] * m[2 : 2 * hc - 1 : 2]
            anchor = self.diag - _shift_sum(m, self._t)
            anchor *= m
        else:
            east, south, anchor = self.east[:, 1 : 2 * wc - 2 : 2], self.south[1 : 2 * hc - 2 : 2], self.anchor
        east = _pair_sum(east, 0, hc)
        east *= np.float32(0.125)
        south = _pair_sum(south, 1, wc)
        south *= np.float32(0.125)
        anchor = _block_mean(anchor, (hc, wc))
        free = _block_mean(self.mask, (hc, wc)) > 0
        mask = free.astype(np.float32)
        # The anchor and the couplings are zero off the free pixels, where the diagonal is one. On the free
        # ones it is never rounded away: a pixel alone, held by its regulariser only, has an anchor of
        # eps / 4**k on the k-th coarser grid.
        diag = anchor + (np.float32(1.0) - mask)
        diag[:, :-1] += east
        diag[:, 1:] += east
        diag[:-1] += south
        diag[1:] += south
        return _Grid(free, mask, diag, east, south, anchor)

    def coarsen(self) -> _Grid:
        """Build the V-cycle's coarser grids, down to ``_BOTTOM`` free pixels; returns self."""
        grid = self
        while grid.count > _BOTTOM and min(grid.shape) >= 2:
            grid.coarse = grid._aggregate()
            grid = grid.coarse
        return self

    def couple(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``W x`` for ``x`` zero off the free pixels, into ``out``: on a level's own grid it is junk off the
        free pixels, on an aggregated grid zero there (a coupling joins two free pixels)."""
        if self.east is None:
            return _shift_sum(x, out)
        east, south = self.east, self.south
        np.multiply(east, x[:, 1:], out=out[:, :-1])
        out[:, -1] = 0.0
        out[:, 1:] += east * x[:, :-1]
        out[:-1] += south * x[1:]
        out[1:] += south * x[:-1]
        return out

    def apply(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``A x`` for ``x`` zero off the free pixels, into ``out`` (zero off the free pixels)."""
        w = self.couple(x, self._t)
        if self.east is None:
            w *= self.mask
        return np.subtract(np.multiply(self.diag, x, out=out), w, out=out)

    def _smooth(self, r: np.ndarray, x: np.ndarray) -> None:
        """One damped Jacobi step on ``A x = r``, in place: ``x += omega D^-1 (r - D x + W x)``."""
        t = self.couple(x, self._t)
        t += r
        x *= np.float32(1.0) - _OMEGA
        cv2.accumulateProduct(self.smoothing, t, x)

    def v_cycle(self, r: np.ndarray) -> np.ndarray:
        """One V-cycle from zero on ``r`` (zero off the free pixels): an approximate inverse of the operator,
        symmetric positive definite. Returns one of the grid's buffers."""
        coarse = self.coarse
        if coarse is None:
            return self._bottom_solve(r)
        x = np.multiply(self.smoothing, r, out=self._x)
        for _ in range(self.steps - 1):
            self._smooth(r, x)
        # The residual r - D x + W x, zero off the free pixels.
        residual = self.couple(x, self._t)
        if self.east is None:
            residual *= self.mask
        if self.steps == 1:
            cv2.scaleAdd(r, np.float32(1.0) - _OMEGA, residual, dst=residual)  # D x = omega r
        else:
            residual += r
            residual -= self.diag * x
        correction = coarse.v_cycle(_block_mean(residual, coarse.shape))
        cv2.accumulateProduct(_block_spread(correction, self._work), self.mask, x)
        for _ in range(self.steps):
            self._smooth(r, x)
        return x

    def _bottom_solve(self, r: np.ndarray) -> np.ndarray:
        """The coarsest grid's solve: exact (a dense inverse) when small, else a fixed number of Jacobi steps
        (a fixed symmetric operator too, so the V-cycle stays a valid CG preconditioner)."""
        x = self._x
        if self.count > 4 * _BOTTOM:
            np.multiply(self.smoothing, r, out=x)
            for _ in range(39):
                self._smooth(r, x)
            return x
        if self._inverse is None:
            # OpenCV's LU: no thread pool to wake for a matrix this small.
            self._inverse = cv2.invert(self._dense(), flags=cv2.DECOMP_LU)[1]
        x.fill(0.0)
        x[self.free] = self._inverse @ r[self.free].astype(np.float64)
        return x

    def _dense(self) -> np.ndarray:
        index = -np.ones(self.shape, np.int64)
        ys, xs = np.nonzero(self.free)
        index[ys, xs] = np.arange(self.count)
        matrix = np.diag(self.diag[ys, xs].astype(np.float64))
        h, w = self.shape
        east = np.ones((h, w - 1), np.float32) if self.east is None else self.east
        south = np.ones((h - 1, w), np.float32) if self.south is None else self.south
        for weights, (dy, dx) in ((east, (0, 1)), (south, (1, 0))):
            a, b = index[: h - dy, : w - dx], index[dy:, dx:]
            both = (a >= 0) & (b >= 0)
            matrix[a[both], b[both]] -= weights[both]
            matrix[b[both], a[both]] -= weights[both]
        return matrix


def _mg_pcg(grid: _Grid, r: np.ndarray, iterations: int, tolerance: float = 0.0) -> np.ndarray:
    """Solve ``grid x = r`` from zero by CG preconditioned with the V-cycle: ``iterations`` steps at most (one
    V-cycle each), fewer once ``r.z`` falls by ``tolerance**2``. ``r`` is overwritten."""
    x = np.zeros_like(r)
    if iterations <= 0:
        return x
    ap = np.empty_like(r)
    z = grid.v_cycle(r)
    p = z.copy()
    rz = rz0 = float(np.vdot(r, z))
    for step in range(iterations):
        if rz <= 1e-30 or rz <= tolerance**2 * rz0:
            break
        curvature = float(np.vdot(p, grid.apply(p, ap)))
        if not np.isfinite(curvature) or curvature <= 0.0:
            break  # converged to float precision: a further step would divide by zero
        alpha = rz / curvature
        cv2.scaleAdd(p, alpha, x, dst=x)
        if step == iterations - 1:
            break  # the next direction would not be used
        cv2.scaleAdd(ap, -alpha, r, dst=r)
        z = grid.v_cycle(r)
        rz_new = float(np.vdot(r, z))
        cv2.scaleAdd(p, rz_new / rz, z, dst=p)
        rz = rz_new
    return x


class _Level:
    """One pyramid level's problem."""

    def __init__(self, values: np.ndarray, known: np.ndarray, domain: np.ndarray, fallback: float):
        self.values, self.known, self.domain, self.fallback = values, known, domain, fallback
        self.unknown = domain & ~known


def _pyramid(values: np.ndarray, known: np.ndarray, domain: np.ndarray) -> list[_Level]:
    """The levels, finest first; a coarse known pixel averages the known fine pixels it covers."""
    levels = []
    while True:
        fallback = float(np.median(values[known])) if known.any() else 0.0
        levels.append(_Level(values, known, domain, fallback))
        h, w = values.shape
        if not (min(h, w) >= 16 and np.count_nonzero(levels[-1].unknown) > 256):
            return levels
        size = (max(1, w // 2), max(1, h // 2))
        weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        total = cv2.resize(np.where(known, values, np.float32(0.0)), size, interpolation=cv2.INTER_AREA)
        coarse_known = weight > 0.5
        values = np.where(coarse_known, total / np.maximum(weight, np.float32(1e-6)), np.float32(fallback))
        coarse_domain = cv2.resize(domain.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        domain = coarse_domain | coarse_known
        known = coarse_known


def _span(first: int, last: int, size: int) -> slice:
    """``first..last`` and a one-pixel ring, within ``0..size``, one pixel longer where that makes it even
    (the V-cycle's 2x2 blocks then tile it)."""
    start, stop = max(first - 1, 0), min(last + 2, size)
    if (stop - start) % 2:
        if stop < size:
            stop += 1
        elif start > 0:
            start -= 1
    return slice(start, stop)


def _solve(level: _Level, init: np.ndarray, iterations: int, tolerance: float = 0.0) -> np.ndarray:
    """The level's values with its unknown pixels solved from ``init`` (on the bounding box of the unknown
    pixels and a one-pixel ring of their neighbours)."""
    unknown = level.unknown
    rows, cols = np.flatnonzero(unknown.any(axis=1)), np.flatnonzero(unknown.any(axis=0))
    if not len(rows):
        return level.values
    crop = (_span(rows[0], rows[-1], unknown.shape[0]), _span(cols[0], cols[-1], unknown.shape[1]))
    unknown_c, domain_c, values_c = unknown[crop], level.domain[crop], level.values[crop]
    degree = _shift_sum(domain_c.astype(np.float32), np.empty(unknown_c.shape, np.float32))
    grid = _Grid.level(unknown_c, degree)
    start = grid.mask * init[crop]
    # The residual of the starting guess, b - A x0 = (known and guessed neighbours) - degree x0: the
    # regulariser's terms cancel exactly, and computed apart their float32 rounding would not.
    residual = _shift_sum(np.where(level.known[crop] & domain_c, values_c, start), np.empty_like(start))
    residual -= degree * start
    residual *= grid.mask
    solution = _mg_pcg(grid.coarsen(), residual, iterations, tolerance)
    solution += start
    out = level.values.copy()
    out[crop] = np.where(unknown_c, solution, values_c)
    return out


def harmonic_extend(
    values: np.ndarray,
    known: np.ndarray,
    domain: np.ndarray,
    iterations: int = COARSE_ITERATIONS,
    fine_iterations: int = FINE_ITERATIONS,
) -> np.ndarray:
    """Fill ``domain & ~known`` with the harmonic extension of ``values`` on ``known``.

    ``iterations`` multigrid-preconditioned CG iterations on every coarser level, ``fine_iterations`` on this
    one; the coarsest level is solved to ``_COARSEST_TOLERANCE``.
    """
    values = np.array(values, dtype=np.float32, order="C")  # a copy: the result never aliases the input
    known, domain = np.ascontiguousarray(known, dtype=bool), np.ascontiguousarray(domain, dtype=bool)
    levels = _pyramid(values, known, domain)
    bottom = levels[-1]
    init = np.full(bottom.values.shape, bottom.fallback, np.float32)
    solution = _solve(bottom, init, _COARSEST_ITERATIONS, _COARSEST_TOLERANCE)
    for level in reversed(levels[:-1]):
        h, w = level.values.shape
        init = cv2.resize(solution, (w, h), interpolation=cv2.INTER_LINEAR)
        solution = _solve(level, init, fine_iterations if level is levels[0] else iterations)
    return solution

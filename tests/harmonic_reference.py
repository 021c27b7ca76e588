"""Reference solutions of the harmonic depth fill's equations, solved directly in float64 with scipy: what
``core.harmonic`` must converge to (its tests and ``scripts/bench_harmonic.py`` both compare with them)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

REGULARISATION = 1e-4
"""``core.harmonic``'s regulariser, towards the upsampled coarser level."""


def exact_harmonic(
    values: np.ndarray, known: np.ndarray, domain: np.ndarray, eps: float = 0.0, init: np.ndarray | None = None
) -> np.ndarray:
    """The discrete Laplace equation on ``domain & ~known`` (Neumann outside ``domain``), solved directly in
    float64; with ``eps``, regularised towards ``init`` (``eps`` on the diagonal, ``eps * init`` on the right)."""
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
    entries.append(degree + eps)
    if eps:
        rhs += eps * init[ys, xs]
    matrix = sparse.csr_matrix((np.concatenate(entries), (np.concatenate(rows), np.concatenate(cols))))
    out = values.astype(np.float64).copy()
    out[ys, xs] = spsolve(matrix.tocsc(), rhs)
    return out


def exact_pyramid(values: np.ndarray, known: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """The fill's problem solved exactly: every level of the 2x pyramid (a coarse known pixel averages the
    known fine pixels it covers) regularised towards the upsampled coarser solution, the coarsest towards the
    median known value."""
    values = values.astype(np.float32)
    h, w = values.shape
    fallback = float(np.median(values[known])) if known.any() else 0.0
    if min(h, w) >= 16 and (domain & ~known).sum() > 256:
        size = (max(1, w // 2), max(1, h // 2))
        weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        total = cv2.resize(np.where(known, values, 0.0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        coarse_known = weight > 0.5
        coarse_values = np.where(coarse_known, total / np.maximum(weight, 1e-6), fallback).astype(np.float32)
        coarse_domain = cv2.resize(domain.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        coarse = exact_pyramid(coarse_values, coarse_known, coarse_domain | coarse_known)
        init = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    else:
        init = np.full((h, w), fallback)
    if not (domain & ~known).any():
        return values.astype(np.float64)
    return exact_harmonic(values, known & domain, domain, REGULARISATION, init)

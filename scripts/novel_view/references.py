"""The numpy references DESIGN.md names: per-pixel splat + Telea, and one rubber sheet."""

from __future__ import annotations

import numpy as np

from .metrics import forward_splat


def fill_unknown_disparity(disparity: np.ndarray) -> np.ndarray:
    """Unknown (NaN) disparity from the nearest known pixel (Euclidean), as the pipeline fills depth."""
    import cv2

    d = np.asarray(disparity, np.float64)
    known = np.isfinite(d)
    if known.all() or not known.any():
        return np.nan_to_num(d, nan=0.0)
    _, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lut = np.zeros(labels.max() + 1)
    lut[labels[known]] = d[known]
    return lut[labels]


def reference_splat_telea(left: np.ndarray, disparity: np.ndarray, radius: int = 5) -> np.ndarray:
    """Per-pixel splat of the known-disparity pixels (``forward_splat``), holes filled by OpenCV Telea."""
    import cv2

    warped, hit, _ = forward_splat(left, disparity)
    return cv2.inpaint(np.ascontiguousarray(warped), (~hit).astype(np.uint8), radius, cv2.INPAINT_TELEA)


def reference_rubber_sheet(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """One stretched sheet: consecutive left pixels of a row stay joined, colour and disparity interpolated.

    Unknown disparity is filled from the nearest known pixel first. Each row's pixel centres move to
    u - d; every right pixel centre between two consecutive moved centres takes the linear interpolation of
    their colours (so depth edges become stretched smears), and where sheet parts overlap the larger
    interpolated disparity wins. Pixels the sheet does not reach (beyond its ends) are black.
    """
    d = fill_unknown_disparity(disparity)
    image = np.asarray(left, np.float64)
    h, w = d.shape
    channels = image.shape[2] if image.ndim == 3 else 1
    flat = image.reshape(h, w, channels)
    x = np.arange(w)[None, :] - d  # moved centres, (h, w)
    x0, x1 = x[:, :-1], x[:, 1:]
    lo = np.ceil(np.minimum(x0, x1) - 1e-9).astype(np.int64)
    hi = np.floor(np.maximum(x0, x1) + 1e-9).astype(np.int64)
    lo, hi = np.clip(lo, 0, w), np.clip(hi, -1, w - 1)
    count = np.maximum(hi - lo + 1, 0)
    rows, segs = np.nonzero(count)
    n = count[rows, segs]
    starts = np.repeat(np.cumsum(n) - n, n)
    pixel = np.repeat(lo[rows, segs], n) + (np.arange(n.sum()) - starts)
    rows, segs = np.repeat(rows, n), np.repeat(segs, n)
    a, b = x0[rows, segs], x1[rows, segs]
    span = b - a
    t = np.where(np.abs(span) > 1e-12, (pixel - a) / np.where(np.abs(span) > 1e-12, span, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    disp = d[rows, segs] * (1 - t) + d[rows, segs + 1] * t
    colour = flat[rows, segs] * (1 - t)[:, None] + flat[rows, segs + 1] * t[:, None]
    target = rows * w + pixel
    order = np.lexsort((disp, target))
    target, colour = target[order], colour[order]
    last = np.r_[target[1:] != target[:-1], True]
    out = np.zeros((h * w, channels))
    out[target[last]] = colour[last]
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(h, w, channels)
    return out if image.ndim == 3 else out[..., 0]

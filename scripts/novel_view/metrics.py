"""Scoring a right view: the forward splat, the overlap / disoccluded masks, masked PSNR and SSIM."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PSNR_CAP_DB = 100.0
"""PSNR of identical pixels (zero error) is reported as this instead of infinity, so JSON stays plain."""
METRICS = ("overlap_psnr", "overlap_ssim", "disoccluded_psnr", "disoccluded_ssim")


def forward_splat(image: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-exact forward warp of the left view to the right: left (v, u) lands on (v, round(u - d)).

    Pixels with unknown (NaN) disparity are not warped. Where several land on one pixel the largest
    disparity (nearest) wins. Returns the warped image (zeros where nothing lands), the hit mask and
    the winning disparity (NaN where nothing lands).
    """
    image = np.asarray(image)
    d = np.asarray(disparity, np.float64)
    h, w = d.shape
    vs, us = np.nonzero(np.isfinite(d))
    ur = np.floor(us - d[vs, us] + 0.5).astype(np.int64)
    inside = (ur >= 0) & (ur < w)
    vs, us, ur = vs[inside], us[inside], ur[inside]
    target = vs * w + ur
    values = d[vs, us]
    # Sort by target, then disparity: the last entry of each target run is the winner.
    order = np.lexsort((values, target))
    target, vs, us, values = target[order], vs[order], us[order], values[order]
    last = np.r_[target[1:] != target[:-1], True]
    target, vs, us, values = target[last], vs[last], us[last], values[last]
    warped = np.zeros((h * w,) + image.shape[2:], image.dtype)
    warped[target] = image[vs, us]
    hit = np.zeros(h * w, bool)
    hit[target] = True
    winner = np.full(h * w, np.nan)
    winner[target] = values
    return warped.reshape(image.shape), hit.reshape(h, w), winner.reshape(h, w)


def background_disparity(disparity: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per pixel, the smaller disparity of the nearest ``known`` pixels to its left and right on its row.

    A hole in a forward warp shows what lies behind its two sides, so the farther side (smaller
    disparity) estimates its disparity. Pixels with a known side only take that side; rows with no
    known pixel stay NaN. Known pixels keep their own disparity.
    """
    d = np.where(known, disparity, np.nan)
    h, w = d.shape
    cols = np.broadcast_to(np.arange(w), (h, w))
    left_idx = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
    right_idx = np.fliplr(np.minimum.accumulate(np.fliplr(np.where(known, cols, w)), axis=1))
    rows = np.arange(h)[:, None]
    from_left = np.where(left_idx >= 0, d[rows, np.clip(left_idx, 0, w - 1)], np.nan)
    from_right = np.where(right_idx < w, d[rows, np.clip(right_idx, 0, w - 1)], np.nan)
    return np.fmin(from_left, from_right)


@dataclass
class ViewMasks:
    """Masks over the right image; ``overlap`` and ``disoccluded`` are scored, the others are excluded."""

    overlap: np.ndarray
    disoccluded: np.ndarray
    out_of_view: np.ndarray
    unknown: np.ndarray
    """Holes explained by unknown ground truth in the left view."""

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name).sum()) for name in ("overlap", "disoccluded", "out_of_view", "unknown")}


def view_masks(disparity: np.ndarray, right_disparity: np.ndarray | None = None) -> ViewMasks:
    """Overlap, disoccluded and excluded right pixels from the left ground-truth disparity (NaN = unknown).

    Rules, for a right pixel u that no left pixel lands on (``forward_splat``):

    - its disparity d is the right ground truth where the pair has it (Middlebury 2003's disp6), otherwise the
      background estimate of the hole (``background_disparity``: the farther of the nearest hit pixels to
      its left and right on the row);
    - out of view when the left camera cannot see it: u + d >= w - 0.5 (the right image's right border, about
      d pixels wide; with no estimate at all, e.g. an empty row, it is out of view too);
    - unknown when the left pixel it shows, round(u + d_bg) with the background estimate, or one of its two
      row neighbours has unknown disparity: the hole may come from missing ground truth rather than from
      parallax, so it is not scored;
    - disoccluded otherwise.
    """
    d = np.asarray(disparity, np.float64)
    h, w = d.shape
    _, hit, warped_d = forward_splat(np.zeros((h, w), np.uint8), d)
    estimate = background_disparity(warped_d, hit)
    own = estimate
    if right_disparity is not None:
        rd = np.asarray(right_disparity, np.float64)
        own = np.where(np.isfinite(rd) & (rd > 0), rd, estimate)
    cols = np.broadcast_to(np.arange(w, dtype=np.float64), (h, w))
    with np.errstate(invalid="ignore"):
        out_of_view = ~hit & ~(cols + own < w - 0.5)
    source = np.floor(cols + np.nan_to_num(estimate, nan=0.0) + 0.5).astype(np.int64)
    unknown_left = ~np.isfinite(d)
    rows = np.arange(h)[:, None]
    source_unknown = np.zeros((h, w), bool)
    for offset in (-1, 0, 1):
        s = np.clip(source + offset, 0, w - 1)
        source_unknown |= unknown_left[rows, s]
    unknown = ~hit & ~out_of_view & source_unknown
    disoccluded = ~hit & ~out_of_view & ~unknown
    return ViewMasks(overlap=hit, disoccluded=disoccluded, out_of_view=out_of_view, unknown=unknown)


def masked_psnr(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the masked pixels and all channels, 8-bit range; ``PSNR_CAP_DB`` when equal, NaN if empty."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    diff = np.asarray(image, np.float64)[mask] - np.asarray(truth, np.float64)[mask]
    mse = float(np.mean(diff**2))
    if mse <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def ssim_map(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (7x7 windows, 8-bit range) averaged over the channels."""
    from skimage.metrics import structural_similarity

    image, truth = np.asarray(image, np.float64), np.asarray(truth, np.float64)
    multichannel = image.ndim == 3
    _, full = structural_similarity(image, truth, channel_axis=2 if multichannel else None, data_range=255, full=True)
    return full.mean(axis=2) if multichannel else full


def masked_ssim(image: np.ndarray, truth: np.ndarray, mask: np.ndarray, full: np.ndarray | None = None) -> float:
    """Mean of the SSIM map over ``mask`` (NaN if empty); pass ``full`` to reuse a computed map."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    full = ssim_map(image, truth) if full is None else full
    return float(full[mask].mean())


def score(image: np.ndarray, truth: np.ndarray, masks: ViewMasks) -> dict[str, float]:
    """The four numbers of the report for one rendered right view."""
    full = ssim_map(image, truth)
    return {
        "overlap_psnr": masked_psnr(image, truth, masks.overlap),
        "overlap_ssim": masked_ssim(image, truth, masks.overlap, full),
        "disoccluded_psnr": masked_psnr(image, truth, masks.disoccluded),
        "disoccluded_ssim": masked_ssim(image, truth, masks.disoccluded, full),
    }


def loose_score(image: np.ndarray, truth: np.ndarray, masks: ViewMasks) -> dict[str, float]:
    """Cruder masks, for comparison with DESIGN.md's table: the whole frame, and every pixel nothing lands on.

    With these, the numpy splat + Telea reproduces DESIGN.md's Motorcycle figures (22.5 / 0.85, 16.3 / 0.58).
    """
    full = ssim_map(image, truth)
    everything = np.ones(masks.overlap.shape, bool)
    return {
        "all_psnr": masked_psnr(image, truth, everything),
        "all_ssim": masked_ssim(image, truth, everything, full),
        "unhit_psnr": masked_psnr(image, truth, ~masks.overlap),
        "unhit_ssim": masked_ssim(image, truth, ~masks.overlap, full),
    }


# --- edge measures of a depth map against the ground truth ------------------------------------------

EDGE_JUMP_PX = 1.5
"""A depth jump: neighbouring pixels whose disparity differs by more than this many pixels."""
EDGE_TOLERANCE_PX = 2.0
EDGE_BAND_PX = 4.0


def depth_jumps(disparity: np.ndarray, threshold: float = EDGE_JUMP_PX) -> np.ndarray:
    """Pixels p whose right or lower neighbour q has |d(p) - d(q)| > ``threshold`` (NaN never jumps).

    Marking the first pixel of each pair, in the same way for both maps, makes a step shifted by k pixels
    a jump map shifted by exactly k pixels.
    """
    d = np.asarray(disparity, np.float64)
    jumps = np.zeros(d.shape, bool)
    with np.errstate(invalid="ignore"):
        jumps[:, :-1] |= np.abs(d[:, 1:] - d[:, :-1]) > threshold
        jumps[:-1, :] |= np.abs(d[1:, :] - d[:-1, :]) > threshold
    return jumps


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest True of ``mask`` (inf when there is none)."""
    from scipy import ndimage

    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask)


def edge_measures(
    disparity: np.ndarray,
    truth: np.ndarray,
    valid: np.ndarray | None = None,
    threshold: float = EDGE_JUMP_PX,
    tolerance: float = EDGE_TOLERANCE_PX,
    band: float = EDGE_BAND_PX,
) -> dict[str, float]:
    """How well the jumps of ``disparity`` follow those of ``truth`` (both in the same disparity pixels).

    Jumps are ``depth_jumps`` of each map; only jumps at ``valid`` pixels count (default: where ``truth`` is
    finite). Returns:

    - ``precision``: share of the map's jumps within ``tolerance`` px of a true jump;
    - ``recall``: share of true jumps within ``tolerance`` px of one of the map's jumps;
    - ``distance_to_true`` / ``distance_from_true``: mean distance, in px, of the map's jumps to the nearest
      true jump, and of the true jumps to the nearest jump of the map;
    - ``band_error``: mean |disparity - truth| over valid pixels within ``band`` px of a true jump;
    - ``jumps`` / ``true_jumps``: how many of each were counted.

    Empty sets give NaN (precision with no jumps, recall with no true jumps).
    """
    d = np.asarray(disparity, np.float64)
    t = np.asarray(truth, np.float64)
    valid = np.isfinite(t) if valid is None else np.asarray(valid, bool) & np.isfinite(t)
    found = depth_jumps(d, threshold) & valid
    true = depth_jumps(t, threshold) & valid
    to_true, to_found = _distance_to(true), _distance_to(found)

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else float("nan")

    near_band = valid & (to_true <= band) & np.isfinite(d)
    return {
        "precision": mean(to_true[found] <= tolerance),
        "recall": mean(to_found[true] <= tolerance),
        "distance_to_true": mean(to_true[found]),
        "distance_from_true": mean(to_found[true]),
        "band_error": mean(np.abs(d[near_band] - t[near_band])),
        "jumps": int(found.sum()),
        "true_jumps": int(true.sum()),
    }


def worst_window(error: np.ndarray, valid: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (row, col) of the ``size`` x ``size`` window with the largest summed ``error`` over ``valid``.

    Windows stay inside the image (``size`` is cut to the image); ties take the first in row-major order.
    """
    e = np.where(np.asarray(valid, bool), np.asarray(error, np.float64), 0.0)
    h, w = e.shape
    sh, sw = min(size, h), min(size, w)
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = e.cumsum(0).cumsum(1)
    sums = integral[sh:, sw:] - integral[:-sh, sw:] - integral[sh:, :-sw] + integral[:-sh, :-sw]
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(row), int(col)

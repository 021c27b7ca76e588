"""Shot cuts in a frame sequence: where a video's content changes at once, every temporal state resets.

A frame is summarised by a coarse hue-saturation-value histogram of a small copy (robust to motion, noise and
compression). The distance between consecutive frames' histograms (half the L1 distance: 0 for the same
colours, 1 for disjoint ones) spikes at a cut, while a camera move or a moving object changes it a little
every frame. A cut is a distance above ``threshold`` that also stands out from its neighbourhood: at least
``contrast`` times the median distance of the ``window`` frames around it, so a fast pan (high distances
throughout) does not cut at every frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

SMALL_SIDE = 64
"""Frames are compared at this width: a cut changes everything, so detail is irrelevant."""
BINS = (16, 4, 4)
"""Hue, saturation and value bins."""


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """A normalised HSV histogram (sums to 1) of an RGB frame (h, w, 3), uint8 or float 0..1."""
    rgb = np.asarray(frame)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"a frame must be (h, w, 3) RGB, not {rgb.shape}")
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb[..., :3], (SMALL_SIDE, max(1, round(SMALL_SIDE * h / w))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256]).ravel()
    return (histogram / max(float(histogram.sum()), 1.0)).astype(np.float64)


def signature_distances(signatures: list[np.ndarray]) -> np.ndarray:
    """Half the L1 distance between consecutive signatures: entry i compares frame i with frame i + 1."""
    if len(signatures) < 2:
        return np.zeros(0)
    stacked = np.stack(signatures)
    return 0.5 * np.abs(np.diff(stacked, axis=0)).sum(axis=1)


def detect_cuts(
    frames: Iterable[np.ndarray], threshold: float = 0.35, contrast: float = 3.0, window: int = 6
) -> list[int]:
    """Indices of the frames that start a new shot (never 0), in order."""
    distances = signature_distances([frame_signature(frame) for frame in frames])
    return cuts_from_distances(distances, threshold, contrast, window)


def cuts_from_distances(
    distances: np.ndarray, threshold: float = 0.35, contrast: float = 3.0, window: int = 6
) -> list[int]:
    """``detect_cuts`` on precomputed consecutive distances (entry i: frame i to i + 1)."""
    cuts = []
    n = len(distances)
    for i in range(n):
        if distances[i] < threshold:
            continue
        lo, hi = max(0, i - window), min(n, i + window + 1)
        around = np.concatenate([distances[lo:i], distances[i + 1 : hi]])
        local = float(np.median(around)) if around.size else 0.0
        if distances[i] >= contrast * local:
            cuts.append(i + 1)
    return cuts


def shots(frame_count: int, cuts: list[int]) -> list[tuple[int, int]]:
    """The shots as (first, last) frame indices, inclusive, from the cut list."""
    starts = [0, *[c for c in cuts if 0 < c < frame_count]]
    ends = [*[c - 1 for c in starts[1:]], frame_count - 1]
    return [(a, b) for a, b in zip(starts, ends, strict=True) if frame_count > 0]

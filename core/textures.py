"""Layer textures at the source resolution: the photo where a layer is seen, its fill where hidden.

Alpha is the layer's extent resampled bilinearly from the working resolution, which gives anti-aliased
edges when the source is larger than the working size. Observed masks of all layers resample to a
partition of unity, and every layer shows the photo itself wherever it is observed at all, so the layers
composited back to front reproduce the photo exactly.

Memory: one texture is built at a time, from the source samples as loaded (uint8 for most photos), in
strips of rows; the largest temporary is the fill colour resampled to the source size (12 bytes a pixel,
only for layers with a hole), because it must be resampled whole to stay identical to ``cv2.resize``.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .inpaint import LayerFill
from .load import to_unit_float

STRIP_ROWS = 256
"""Rows per strip of the per-pixel arithmetic: 256 rows of a 12000 px wide photo are 37 MB as float32 RGB."""


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _strips(height: int) -> Iterator[slice]:
    for top in range(0, height, STRIP_ROWS):
        yield slice(top, min(top + STRIP_ROWS, height))


def _to_bytes(samples: np.ndarray) -> np.ndarray:
    """Samples (uint8, uint16 or float32 0..1) as uint8: round(value * 255), clipped."""
    if samples.dtype == np.uint8:
        return samples  # exact: round(to_unit_float(u) * 255) == u for every byte u
    values = to_unit_float(samples) if samples.dtype != np.float32 else samples
    # clip(values * 255 + 0.5, 0, 255) in float32 as before, in place on one temporary.
    scaled = values * np.float32(255.0)
    scaled += np.float32(0.5)
    np.clip(scaled, np.float32(0.0), np.float32(255.0), out=scaled)
    return scaled.astype(np.uint8)


def layer_rgba(photo: np.ndarray, photo_alpha: np.ndarray | None, observed: np.ndarray, fill: LayerFill) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha texture of one layer at the photo's resolution.

    ``photo`` (H, W, 3) and ``photo_alpha`` (H, W) are source samples: uint8, uint16 or float32 0..1
    (``LoadedImage.source_rgb`` / ``source_alpha``); the result is the same for each form of the same values.
    """
    height, width = photo.shape[:2]
    if photo.dtype == np.uint8:
        rgba = cv2.cvtColor(np.ascontiguousarray(photo), cv2.COLOR_RGB2RGBA)  # one pass; alpha is set below
    else:
        rgba = np.empty((height, width, 4), dtype=np.uint8)
        for rows in _strips(height):
            rgba[rows, :, :3] = _to_bytes(photo[rows])

    alpha = _resize(fill.extent.astype(np.float32), width, height)  # a new array either way
    np.clip(alpha, 0.0, 1.0, out=alpha)
    has_hole = bool(fill.hole.any())
    if has_hole:
        # Filled colour shows only where no layer sees the photo but this layer still has coverage.
        only_filled = _resize(observed.astype(np.float32), width, height) <= 1e-6
        only_filled &= alpha > 0
    for rows in _strips(height):
        if photo_alpha is not None:
            alpha[rows] *= to_unit_float(photo_alpha[rows]) if photo_alpha.dtype != np.float32 else photo_alpha[rows]
        rgba[rows, :, 3] = _to_bytes(alpha[rows])
    del alpha

    if has_hole:
        # Resampled whole: cv2.resize per strip or per channel differs from it in the last bit.
        filled = _resize(fill.rgb, width, height)
        for rows in _strips(height):
            where = only_filled[rows]
            if where.any():  # the filled band covers few strips of most layers
                np.copyto(rgba[rows, :, :3], _to_bytes(filled[rows]), where=where[..., None])
    return rgba


def bleed_colour(rgba: np.ndarray) -> np.ndarray:
    """Copy the nearest visible colour into fully transparent texels (uint8 RGBA, in place and returned).

    Compositing ignores them, but texture filtering does not: mipmaps and bilinear taps that mix a visible
    texel with a black transparent one darken the edge, which shows as dark seams between MPI bands.
    """
    from scipy.ndimage import distance_transform_edt

    clear = rgba[..., 3] == 0
    if clear.any() and not clear.all():
        _, (rows, cols) = distance_transform_edt(clear, return_indices=True)
        rgba[..., :3] = rgba[rows, cols, :3]
    return rgba


def write_png(path, rgba: np.ndarray) -> None:
    """Write an RGBA or RGB uint8 PNG quickly: run-length strategy, about twice as fast as deflate level 1."""
    code = cv2.COLOR_RGBA2BGRA if rgba.shape[2] == 4 else cv2.COLOR_RGB2BGR
    if not cv2.imwrite(
        str(path),
        cv2.cvtColor(rgba, code),
        [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE],
    ):
        raise OSError(f"cannot write {path}")

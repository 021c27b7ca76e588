"""Layer textures at the source resolution: the photo where a layer is seen, its fill where hidden.

Alpha is the layer's extent resampled bilinearly from the working resolution, which gives anti-aliased
edges when the source is larger than the working size. Observed masks of all layers resample to a
partition of unity, and every layer shows the photo itself wherever it is observed at all, so the layers
composited back to front reproduce the photo exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from .inpaint import LayerFill


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def layer_rgba(photo: np.ndarray, photo_alpha: np.ndarray | None, observed: np.ndarray, fill: LayerFill) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha texture of one layer at the photo's resolution."""
    height, width = photo.shape[:2]
    seen = _resize(observed.astype(np.float32), width, height)
    alpha = np.clip(_resize(fill.extent.astype(np.float32), width, height), 0.0, 1.0)
    rgb = photo
    if fill.hole.any():
        filled = _resize(fill.rgb, width, height)
        only_filled = (seen <= 1e-6) & (alpha > 0)
        rgb = np.where(only_filled[..., None], filled, photo)
    if photo_alpha is not None:
        alpha = alpha * photo_alpha
    rgba = np.empty((height, width, 4), dtype=np.uint8)
    rgba[..., :3] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgba[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
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

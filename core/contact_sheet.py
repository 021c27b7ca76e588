"""A one-image overview of a package: the photo, its depth, and every layer over a checkerboard.

Layers come in as thumbnails (``layer_thumbnail``), made while each full-resolution texture is at hand, so
the sheet never needs all layers at full resolution at once.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

THUMB_WIDTH = 320


def _checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return (0.55 + 0.25 * light)[..., None].repeat(3, axis=2)


def _thumb(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[:2] == (height, THUMB_WIDTH):
        return image  # already a thumbnail
    return cv2.resize(image, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)


def thumb_height(height: int, width: int) -> int:
    """Height of the sheet's tiles for a photo of (height, width), any resolution of it."""
    return max(1, round(THUMB_WIDTH * height / width))


def layer_thumbnail(rgba: np.ndarray, height: int) -> np.ndarray:
    """A layer's uint8 RGBA texture reduced to a tile of the sheet (``THUMB_WIDTH`` x ``height``)."""
    return _thumb(rgba, height)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), thickness=-1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def depth_colours(depth: np.ndarray) -> np.ndarray:
    """Depth as a colour image (near bright, far dark), uint8 RGB."""
    disparity = 1.0 / np.maximum(depth, 1e-9)
    lo, hi = np.percentile(disparity, [1, 99])
    normalised = np.clip((disparity - lo) / max(hi - lo, 1e-12), 0, 1)
    coloured = cv2.applyColorMap((normalised * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)


def make_contact_sheet(
    photo: np.ndarray, depth: np.ndarray, textures: list[np.ndarray], entries: list[dict[str, Any]]
) -> np.ndarray:
    """uint8 RGB sheet: photo, depth, then each layer (back to front) with its depth range.

    ``textures`` are the layers' uint8 RGBA, full size or already ``layer_thumbnail`` tiles.
    """
    th = thumb_height(*photo.shape[:2])
    tiles = [
        _label(_thumb((np.clip(photo, 0, 1) * 255).astype(np.uint8), th), "photo"),
        _label(_thumb(depth_colours(depth), th), f"depth {depth.min():.2f}-{depth.max():.2f}"),
    ]
    for rgba, entry in zip(textures, entries, strict=True):
        small = _thumb(rgba, th).astype(np.float32) / 255.0
        alpha = small[..., 3:4]
        over = small[..., :3] * alpha + _checkerboard(th, THUMB_WIDTH) * (1 - alpha)
        lo, hi = entry["depth_range"]
        text = f"{entry['name']}  {lo:.2f}-{hi:.2f}"
        if entry.get("inpainted_fraction"):
            text += f"  fill {100 * entry['inpainted_fraction']:.0f}%"
        tiles.append(_label((over * 255 + 0.5).astype(np.uint8), text))
    columns = 4
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (th + 4) + 4, columns * (THUMB_WIDTH + 4) + 4, 3), 40, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = 4 + r * (th + 4), 4 + c * (THUMB_WIDTH + 4)
        sheet[y : y + th, x : x + THUMB_WIDTH] = tile
    return sheet

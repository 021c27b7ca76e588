"""Fill what nearer layers hide (stage 6).

For every layer but the nearest, the hole is the part of the nearer layers within a band (as wide as
the largest parallax a camera move should reveal) of the layer; the farthest layer is filled
everywhere, so the scene never shows empty space. Colour context comes only from the layer itself
and farther ones, never from nearer ones (that is what causes halos). Depth is extended harmonically
from the layer's own pixels.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from .harmonic import harmonic_extend
from .layers import Layer
from .models import InpaintBackend, ModelCache, Runtime, backend_for
from .options import InpaintOptions, RuntimeOptions
from .progress import Progress

COARSE_FACTOR = 4
"""Deep inside big holes colour is filled at this coarser scale: never seen up close, and much faster."""


@dataclass
class LayerFill:
    """A layer extended behind nearer ones, at the working resolution."""

    extent: np.ndarray
    """(h, w) bool: observed pixels plus the filled band."""
    hole: np.ndarray
    """(h, w) bool: the filled pixels."""
    rgb: np.ndarray
    """(h, w, 3) float32, the photo on observed pixels, filled on the hole."""
    depth: np.ndarray
    """(h, w) float32, valid on ``extent``."""

    @property
    def inpainted_fraction(self) -> float:
        total = int(self.extent.sum())
        return float(self.hole.sum()) / total if total else 0.0


def layer_holes(layers: list[Layer], band_px: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer (back to front): (pixels hidden by nearer layers, the part of them to fill)."""
    result = []
    shape = layers[0].mask.shape
    nearer = np.zeros(shape, dtype=bool)
    hidden_by_nearer = [np.zeros(shape, dtype=bool)] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        hidden_by_nearer[i] = nearer.copy()
        nearer |= layers[i].mask
    for i, layer in enumerate(layers):
        hidden = hidden_by_nearer[i]
        if i == 0:
            hole = hidden.copy()
        elif not hidden.any() or band_px <= 0:
            hole = np.zeros(shape, dtype=bool)
        else:
            distance = cv2.distanceTransform((~layer.mask).astype(np.uint8), cv2.DIST_L2, 5)
            hole = hidden & (distance <= band_px)
        result.append((hidden, hole))
    return result


def _telea_fill(rgb8: np.ndarray, unknown: np.ndarray, needed: np.ndarray, radius: int, flags: int) -> np.ndarray:
    """Fill ``needed`` pixels of ``unknown`` from known ones; far-from-context pixels come from a coarse fill."""
    if not needed.any():
        return rgb8
    distance = cv2.distanceTransform(unknown.astype(np.uint8), cv2.DIST_L2, 5)
    near_band = 6 * COARSE_FACTOR + 2 * radius
    fine_mask = unknown & (distance <= near_band)
    seeded = rgb8.copy()
    deep = unknown & ~fine_mask
    if deep.any():
        h, w = unknown.shape
        size = (max(1, w // COARSE_FACTOR), max(1, h // COARSE_FACTOR))
        small = cv2.resize(rgb8, size, interpolation=cv2.INTER_AREA)
        known_share = cv2.resize((~unknown).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        # A coarse pixel is context only when it is (almost) entirely known: no nearer colour leaks in.
        small_mask = (known_share < 0.99).astype(np.uint8)
        small_fill = cv2.inpaint(small, small_mask, max(1, radius // 2), flags)
        seeded[deep] = cv2.resize(small_fill, (w, h), interpolation=cv2.INTER_LINEAR)[deep]
    return cv2.inpaint(seeded, fine_mask.astype(np.uint8), radius, flags)


def _fill_colour_opencv(rgb: np.ndarray, hidden_holes, options: InpaintOptions, progress) -> list[np.ndarray]:
    flags = cv2.INPAINT_TELEA if options.method == "telea" else cv2.INPAINT_NS
    rgb8 = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def fill_one(hidden_hole):
        hidden, hole = hidden_hole
        return _telea_fill(rgb8, hidden, hole, options.radius, flags).astype(np.float32) / 255.0

    # Layers are independent and OpenCV releases the GIL: fill them side by side.
    filled = []
    with ThreadPoolExecutor(max_workers=min(len(hidden_holes), os.cpu_count() or 1)) as pool:
        for i, out in enumerate(pool.map(fill_one, hidden_holes)):
            if progress is not None:
                progress.update((i + 1) / len(hidden_holes) * 0.7, f"colour {i + 1}/{len(hidden_holes)}")
            filled.append(out)
    return filled


def _fill_colour_network(rgb, hidden_holes, options, runtime, cache) -> list[np.ndarray]:
    """Every layer's hidden pixels filled by the inpainting backend for ``options.lama_model``, in one batch."""
    network: InpaintBackend = backend_for("inpainting", options.lama_model, Runtime.from_options(runtime), cache)
    todo = [i for i, (_, hole) in enumerate(hidden_holes) if hole.any()]
    filled = [rgb.copy() for _ in hidden_holes]
    if todo:
        images = np.stack([np.where(hidden_holes[i][0][..., None], 0.0, rgb) for i in todo]).astype(np.float32)
        masks = np.stack([hidden_holes[i][0] for i in todo])
        out = network.fill(images, masks)
        for k, i in enumerate(todo):
            filled[i] = out[k]
    return filled


def inpaint_layers(
    rgb: np.ndarray,
    depth: np.ndarray,
    layers: list[Layer],
    options: InpaintOptions,
    runtime: RuntimeOptions | None = None,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> list[LayerFill]:
    """Extend every layer behind the nearer ones; returns one ``LayerFill`` per layer, back to front."""
    h, w = depth.shape
    band_px = options.band_fraction * w
    hidden_holes = layer_holes(layers, band_px)
    if options.method == "lama":
        colours = _fill_colour_network(rgb, hidden_holes, options, runtime or RuntimeOptions(), cache)
    else:
        colours = _fill_colour_opencv(rgb, hidden_holes, options, progress)
    disparity = 1.0 / np.maximum(depth, 1e-6)
    fills = []
    for layer, (_, hole), colour in zip(layers, hidden_holes, colours, strict=True):
        if progress is not None:
            progress.check()
        extent = layer.mask | hole
        layer_disparity = disparity
        if hole.any():
            layer_disparity = harmonic_extend(disparity, layer.mask, extent)
            # The maximum principle keeps the fill within the layer's own range; guard float accidents.
            bad = ~np.isfinite(layer_disparity) | (layer_disparity <= 0)
            if bad.any():
                layer_disparity = np.where(bad, np.median(disparity[layer.mask]), layer_disparity)
        layer_depth = np.where(extent, 1.0 / np.maximum(layer_disparity, 1e-9), 0.0).astype(np.float32)
        layer_rgb = np.where(hole[..., None], colour, rgb).astype(np.float32)
        fills.append(LayerFill(extent=extent, hole=hole, rgb=layer_rgb, depth=layer_depth))
    return fills

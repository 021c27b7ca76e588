"""Fill what nearer layers hide (stage 6).

For every layer but the nearest, the hole is the part of the nearer layers within a band (as wide as
the largest parallax a camera move should reveal) of the layer; the farthest layer is filled
everywhere, so the scene never shows empty space. Colour context comes only from the layer itself
and farther ones, never from nearer ones (that is what causes halos). Depth is extended harmonically
from the layer's own pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
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
    border: int = 0
    """Working pixels the fill reaches past each edge of the photo (``add_border``: the backdrop and layers the
    frame cuts): the arrays are then (h + 2 border, w + 2 border) and pixel (border, border) is the photo's
    first."""

    def frame(self) -> LayerFill:
        """The fill within the photo's frame (itself when it has no border)."""
        b = self.border
        if not b:
            return self
        inside = (slice(b, -b), slice(b, -b))
        return LayerFill(self.extent[inside], self.hole[inside], self.rgb[inside], self.depth[inside])

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


def touches_frame(mask: np.ndarray) -> bool:
    """Whether ``mask`` has a pixel on the photo's outermost rows or columns."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def add_border(fill: LayerFill, border: int, backdrop: bool) -> LayerFill:
    """``fill`` reaching ``border`` working pixels past each edge of the photo.

    The backdrop covers all of it; any other layer goes on straight out from where it meets the edge (its
    edge pixels repeated outwards), so a shelf or a floor cut by the frame continues past it instead of
    showing what the backdrop guesses behind it. Depth repeats the edge's own value outwards (a mirror would
    fold a slanted floor back on itself); colour is the fill mirrored at the edges (texture goes on, no
    smear), as the textures mirror the photo at its own resolution (``textures.layer_rgba``).
    """
    if border <= 0:
        return fill
    pad = (border, border, border, border)
    rgb = cv2.copyMakeBorder(np.ascontiguousarray(fill.rgb), *pad, cv2.BORDER_REFLECT)
    depth = cv2.copyMakeBorder(np.where(fill.extent, fill.depth, 0.0).astype(np.float32), *pad, cv2.BORDER_REPLICATE)
    if backdrop:
        extent = np.ones(depth.shape, dtype=bool)
    else:
        extent = cv2.copyMakeBorder(fill.extent.astype(np.uint8), *pad, cv2.BORDER_REPLICATE) > 0
    inside = (slice(border, -border), slice(border, -border))
    extent[inside] = fill.extent
    hole = extent.copy()
    hole[inside] = fill.hole
    return LayerFill(extent=extent, hole=hole, rgb=rgb, depth=np.where(extent, depth, 0.0), border=border)


def _telea_fill(rgb8: np.ndarray, unknown: np.ndarray, needed: np.ndarray, radius: int, flags: int) -> np.ndarray:
    """Fill ``needed`` pixels of ``unknown`` from known ones; far-from-context pixels come from a coarse fill.

    The fine fill covers unknown pixels within ``near_band`` of context, and of those only the ones within
    twice that of a needed pixel: the fill marches from the context inwards and a pixel reads only pixels
    filled before it, nearer the context, so the needed pixels' colours come out as with the whole band
    (checked equal on the benchmark photo) while the other layers' hidden pixels near context (behind a
    layer's hole, outside it) cost nothing.
    """
    if not needed.any():
        return rgb8
    distance = cv2.distanceTransform(unknown.astype(np.uint8), cv2.DIST_L2, 5)
    near_band = 6 * COARSE_FACTOR + 2 * radius
    fine_mask = unknown & (distance <= near_band)
    if not needed[fine_mask].all():
        from_needed = cv2.distanceTransform((~needed).astype(np.uint8), cv2.DIST_L2, 5)
        fine_mask &= from_needed <= 2 * near_band
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


def _colour_jobs(rgb: np.ndarray, hidden_holes, options: InpaintOptions, pool: ThreadPoolExecutor) -> list[Future]:
    """One OpenCV fill per layer, started on ``pool``: layers are independent and OpenCV releases the GIL."""
    flags = cv2.INPAINT_TELEA if options.method == "telea" else cv2.INPAINT_NS
    rgb8 = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def fill_one(hidden_hole):
        hidden, hole = hidden_hole
        return _telea_fill(rgb8, hidden, hole, options.radius, flags)  # uint8; only the hole is used

    return [pool.submit(fill_one, hidden_hole) for hidden_hole in hidden_holes]


def _layer_colour(rgb: np.ndarray, hole: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The photo with the hole's pixels taken from ``colour`` (float 0..1, or uint8 from OpenCV)."""
    if colour.dtype != np.uint8:
        return np.where(hole[..., None], colour, rgb).astype(np.float32)
    layer_rgb = rgb.astype(np.float32)  # a copy
    layer_rgb[hole] = colour[hole].astype(np.float32) / np.float32(255.0)
    return layer_rgb


def wait_result(future: Future, progress: Progress | None, poll_s: float = 0.05):
    """``future.result()``, honouring a cancel every ``poll_s`` seconds while it runs."""
    while not future.done():
        wait_futures([future], timeout=poll_s)
        if progress is not None:
            progress.check()
    return future.result()


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


BEHIND_MARGIN = 0.01
"""A hidden fill lies at least this share (in disparity) behind the surface that hides it."""


def _layer_disparity(disparity: np.ndarray, mask: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Disparity extended harmonically from the layer's own pixels over its extent, and kept behind the
    visible surface where it is hidden: a layer's depth range can overlap a nearer layer's (layers are grouped
    by their masks' medians), and a fill in front of what hides it would cover it in the photo's own view."""
    if not (extent & ~mask).any():
        return disparity
    layer_disparity = harmonic_extend(disparity, mask, extent)
    # The maximum principle keeps the fill within the layer's own range; guard float accidents.
    bad = ~np.isfinite(layer_disparity) | (layer_disparity <= 0)
    if bad.any():
        layer_disparity = np.where(bad, np.median(disparity[mask]), layer_disparity)
    hidden = extent & ~mask
    behind = np.minimum(layer_disparity, disparity * (1.0 - BEHIND_MARGIN))
    return np.where(hidden, behind, layer_disparity).astype(layer_disparity.dtype)


def inpaint_layers(
    rgb: np.ndarray,
    depth: np.ndarray,
    layers: list[Layer],
    options: InpaintOptions,
    runtime: RuntimeOptions | None = None,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
    on_fill: Callable[[int, LayerFill], None] | None = None,
    border: int = 0,
) -> list[LayerFill]:
    """Extend every layer behind the nearer ones; returns one ``LayerFill`` per layer, back to front.

    The farthest layer, and every layer the frame cuts, also reach ``border`` working pixels past each edge
    of the photo (``add_border``).

    OpenCV colour fills run on helper threads while this thread extends the depth, layer by layer;
    ``on_fill(index, fill)`` is called as soon as each layer's fill is complete (the pipeline starts its
    texture there). A cancel is honoured while the helpers run; their pending work is dropped.
    """
    h, w = depth.shape
    band_px = options.band_fraction * w
    hidden_holes = layer_holes(layers, band_px)
    disparity = 1.0 / np.maximum(depth, 1e-6)
    workers = max(1, min(len(hidden_holes), os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="photo3d-inpaint")
    colours: list[Future] = []
    try:
        if options.method == "lama":
            for colour in _fill_colour_network(rgb, hidden_holes, options, runtime or RuntimeOptions(), cache):
                done: Future = Future()
                done.set_result(colour)
                colours.append(done)
        else:
            colours = _colour_jobs(rgb, hidden_holes, options, pool)
        fills = []
        for i, (layer, (_, hole)) in enumerate(zip(layers, hidden_holes, strict=True)):
            if progress is not None:
                progress.check()
            extent = layer.mask | hole
            layer_disparity = _layer_disparity(disparity, layer.mask, extent)
            layer_depth = np.where(extent, 1.0 / np.maximum(layer_disparity, 1e-9), 0.0).astype(np.float32)
            layer_rgb = _layer_colour(rgb, hole, wait_result(colours[i], progress))
            fill = LayerFill(extent=extent, hole=hole, rgb=layer_rgb, depth=layer_depth)
            if i == 0 or touches_frame(extent):
                fill = add_border(fill, border, backdrop=i == 0)
            fills.append(fill)
            if progress is not None:
                progress.update((i + 1) / len(layers), f"layer {i + 1}/{len(layers)}")
            if on_fill is not None:
                on_fill(i, fill)
        return fills
    finally:
        for future in colours:
            future.cancel()
        pool.shutdown(wait=True)  # a running fill finishes (one layer at most); nothing outlives the call

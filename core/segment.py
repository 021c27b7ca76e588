"""Segment the photo into object-like regions (stage 3) and turn them into a clean label map.

Two sources of regions: Segment Anything (a ``core.models`` segmentation backend, e.g. transformers
``SamModel``, prompted with a regular point grid and our own NMS, because transformers' mask-generation
helpers need torchvision; or an official checkpoint through segment-anything's own generator), or a
weights-free fallback (SLIC superpixels on colour + inverse depth, merged across weak edges but never
across depth steps). Both end in the same clean-up: every pixel labelled, labels 0..K-1 numbered in raster
order of their first pixel, each label one 4-connected region of at least ``min_region_fraction`` of the
image (smaller fragments join the neighbour they share the longest border with).
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import label as connected_label
from skimage.segmentation import slic

from .errors import InputError
from .models import (
    SEGMENTATION_WITHOUT_WEIGHTS,
    AutomaticSegmentationBackend,
    ModelCache,
    Runtime,
    SegmentationBackend,
    backend_for,
)
from .options import RuntimeOptions, SegmentOptions
from .progress import Progress, null_progress

T = TypeVar("T")

FALLBACK_MODELS = SEGMENTATION_WITHOUT_WEIGHTS

MAX_REGIONS_PER_SUPERPIXEL = 8
"""Above this many pieces per superpixel after the depth cut, the depth is noise: crumbs are swept first."""


def segment_image(
    rgb: np.ndarray,
    depth: np.ndarray,
    options: SegmentOptions,
    runtime: RuntimeOptions,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> np.ndarray:
    """Label map (h, w) int32 of object-like regions, from a segmentation backend or the superpixel fallback."""
    progress = progress or null_progress()
    _check_inputs(rgb, depth)
    if options.model.strip().lower() in FALLBACK_MODELS:
        progress.update(0.05, "superpixels")
        labels = superpixel_labels(rgb, depth, options.superpixels, check=progress.check)
        progress.update(0.9, "cleaning regions")
        labels = clean_labels(labels, options.min_region_fraction)
    else:
        masks, scores = sam_masks(rgb, options, runtime, progress, cache)
        progress.update(0.95, f"painting {len(masks)} masks")
        labels = masks_to_labels(masks, scores, options.min_region_fraction)
    progress.update(1.0, f"{int(labels.max()) + 1} regions")
    return labels


def _check_inputs(rgb: np.ndarray, depth: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"segmentation expects an (h, w, 3) RGB image, got shape {rgb.shape}")
    if depth.shape != rgb.shape[:2]:
        raise InputError(f"depth shape {depth.shape} does not match the image {rgb.shape[:2]}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise InputError(f"image too small to segment: {rgb.shape[1]}x{rgb.shape[0]}")


# --------------------------------------------------------------------------------------------------
# Clean-up shared by both paths


def region_adjacency(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(a, b)`` (a < b) of 4-adjacent labels and the number of pixel edges they share."""
    n = int(labels.max()) + 1
    first = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    second = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    differ = first != second
    first, second = first[differ].astype(np.int64), second[differ].astype(np.int64)
    keys = np.minimum(first, second) * n + np.maximum(first, second)
    unique, counts = np.unique(keys, return_counts=True)
    return unique // n, unique % n, counts


def clean_labels(labels: np.ndarray, min_region_fraction: float) -> np.ndarray:
    """Contiguous int32 labels, each one 4-connected region no smaller than the minimum area.

    Labels are split into 4-connected components; components under ``min_region_fraction * h * w``
    pixels join the neighbour they share the longest border with, repeated until none is left (each round
    removes at least one component, so it ends). Labels are numbered in raster order of their first pixel.
    """
    h, w = labels.shape
    # background=-1 never matches (labels are non-negative after the shift), so every pixel is labelled.
    shifted = labels.astype(np.int64) - int(labels.min())
    comps = connected_label(shifted, background=-1, connectivity=1).astype(np.int64) - 1
    min_pixels = max(1, math.ceil(min_region_fraction * h * w))
    while True:
        n = int(comps.max()) + 1
        sizes = np.bincount(comps.ravel(), minlength=n)
        small = sizes < min_pixels
        if n <= 1 or not small.any():
            break
        a, b, border = region_adjacency(comps)
        src = np.concatenate([a, b])
        dst = np.concatenate([b, a])
        border = np.concatenate([border, border])
        pick = small[src]
        src, dst, border = src[pick], dst[pick], border[pick]
        # Per small component, the last entry after sorting is its longest border (ties: larger neighbour).
        order = np.lexsort((sizes[dst], border, src))
        src, dst = src[order], dst[order]
        last = np.r_[src[1:] != src[:-1], True]
        graph = coo_matrix((np.ones(int(last.sum())), (src[last], dst[last])), shape=(n, n))
        # Connected components of the "joins" graph resolve chains and mutual picks (a->b, b->a) at once;
        # their ids follow the smallest member, which keeps raster order.
        _, group = connected_components(graph, directed=False)
        comps = group[comps]
    return comps.astype(np.int32)


def masks_to_labels(masks: np.ndarray, scores: np.ndarray, min_region_fraction: float) -> np.ndarray:
    """Paint masks largest first (small objects stay on top), then clean up into a label map.

    Pixels no mask covers become regions of their own (one per connected component). With no masks at
    all the result is a single label.
    """
    if masks.ndim != 3:
        raise InputError(f"masks must be (M, h, w), got shape {masks.shape}")
    count, h, w = masks.shape
    painted = np.zeros((h, w), np.int32)
    if count:
        areas = masks.reshape(count, -1).sum(axis=1)
        # Primary key: area descending; on equal area the better-scored mask is painted last, on top.
        order = np.lexsort((np.asarray(scores, np.float64), -areas))
        for value, index in enumerate(order, start=1):
            painted[masks[index]] = value
    return clean_labels(painted, min_region_fraction)


# --------------------------------------------------------------------------------------------------
# Weights-free fallback


def superpixel_labels(
    rgb: np.ndarray,
    depth: np.ndarray,
    n_segments: int = 400,
    *,
    compactness: float = 10.0,
    depth_weight: float = 60.0,
    colour_threshold: float = 12.0,
    depth_step: float = 0.1,
    step_gap: int = 2,
    max_step_fraction: float = 0.25,
    small_region_superpixels: float = 4.0,
    sliver_superpixels: float = 0.5,
    crumb_superpixels: float = 0.05,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Object-like regions from colour + depth: SLIC superpixels, then a region-adjacency merge.

    1. Log depth is sharpened (blurred steps become one-pixel steps at mid depth, see
       ``sharpen_depth_edges``).
    2. SLIC runs on Lab colour stacked with inverse depth normalised to 0..``depth_weight`` (Lab units), so
       superpixel edges snap to depth edges; superpixels still spanning more than ``depth_step`` of log
       depth are cut at their mid depth.
    3. Adjacent regions merge, most similar first, while their mean Lab colours are closer than
       ``colour_threshold`` (closer still for regions under ``small_region_superpixels`` superpixels). A
       boundary where more than ``max_step_fraction`` of the pixel pairs see a log-depth step above
       ``depth_step`` (measured ``step_gap`` pixels either side) is never merged, however similar the
       colours.
    4. Slivers under ``sliver_superpixels`` superpixels join the neighbour closest in depth.

    Returns int32 labels 0..K-1 (not yet size-cleaned: see ``clean_labels``). ``check`` is called between
    steps and every few hundred merges, so a cancel lands within about the time SLIC takes.
    """
    check = check or (lambda: None)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32).clip(0.0, 1.0)
    depth = np.nan_to_num(np.asarray(depth, np.float32), nan=1.0, posinf=1e6, neginf=1e-6)
    depth = np.maximum(depth, 1e-6)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    # Everything below sees depth edges sharpened to one-pixel steps at mid depth: network depth blurs
    # edges over a few pixels, and superpixels of that band would belong to neither side.
    log_depth = sharpen_depth_edges(np.log(depth), depth_step)
    inverse = np.exp(-log_depth)
    span = float(inverse.max() - inverse.min())
    inverse = (inverse - inverse.min()) / span if span > 0 else np.zeros_like(inverse)
    features = np.dstack([lab, inverse * depth_weight]).astype(np.float32)
    superpixel_size = depth.size / max(1, int(n_segments))
    superpixels = run_cancellable(lambda: tiled_slic(features, max(1, int(n_segments)), compactness), check)
    superpixels = _split_at_depth_steps(superpixels, log_depth, depth_step)
    if superpixels.max() + 1 > MAX_REGIONS_PER_SUPERPIXEL * n_segments:
        # Noisy depth shatters the cut into tens of thousands of crumbs that would swamp the region merge:
        # crumbs join their longest-border neighbour at once, vectorised. Clean depth never gets here, so
        # its small pieces still go through the depth-aware merge below.
        crumb_fraction = crumb_superpixels * superpixel_size / depth.size
        superpixels = clean_labels(superpixels, crumb_fraction).astype(np.int64)
    return _merge_regions(
        superpixels,
        lab,
        log_depth,
        colour_threshold,
        depth_step,
        step_gap,
        max_step_fraction,
        reference_size=small_region_superpixels * superpixel_size,
        sliver_size=sliver_superpixels * superpixel_size,
        check=check,
    )


SLIC_TILES = 2
"""SLIC runs on this many bands of the image at once (one call each on its own thread: the call releases the
GIL). A fixed count, not the machine's cores, so a photo gives the same package everywhere."""
SLIC_MIN_TILE_STEPS = 4
"""A band at least this many superpixel widths across; smaller images run whole."""


def tiled_slic(features: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels (int labels from 0) of ``features`` (h, w, c), cut into ``SLIC_TILES`` bands across its
    long side that run in parallel, each with its share of ``n_segments``; ``compactness`` is in the features'
    own units.

    SLIC only looks two superpixel widths around a centre, so a band gives the superpixels a whole run gives
    except along the cut, where they end at the band's edge; the region merge that follows joins them across
    it where the colour and depth agree, as it joins any two superpixels.
    """
    h, w = features.shape[:2]
    step = math.sqrt(h * w / n_segments)
    long_side = max(h, w)
    tiles = SLIC_TILES if long_side >= SLIC_TILES * SLIC_MIN_TILE_STEPS * step else 1
    cuts = [round(long_side * k / tiles) for k in range(tiles + 1)]
    spans = [slice(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    bands = [(span, slice(None)) if h >= w else (slice(None), span) for span in spans]

    def one(band: tuple[slice, slice]) -> np.ndarray:
        part = features[band]
        share = max(1, round(n_segments * part.shape[0] * part.shape[1] / (h * w)))
        # slic rescales its input to 0..1 by the input's own range: compactness scaled the same way weighs
        # space against colour as in the features' units, so every band (and a whole run) agrees.
        feature_range = max(float(part.max() - part.min()), 1e-6)
        return slic(
            part,
            n_segments=share,
            compactness=compactness / feature_range,
            max_num_iter=10,
            convert2lab=False,
            channel_axis=-1,
            start_label=0,
            enforce_connectivity=True,
        )

    if tiles == 1:
        return one(bands[0])
    with ThreadPoolExecutor(max_workers=tiles, thread_name_prefix="photo3d-slic") as pool:
        parts = list(pool.map(one, bands))
    labels = np.empty((h, w), np.int64)
    offset = 0
    for band, part in zip(bands, parts, strict=True):
        labels[band] = part + offset
        offset += int(part.max()) + 1
    return labels


def run_cancellable(work: Callable[[], T], check: Callable[[], None], poll_s: float = 0.05) -> T:
    """Run ``work`` on a helper thread and call ``check`` every ``poll_s`` seconds meanwhile.

    SLIC takes over a second at 1280 px as one call that releases the GIL, so a cancel (``check`` raising)
    lands within ``poll_s`` instead of after it; the abandoned call finishes on its daemon thread and its
    result is dropped.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="photo3d-cancellable", daemon=True)
    thread.start()
    while True:
        thread.join(poll_s)
        check()
        if not thread.is_alive():
            break
    if failure:
        raise failure[0]
    return result[0]


def sharpen_depth_edges(log_depth: np.ndarray, depth_step: float, radius: int = 2, iterations: int = 3) -> np.ndarray:
    """Toggle mapping: where the local range exceeds ``depth_step``, snap to the nearer of local min/max.

    A blurred step becomes a sharp one at its mid level; smooth slopes and flat areas (local range under
    the step) are left alone. Each iteration sharpens a blur up to about ``radius`` pixels wide.
    """
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    sharp = np.ascontiguousarray(log_depth, dtype=np.float32)
    for _ in range(iterations):
        high = cv2.dilate(sharp, kernel)
        low = cv2.erode(sharp, kernel)
        band = high - low > depth_step
        if not band.any():
            break
        snapped = np.where(high - sharp < sharp - low, high, low)
        sharp = np.where(band, snapped, sharp)
    return sharp


def _split_at_depth_steps(labels: np.ndarray, log_depth: np.ndarray, depth_step: float) -> np.ndarray:
    """Cut regions spanning more than ``depth_step`` of log depth at their mid depth, then relabel.

    SLIC puts the blurred band of a depth edge into superpixels of its own or, enforcing connectivity,
    glues fragments across the edge; cutting at mid depth puts every band pixel on the side it is closer to.
    """
    labels = connected_label(labels + 1, background=0, connectivity=1) - 1
    for _ in range(3):  # a region spanning several depth levels needs more than one cut
        n = int(labels.max()) + 1
        low = np.full(n, np.inf, np.float32)
        high = np.full(n, -np.inf, np.float32)
        np.minimum.at(low, labels.ravel(), log_depth.ravel())
        np.maximum.at(high, labels.ravel(), log_depth.ravel())
        wide = high - low > depth_step
        if not wide.any():
            break
        middle = (low + high) / 2
        far_side = wide[labels] & (log_depth > middle[labels])
        labels = connected_label(labels * 2 + far_side + 1, background=0, connectivity=1) - 1
    return labels.astype(np.int64)


def _boundary_steps(
    labels: np.ndarray, log_depth: np.ndarray, depth_step: float, gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent pairs (a < b), their shared border length, and how many border pairs cross a depth step."""
    n = int(labels.max()) + 1
    h, w = labels.shape
    padded = np.pad(log_depth, gap, mode="edge")
    # Across a vertical edge between x and x+1, compare x-gap with x+1+gap (same for horizontal edges).
    step_x = np.abs(padded[gap : gap + h, 1 + 2 * gap : w + 2 * gap] - padded[gap : gap + h, 0 : w - 1])
    step_y = np.abs(padded[1 + 2 * gap : h + 2 * gap, gap : gap + w] - padded[0 : h - 1, gap : gap + w])
    first = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    second = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    steps = np.concatenate([step_x.ravel(), step_y.ravel()]) > depth_step
    differ = first != second
    first, second, steps = first[differ], second[differ], steps[differ]
    keys = np.minimum(first, second) * n + np.maximum(first, second)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    step_counts = np.bincount(inverse, weights=steps, minlength=len(unique))
    return unique // n, unique % n, counts, step_counts


class _RegionGraph:
    """Regions with summed features and shared borders; merging sums both, so stats stay exact.

    Sizes and sums are Python floats: float64 as in numpy, without numpy's per-call cost on four-element
    rows (the merge loop below calls ``mean`` tens of thousands of times).
    """

    def __init__(self, labels: np.ndarray, features: np.ndarray, pairs: tuple[np.ndarray, ...]) -> None:
        n = int(labels.max()) + 1
        flat = labels.ravel()
        self.sizes: list[float] = np.bincount(flat, minlength=n).astype(np.float64).tolist()
        channels = features.reshape(flat.size, -1)
        sums = np.stack([np.bincount(flat, channels[:, c], minlength=n) for c in range(channels.shape[1])], axis=1)
        self.sums: list[list[float]] = sums.tolist()
        # neighbours[i][j] = [border pixel pairs, pairs crossing a depth step]
        self.neighbours: list[dict[int, list[float]]] = [{} for _ in range(n)]
        for i, j, border, step in zip(*(p.tolist() for p in pairs), strict=True):
            self.neighbours[i][j] = [border, step]
            self.neighbours[j][i] = [border, step]
        self.version = [0] * n
        self.parent = list(range(n))

    def mean(self, i: int) -> list[float]:
        size = self.sizes[i]
        return [value / size for value in self.sums[i]]

    def mean_depth(self, i: int) -> float:
        return self.sums[i][3] / self.sizes[i]

    def merge(self, i: int, j: int) -> None:
        """Merge region ``j`` into region ``i``."""
        self.parent[j] = i
        self.sizes[i] += self.sizes[j]
        self.sums[i] = [a + b for a, b in zip(self.sums[i], self.sums[j], strict=True)]
        self.neighbours[i].pop(j, None)
        for k, (border, step) in self.neighbours[j].items():
            if k == i:
                continue
            del self.neighbours[k][j]
            entry = self.neighbours[i].setdefault(k, [0.0, 0.0])
            entry[0] += border
            entry[1] += step
            self.neighbours[k][i] = entry
        self.neighbours[j] = {}
        self.sizes[j] = 0.0
        self.version[i] += 1
        self.version[j] += 1

    def relabel(self, labels: np.ndarray) -> np.ndarray:
        roots = np.array(self.parent)
        while True:  # pointer jumping until every region points at a live root
            nxt = roots[roots]
            if np.array_equal(nxt, roots):
                break
            roots = nxt
        _, compact = np.unique(roots, return_inverse=True)
        return compact.astype(np.int32)[labels]


def _merge_regions(
    labels: np.ndarray,
    lab: np.ndarray,
    log_depth: np.ndarray,
    colour_threshold: float,
    depth_step: float,
    step_gap: int,
    max_step_fraction: float,
    reference_size: float,
    sliver_size: float,
    check: Callable[[], None],
) -> np.ndarray:
    """Greedy hierarchical merge of adjacent regions by mean colour, blocked at depth steps; then slivers.

    Slivers (regions under ``sliver_size`` px left by the first pass, mostly pieces of the blurred band
    along a depth edge, where the step test cannot tell the sides apart) join the neighbour closest in
    mean log depth.
    """
    pairs = _boundary_steps(labels, log_depth, depth_step, step_gap)
    graph = _RegionGraph(labels, np.dstack([lab, log_depth]), pairs)
    sizes, neighbours, version = graph.sizes, graph.neighbours, graph.version

    def cost(i: int, j: int) -> float:
        (l_i, a_i, b_i, _), (l_j, a_j, b_j, _) = graph.mean(i), graph.mean(j)
        dl, da, db = l_i - l_j, a_i - a_j, b_i - b_j
        # Small regions (texture specks, fragments) merge more easily, so the result is tens of
        # object-like regions rather than hundreds of tiles.
        shrink = min(1.0, math.sqrt(min(sizes[i], sizes[j]) / reference_size))
        return math.sqrt(dl * dl + da * da + db * db) * shrink

    heap: list[tuple[float, int, int, int, int]] = []

    def blocked(i: int, j: int) -> bool:
        border, step = neighbours[i][j]
        return step > max_step_fraction * border

    def push(i: int, j: int) -> None:
        if blocked(i, j):
            return  # a depth step: never merged, however similar the colours
        c = cost(i, j)
        if c < colour_threshold:
            heapq.heappush(heap, (c, i, j, version[i], version[j]))

    for i, j in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        push(i, j)
    check()
    popped = 0
    while heap:
        popped += 1
        if popped % 500 == 0:
            check()
        _, i, j, vi, vj = heapq.heappop(heap)
        if vi != version[i] or vj != version[j]:
            continue  # stale: one side changed since this entry was pushed
        graph.merge(i, j)
        for k in neighbours[i]:
            push(i, k)

    slivers = [(sizes[i], i, version[i]) for i in range(len(sizes)) if 0 < sizes[i] < sliver_size]
    heapq.heapify(slivers)
    while slivers:
        size, i, vi = heapq.heappop(slivers)
        if vi != version[i] or not neighbours[i]:
            continue
        depth_i = graph.mean_depth(i)
        # Prefer a neighbour across no depth step; among those (or all, if every side is a step) the
        # closest in depth.
        j = min(
            neighbours[i],
            key=lambda k: (blocked(i, k), abs(graph.mean_depth(k) - depth_i)),
        )
        graph.merge(j, i)
        if sizes[j] < sliver_size:
            heapq.heappush(slivers, (sizes[j], j, version[j]))
    return graph.relabel(labels)


# --------------------------------------------------------------------------------------------------
# Network masks (Segment Anything through a core.models segmentation backend)


def point_grid(points_per_side: int, width: float, height: float) -> np.ndarray:
    """``points_per_side``^2 points ``(x, y)`` at cell centres of a regular grid over ``width x height``."""
    steps = (np.arange(points_per_side, dtype=np.float64) + 0.5) / points_per_side
    xs, ys = np.meshgrid(steps * width, steps * height)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def nms_masks(masks: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of masks kept by greedy NMS on mask IoU (best score first); empty masks are dropped.

    A mask is suppressed when its IoU with an already kept mask exceeds ``iou_threshold``. Boxes and the
    area ratio (an upper bound on IoU) rule most pairs out before any pixels are compared.
    """
    count = len(masks)
    if count == 0:
        return np.zeros(0, np.int64)
    areas = masks.reshape(count, -1).sum(axis=1).astype(np.float64)
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    boxes = np.stack(
        [
            rows.argmax(axis=1),
            cols.argmax(axis=1),
            rows.shape[1] - rows[:, ::-1].argmax(axis=1),
            cols.shape[1] - cols[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    )
    kept: list[int] = []
    for index in np.argsort(-np.asarray(scores, np.float64), kind="stable").tolist():
        if areas[index] == 0:
            continue
        if kept:
            others = np.array(kept)
            top = np.maximum(boxes[others, 0], boxes[index, 0])
            left = np.maximum(boxes[others, 1], boxes[index, 1])
            bottom = np.minimum(boxes[others, 2], boxes[index, 2])
            right = np.minimum(boxes[others, 3], boxes[index, 3])
            ratio = np.minimum(areas[others], areas[index]) / np.maximum(areas[others], areas[index])
            candidates = np.nonzero((top < bottom) & (left < right) & (ratio > iou_threshold))[0]
            suppressed = False
            for c in candidates.tolist():
                other = kept[c]
                y0, x0, y1, x1 = top[c], left[c], bottom[c], right[c]
                inter = np.count_nonzero(masks[index, y0:y1, x0:x1] & masks[other, y0:y1, x0:x1])
                if inter / (areas[index] + areas[other] - inter) > iou_threshold:
                    suppressed = True
                    break
            if suppressed:
                continue
        kept.append(index)
    return np.array(kept, np.int64)


def sam_masks(
    rgb: np.ndarray,
    options: SegmentOptions,
    runtime: RuntimeOptions,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Automatic masks from the segmentation backend for ``options.model``:
    ``(masks (M, h, w) bool, scores (M,) predicted IoU)``, best score first from a point-promptable backend.

    A point-promptable backend gets a regular grid of single-point prompts, in batches, and the masks are
    de-duplicated with ``nms_masks`` as they come; a backend with its own generator runs that instead.
    """
    progress = progress or null_progress()
    h, w = rgb.shape[:2]
    progress.update(0.0, "loading segmentation model")
    resolved = Runtime.from_options(runtime)
    backend = backend_for("segmentation", options.model, resolved, cache)
    if isinstance(backend, AutomaticSegmentationBackend):
        progress.update(0.05, "segment-anything masks")
        masks, scores = backend.automatic_masks(rgb, options, options.grid_points_per_side(resolved.device))
        progress.update(0.95, f"{len(masks)} masks")
        return masks, scores
    prompter: SegmentationBackend = backend
    progress.update(0.05, "image embeddings")
    image = prompter.embed(rgb)
    frame_w, frame_h = image.frame_size
    points = point_grid(options.grid_points_per_side(resolved.device), frame_w, frame_h)
    batch = max(1, int(options.points_per_batch))
    batches = math.ceil(len(points) / batch)

    kept_masks = np.zeros((0, h, w), bool)
    kept_scores = np.zeros(0, np.float32)
    for number, start in enumerate(range(0, len(points), batch)):
        progress.update(0.1 + 0.85 * number / batches, f"masks: batch {number + 1}/{batches}")
        new_masks, new_scores = image.masks(
            points[start : start + batch], options.pred_iou_threshold, options.stability_threshold
        )
        if len(new_masks):
            # NMS as we go keeps memory to the distinct masks; the order (best first) is global.
            all_masks = np.concatenate([kept_masks, np.asarray(new_masks, bool)])
            all_scores = np.concatenate([kept_scores, np.asarray(new_scores, np.float32)])
            keep = nms_masks(all_masks, all_scores, options.nms_iou_threshold)
            kept_masks, kept_scores = all_masks[keep], all_scores[keep]
    progress.update(0.95, f"{len(kept_masks)} masks")
    return kept_masks, kept_scores

"""Group masks into depth layers (stage 5).

Per mask: median and MAD of disparity (robust to boundary pixels). Two masks may share a layer when
their distributions overlap (medians within ``overlap_factor`` x the sum of their robust spreads) or
their gap is under ``min_gap`` of the scene's disparity range (so flat masks at nearly the same depth,
whose spreads are tiny, still join). Complete linkage keeps every pair of masks
in a layer compatible, not just a chain of neighbours. If more clusters remain than ``max_layers``, the
dendrogram is cut at ``max_layers``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from .options import LayerOptions

MAD_TO_SIGMA = 1.4826


@dataclass
class Layer:
    """One depth layer at the working resolution, ordered back to front by ``sort_key``."""

    index: int
    mask: np.ndarray
    """(h, w) bool: pixels of the photo this layer shows."""
    labels: list[int]
    median_depth: float
    sort_key: float
    """Median disparity; ascending = back to front."""


def mask_statistics(disparity: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, robust sigma (1.4826 MAD) and pixel count of disparity per label."""
    flat_labels = labels.ravel()
    # The same stable order either way; numpy radix-sorts 16-bit keys, several times faster than int32 ones.
    small = flat_labels.size and flat_labels.min() >= 0 and flat_labels.max() < 1 << 16
    order = np.argsort(flat_labels.astype(np.uint16) if small else flat_labels, kind="stable")
    values = disparity.ravel()[order]
    count = int(flat_labels.max()) + 1
    bounds = np.searchsorted(flat_labels[order], np.arange(count + 1))
    medians = np.zeros(count)
    sigmas = np.zeros(count)
    sizes = np.diff(bounds)
    for k in range(count):
        chunk = values[bounds[k] : bounds[k + 1]]
        if chunk.size:
            medians[k] = np.median(chunk)
            sigmas[k] = MAD_TO_SIGMA * np.median(np.abs(chunk - medians[k]))
    return medians, sigmas, sizes


def cluster_masks(medians: np.ndarray, sigmas: np.ndarray, disparity_range: float, options: LayerOptions) -> np.ndarray:
    """Cluster ids (0..L-1, arbitrary order) per mask by complete-linkage agglomeration."""
    count = len(medians)
    if count == 1:
        return np.zeros(1, dtype=np.int64)
    gap = np.abs(medians[:, None] - medians[None, :])
    # Floor the spread so perfectly flat masks (synthetic or ground-truth depth) still compare sanely.
    floor = 1e-3 * max(disparity_range, 1e-9)
    spread = options.overlap_factor * (np.maximum(sigmas[:, None], floor) + np.maximum(sigmas[None, :], floor))
    min_gap = max(options.min_gap * disparity_range, 1e-12)
    # Normalised distance: <= 1 exactly when the two masks may share a layer.
    distance = gap / np.maximum(spread, min_gap)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="complete")
    clusters = fcluster(tree, t=1.0, criterion="distance")
    if clusters.max() > options.max_layers:
        clusters = fcluster(tree, t=options.max_layers, criterion="maxclust")
    return clusters - 1


def build_layers(depth: np.ndarray, labels: np.ndarray, options: LayerOptions) -> list[Layer]:
    """Split the label map into depth layers, back to front (index 0 is the farthest)."""
    disparity = 1.0 / np.maximum(depth.astype(np.float64), 1e-9)
    medians, sigmas, sizes = mask_statistics(disparity, labels)
    present = sizes > 0
    lo, hi = np.percentile(disparity, [2, 98])
    clusters = np.full(len(medians), -1)
    clusters[present] = cluster_masks(medians[present], sigmas[present], float(hi - lo), options)
    layers = []
    for cluster in np.unique(clusters[present]):
        members = np.flatnonzero(clusters == cluster)
        member = np.zeros(len(clusters), dtype=bool)
        member[members] = True
        mask = member[labels]  # np.isin(labels, members), as a table lookup
        median = np.median(disparity[mask])
        layers.append(
            Layer(
                index=0,
                mask=mask,
                labels=[int(m) for m in members],
                median_depth=float(1.0 / median),
                sort_key=float(median),
            )
        )
    layers.sort(key=lambda layer: layer.sort_key)
    for index, layer in enumerate(layers):
        layer.index = index
    return layers

import numpy as np

from core.layers import build_layers, cluster_masks, mask_statistics
from core.options import LayerOptions


def _scene():
    labels = np.zeros((60, 80), np.int32)
    labels[10:30, 10:30] = 1
    labels[35:50, 40:70] = 2
    labels[0:5, :] = 3
    depth = np.full((60, 80), 10.0, np.float32)
    depth[labels == 1] = 2.0
    depth[labels == 2] = 2.05
    depth[labels == 3] = 9.8
    return labels, depth


def test_masks_at_similar_depth_share_a_layer_back_to_front():
    labels, depth = _scene()
    # A coarse policy (the default is finer: min_gap 0.02 keeps the 2.0 m and 2.05 m masks apart).
    layers = build_layers(depth, labels, LayerOptions(overlap_factor=2.0, min_gap=0.08))
    assert [sorted(layer.labels) for layer in layers] == [[0, 3], [1, 2]]
    assert [layer.index for layer in layers] == [0, 1]
    assert layers[0].median_depth == 10.0
    assert layers[1].mask.sum() == 400 + 450
    # Layers partition the image.
    assert (sum(layer.mask.astype(int) for layer in layers) == 1).all()


def test_layer_cap_merges_closest():
    labels, depth = _scene()
    depth[labels == 2] = 4.0
    assert len(build_layers(depth, labels, LayerOptions(max_layers=4))) == 3
    capped = build_layers(depth, labels, LayerOptions(max_layers=2))
    assert len(capped) == 2
    # In disparity, 1/4 is nearer 1/10 than 1/2: the depth-4 mask joins the far layer.
    assert sorted(capped[0].labels) == [0, 2, 3]
    assert capped[1].labels == [1]


def test_min_gap_zero_separates_every_distinct_depth():
    labels, depth = _scene()
    layers = build_layers(depth, labels, LayerOptions(min_gap=0.0, max_layers=8))
    assert len(layers) == 4


def test_complete_linkage_blocks_chains():
    # Medians 0, 1, 2 with gap threshold 1.5: single linkage would chain all three; complete linkage
    # keeps the ends apart.
    medians = np.array([0.0, 1.0, 2.0])
    sigmas = np.zeros(3)
    clusters = cluster_masks(medians, sigmas, 10.0, LayerOptions(min_gap=0.15, overlap_factor=0.0))
    assert clusters[0] != clusters[2]
    assert len(set(clusters)) == 2


def test_overlapping_distributions_join():
    medians = np.array([1.0, 1.5, 5.0])
    sigmas = np.array([0.3, 0.3, 0.1])
    clusters = cluster_masks(medians, sigmas, 10.0, LayerOptions(min_gap=0.01, overlap_factor=1.0))
    assert clusters[0] == clusters[1] != clusters[2]


def test_mask_statistics_robust():
    labels = np.array([[0, 0, 0, 0, 0]])
    values = np.array([[1.0, 1.0, 1.0, 1.0, 100.0]])
    medians, sigmas, sizes = mask_statistics(values, labels)
    assert medians[0] == 1.0 and sigmas[0] == 0.0 and sizes[0] == 5

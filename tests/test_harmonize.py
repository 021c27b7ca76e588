import cv2
import numpy as np

from core.harmonize import harmonize_depth, label_medians
from core.options import HarmonizeOptions


def _blurred_square(h=120, w=160, sigma=2.0):
    yy, xx = np.mgrid[0:h, 0:w]
    labels = ((xx >= 50) & (xx < 110) & (yy >= 30) & (yy < 90)).astype(np.int32)
    true = np.where(labels == 1, 2.0, 6.0).astype(np.float32)
    # Depth networks bleed across edges: blur in disparity, as they would.
    depth = 1.0 / cv2.GaussianBlur(1.0 / true, (0, 0), sigma)
    return labels, true, depth.astype(np.float32)


def test_edges_snap_to_mask_boundaries():
    labels, true, depth = _blurred_square()
    out, info = harmonize_depth(depth, labels, HarmonizeOptions())
    before = np.abs(depth - true)
    after = np.abs(out - true)
    # The bleed band is removed: the worst pixel improves many times over, and the mean with it.
    assert before.max() > 1.5
    assert after.max() < 0.15 * before.max()
    assert after.mean() < 0.25 * before.mean()
    # One pixel either side of the edge now sits on its own side's depth.
    assert abs(out[60, 49] - 6.0) < 0.5 and abs(out[60, 50] - 2.0) < 0.2


def test_converges_within_30_iterations():
    labels, _, depth = _blurred_square(240, 320)
    options = HarmonizeOptions(iterations=30, tolerance=1e-3)
    _, info = harmonize_depth(depth, labels, options)
    assert info.iterations <= 30
    assert info.relative_residual < 1e-3


def test_single_mask_and_disabled_are_identity():
    depth = np.random.default_rng(0).uniform(1, 3, (40, 50)).astype(np.float32)
    labels = np.zeros((40, 50), np.int32)
    out, info = harmonize_depth(depth, labels, HarmonizeOptions())
    assert np.array_equal(out, depth) and info.iterations == 0
    labels[:, 25:] = 1
    out, _ = harmonize_depth(depth, labels, HarmonizeOptions(enabled=False))
    assert np.array_equal(out, depth)


def test_flat_masks_are_kept_and_depth_positive():
    labels, true, _ = _blurred_square()
    out, _ = harmonize_depth(true, labels, HarmonizeOptions())
    assert np.allclose(out, true, rtol=1e-3)
    assert (out > 0).all()


def test_label_medians():
    labels = np.array([[0, 0, 1], [1, 1, 2]])
    values = np.array([[1.0, 3.0, 5.0], [6.0, 7.0, 9.0]])
    assert np.allclose(label_medians(values, labels), [2.0, 6.0, 9.0])

import cv2
import numpy as np

from core.harmonize import harmonize_depth, label_medians, label_planes
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


def _slanted_wall(h=120, w=160):
    """A wall whose disparity rises left to right and top to bottom, cut into irregular segments (as
    superpixels cut it), with a square in front; and that depth as a network gives it, blurred across the
    square's edges (the wall itself stays exact, so any step on it is harmonize's)."""
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = 0.15 + 0.25 * xx / w + 0.1 * yy / h
    rng = np.random.default_rng(3)
    # Irregular cells: nearest of 12 random seeds, like superpixels of a textured wall.
    seeds = rng.uniform([0, 0], [h, w], (12, 2))
    labels = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2, axis=-1)
    square = (xx >= 60) & (xx < 100) & (yy >= 40) & (yy < 80)
    labels = np.where(square, 12, labels).astype(np.int32)
    disparity = np.where(square, 0.6, ramp)
    blurred = ramp + cv2.GaussianBlur(np.where(square, 0.6 - ramp, 0.0), (0, 0), 2.0)
    return labels, square, disparity, (1.0 / blurred).astype(np.float32)


def test_a_slanted_plane_cut_into_segments_stays_one_plane():
    labels, square, disparity, depth = _slanted_wall()
    out, _ = harmonize_depth(depth, labels, HarmonizeOptions())
    # The wall away from the square (8 px) and the image's border (10 px; the smoothness term's free border
    # bends any slope there a little, segments or not).
    wall = ~cv2.dilate(square.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    wall[:10], wall[-10:], wall[:, :10], wall[:, -10:] = False, False, False, False
    error = np.abs(1.0 / out - disparity)[wall]
    # The wall spans 0.35 in disparity. Holding each segment pair's median gap made steps of up to 0.045
    # (mean 0.0043) where segments meet; the planes' gap at the boundary keeps it one plane.
    assert error.max() < 0.01 and error.mean() < 0.001, (error.max(), error.mean())
    # And the square's own jump is kept, snapped to its edge.
    assert abs(1.0 / out[60, 59] - disparity[60, 59]) < 0.01 and abs(1.0 / out[60, 60] - 0.6) < 0.01


def test_label_planes_fit_a_plane_and_fall_back_to_the_median():
    yy, xx = np.mgrid[0:40, 0:50]
    values = 2.0 * (xx + 0.5) / 50 - 1.0 * (yy + 0.5) / 40 + 0.5
    labels = np.zeros((40, 50), np.int32)
    labels[:, 46:] = 1  # four columns wide: enough for a plane (the fit samples every second pixel)
    labels[0, 0] = 2  # one pixel: its median
    planes = label_planes(values, labels, np.ones((40, 50), bool))
    assert np.allclose(planes[0], [2.0, -1.0, 0.5], atol=1e-9)
    assert np.allclose(planes[1], [2.0, -1.0, 0.5], atol=1e-6)
    assert np.allclose(planes[2], [0.0, 0.0, values[0, 0]])

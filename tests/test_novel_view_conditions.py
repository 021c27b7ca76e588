"""The novel-view benchmark's depth conditions and edge measures on synthetic scenes (no Blender)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.depth import disparity_to_depth
from scripts.novel_view import cli, conditions, metrics, pairs


def step(width: int = 100, height: int = 40, at: int = 50, low: float = 10.0, high: float = 30.0) -> np.ndarray:
    """Disparity ``low`` left of column ``at`` and ``high`` from it on."""
    d = np.full((height, width), low)
    d[:, at:] = high
    return d


def test_depth_jumps_mark_the_first_pixel_of_each_jumping_pair():
    jumps = metrics.depth_jumps(step(at=50), threshold=1.5)
    assert jumps[:, 49].all() and jumps.sum() == 40
    assert not metrics.depth_jumps(np.linspace(0, 10, 100)[None].repeat(5, 0), threshold=1.5).any()
    nan = step()
    nan[:, 50:] = np.nan
    assert not metrics.depth_jumps(nan).any()


def test_exact_edges_score_perfectly():
    d = step()
    m = metrics.edge_measures(d, d)
    assert m["precision"] == 1.0 and m["recall"] == 1.0
    assert m["distance_to_true"] == 0.0 and m["distance_from_true"] == 0.0 and m["band_error"] == 0.0
    assert m["jumps"] == m["true_jumps"] == 40


def test_a_step_shifted_by_three_pixels():
    truth, shifted = step(at=50), step(at=53)
    m = metrics.edge_measures(shifted, truth)
    assert m["precision"] == 0.0 and m["recall"] == 0.0
    assert m["distance_to_true"] == pytest.approx(3.0) and m["distance_from_true"] == pytest.approx(3.0)
    # The band is columns 45..53 (within 4 px of column 49); the map is wrong by 20 at columns 50, 51, 52.
    assert m["band_error"] == pytest.approx(20.0 * 3 / 9)
    # One pixel off is within the 2 px tolerance.
    near = metrics.edge_measures(step(at=51), truth)
    assert near["precision"] == 1.0 and near["recall"] == 1.0 and near["distance_to_true"] == pytest.approx(1.0)


def test_extra_jumps_cost_precision_not_recall():
    truth = step(at=50)
    terraced = truth.copy()
    terraced[:, 20:] += 0.0
    terraced[:, :20] -= 5.0  # a false step at column 19, 30 px from the true one
    m = metrics.edge_measures(terraced, truth)
    assert m["recall"] == 1.0 and m["precision"] == pytest.approx(0.5)
    assert m["distance_to_true"] == pytest.approx((0.0 + 30.0) / 2)
    assert m["distance_from_true"] == 0.0


def test_blurred_step_loses_its_jump_and_missing_jumps_are_nan_or_inf():
    truth = step()
    blurred = conditions.blurred_disparity(truth, 8.0)
    m = metrics.edge_measures(blurred, truth)
    assert m["jumps"] == 0 and math.isnan(m["precision"]) and m["recall"] == 0.0
    assert m["distance_from_true"] == math.inf and m["band_error"] > 0


def test_invalid_pixels_are_not_counted():
    truth = step()
    valid = np.ones(truth.shape, bool)
    valid[:20] = False
    m = metrics.edge_measures(truth, truth, valid)
    assert m["true_jumps"] == 20 and m["jumps"] == 20


def test_worst_window_finds_the_error_blob():
    error = np.zeros((50, 80))
    error[30:35, 60:66] = 1.0
    row, col = metrics.worst_window(error, np.ones(error.shape, bool), 10)
    assert 25 <= row <= 30 and 56 <= col <= 60
    assert row + 10 >= 35 and col + 10 >= 66
    # Masked-out error does not count.
    assert metrics.worst_window(error, np.zeros(error.shape, bool), 10) == (0, 0)
    assert metrics.worst_window(error, np.ones(error.shape, bool), 500) == (0, 0)


def test_fill_disparity_takes_the_farther_side_then_the_nearest():
    d = step(width=20, height=3, at=10)
    d[:, 7:10] = np.nan  # an occlusion band left of the near object
    d[2, :] = np.nan  # a row with nothing known
    filled = conditions.fill_disparity(d)
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[0, 7:10], 10.0)  # the background, so the jump stays at column 10
    np.testing.assert_array_equal(filled[2], filled[1])


def test_relative_disparity_is_a_fixed_positive_affine_change():
    d = step(low=5.0, high=25.0)
    rel = conditions.relative_disparity(d)
    np.testing.assert_allclose(rel, 0.7 * d + 0.1 * 20.0)
    assert (rel > 0).all()
    assert conditions.parse_conditions("gt, blur4,sgbm,gt") == ["gt", "blur4", "sgbm"]
    with pytest.raises(SystemExit):
        conditions.parse_conditions("blur3")


def test_alignment_recovers_disparity_through_the_relative_policy():
    truth = step(low=12.0, high=40.0)
    truth[:, :10] = np.nan
    rel = conditions.relative_disparity(np.nan_to_num(truth, nan=12.0))
    depth = disparity_to_depth(rel, 1.0, 20.0)
    fit = conditions.fit_disparity_affine(depth, truth)
    known = np.isfinite(truth)
    np.testing.assert_allclose(fit.disparity(depth)[known], truth[known], atol=1e-3)
    # The aligned pair's camera puts a point of scene depth Z at u - (a / Z + b).
    pair = pairs.StereoPair("s", np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint8), truth, 500.0, 0.2, 3.0)
    moved = conditions.aligned_pair(pair, fit)
    z = float(depth[0, 60])
    assert moved.focal_px * moved.baseline_m / z - moved.doffs_px == pytest.approx(fit.disparity(z))
    exact = conditions.metric_alignment(pair)
    np.testing.assert_allclose(exact.disparity(pair.depth)[known], truth[known])


def test_sgbm_recovers_a_shifted_texture():
    rng = np.random.default_rng(0)
    texture = (rng.random((60, 200)) * 255).astype(np.uint8)
    left = np.repeat(texture[..., None], 3, axis=2)
    right = np.roll(left, -8, axis=1)  # every left pixel u shows at u - 8
    d = conditions.sgbm_disparity(left, right, 10.0)
    assert np.isfinite(d).all() and (d > 0).all()
    assert np.median(d[10:-10, 40:-20]) == pytest.approx(8.0, abs=0.5)


def test_conditions_table_and_margins():
    scores = {
        "layers": dict(zip(metrics.METRICS, (25.0, 0.8, 18.0, 0.5), strict=True)),
        "stretched_mesh": dict(zip(metrics.METRICS, (24.0, 0.75, 15.0, 0.4), strict=True)),
        "reference_splat_telea": dict(zip(metrics.METRICS, (26.0, 0.85, 16.0, 0.45), strict=True)),
    }
    margins = cli.condition_margins(scores)
    assert margins["vs_stretched_mesh"]["overlap_psnr"] == 1.0
    assert margins["vs_splat_telea"]["disoccluded_psnr"] == 2.0
    edges = metrics.edge_measures(step(at=53), step())
    report = {
        "pairs": {"p/blur4": scores},
        "details": {"p/blur4": {"condition": "blur4", "margins": margins, "edges": {"harmonized": edges}}},
    }
    table = cli.conditions_table(report)
    assert "| p | blur4 |" in table and "+1.00 / +3.00" in table and "3.00 / 3.00" in table

"""Depth from the tiny Depth Anything model and from user depth/disparity files."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402

from core.depth import disparity_to_depth, estimate_depth, load_depth_file  # noqa: E402
from core.errors import InputError, ModelError  # noqa: E402
from core.models import ModelCache  # noqa: E402
from core.options import DepthOptions, RuntimeOptions  # noqa: E402
from core.progress import Progress  # noqa: E402
from tests.tiny_models import make_tiny_depth_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory):
    return make_tiny_depth_model(tmp_path_factory.mktemp("models") / "tiny-depth-anything")


@pytest.fixture(scope="module")
def tiny_metric_depth_model(tmp_path_factory):
    return make_tiny_depth_model(tmp_path_factory.mktemp("models") / "tiny-metric", metric=True)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return rng.random((48, 64, 3), dtype=np.float32)


def _options(model, **kwargs) -> DepthOptions:
    kwargs.setdefault("input_size", 56)
    return DepthOptions(model=str(model), **kwargs)


RUNTIME = RuntimeOptions(device="cpu", offline=True)


# --- disparity_to_depth --------------------------------------------------------------------------------


def test_disparity_extremes_map_to_near_and_far():
    disparity = np.linspace(0.0, 10.0, 200, dtype=np.float32).reshape(10, 20)
    depth = disparity_to_depth(disparity, 2.0, 50.0)
    assert depth.dtype == np.float32
    assert depth[disparity == disparity.max()].item() == pytest.approx(2.0, rel=1e-6)
    assert depth[disparity == disparity.min()].item() == pytest.approx(50.0, rel=1e-6)
    assert depth.min() >= 2.0 and depth.max() <= 50.0


def test_disparity_to_depth_is_monotonic_decreasing():
    disparity = np.linspace(-3.0, 7.0, 1000)
    depth = disparity_to_depth(disparity, 1.0, 20.0).astype(np.float64)
    assert np.all(np.diff(depth) <= 0)
    # Strictly decreasing between the robust percentiles, where nothing is clipped.
    middle = depth[30:-30]
    assert np.all(np.diff(middle) < 0)


def test_disparity_middle_is_linear_in_inverse_depth():
    disparity = np.linspace(0.0, 1.0, 101)
    depth = disparity_to_depth(disparity, 1.0, 10.0).astype(np.float64)
    inverse = 1.0 / depth
    # Equal disparity steps are equal inverse-depth steps inside the unclipped range.
    steps = np.diff(inverse[5:-5])
    assert np.allclose(steps, steps.mean(), rtol=1e-4)


def test_flat_or_invalid_disparity_stays_in_range():
    flat = disparity_to_depth(np.full((4, 4), 3.0), 1.0, 20.0)
    assert np.all(flat > 1.0) and np.all(flat < 20.0) and np.ptp(flat) == 0
    with_nan = disparity_to_depth(np.array([[np.nan, 1.0, 2.0, np.inf]]), 1.0, 20.0)
    assert np.all(np.isfinite(with_nan))
    assert with_nan[0, 0] == pytest.approx(20.0)


def test_disparity_to_depth_rejects_bad_planes():
    with pytest.raises(InputError):
        disparity_to_depth(np.ones((2, 2)), 5.0, 1.0)


# --- estimate_depth ------------------------------------------------------------------------------------


def test_estimate_depth_relative(tiny_depth_model, photo):
    messages = []
    progress = Progress(callback=lambda stage, fraction, message: messages.append(message))
    result = estimate_depth(photo, _options(tiny_depth_model), RUNTIME, progress, ModelCache())
    assert result.depth.shape == (48, 64)
    assert result.depth.dtype == np.float32
    assert result.kind == "relative" and result.units == "relative"
    assert result.source == str(tiny_depth_model)
    assert np.all(np.isfinite(result.depth))
    assert result.depth.min() >= 1.0 and result.depth.max() <= 20.0
    assert np.ptp(result.depth) > 0
    assert any("depth" in message for message in messages)


def test_estimate_depth_reuses_the_cached_model(tiny_depth_model, photo):
    cache = ModelCache()
    first = estimate_depth(photo, _options(tiny_depth_model), RUNTIME, None, cache)
    assert len(cache) == 1
    (net,) = cache._items.values()
    second = estimate_depth(photo[:, ::-1].copy(), _options(tiny_depth_model), RUNTIME, None, cache)
    assert len(cache) == 1
    assert next(iter(cache._items.values())) is net
    assert first.depth.shape == second.depth.shape


def test_estimate_depth_odd_aspect_and_size(tiny_depth_model):
    photo = np.full((31, 90, 3), 0.5, dtype=np.float32)
    photo[:, 45:] = 0.1
    result = estimate_depth(photo, _options(tiny_depth_model, input_size=30), RUNTIME, None, ModelCache())
    assert result.depth.shape == (31, 90)
    assert np.all(result.depth > 0)


def test_estimate_depth_metric_keeps_metres(tiny_metric_depth_model, photo):
    result = estimate_depth(photo, _options(tiny_metric_depth_model), RUNTIME, None, ModelCache())
    assert result.kind == "metric" and result.units == "metres"
    assert result.depth.shape == (48, 64)
    assert np.all(np.isfinite(result.depth)) and result.depth.min() > 0
    # The metric head is sigmoid * max_depth (20 m); the near/far policy must not have been applied.
    assert result.depth.max() <= 20.0 + 1e-3


def test_estimate_depth_broken_folder_is_a_model_error(tmp_path, photo):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match=re.escape(str(broken))):
        estimate_depth(photo, _options(broken), RUNTIME, None, ModelCache())


def test_estimate_depth_rejects_grey_arrays(tiny_depth_model):
    with pytest.raises(InputError, match="shape"):
        estimate_depth(np.zeros((8, 8), np.float32), _options(tiny_depth_model), RUNTIME, None, ModelCache())


# --- load_depth_file -----------------------------------------------------------------------------------


def test_png16_depth(tmp_path):
    depth_mm = np.tile(np.arange(1000, 1064, dtype=np.uint16), (48, 1))
    path = str(tmp_path / "depth.png")
    assert cv2.imwrite(path, depth_mm)
    result = load_depth_file(path, (48, 64), DepthOptions(depth_scale=1000.0))
    assert result.kind == "metric" and result.units == "metres" and result.source == path
    assert result.depth.dtype == np.float32
    np.testing.assert_allclose(result.depth, depth_mm / 1000.0, rtol=1e-6)


def test_pgm_disparity_with_scale_and_unknown_zeros(tmp_path):
    disparity = np.tile(np.linspace(40, 240, 64).astype(np.uint8), (48, 1))
    disparity[10:20, 30:40] = 0  # Middlebury marks unknown disparity with 0
    path = str(tmp_path / "disp0.pgm")
    assert cv2.imwrite(path, disparity)
    options = DepthOptions(depth_kind="disparity", depth_scale=4.0, near=1.0, far=20.0)
    result = load_depth_file(path, (48, 64), options)
    assert result.kind == "relative" and result.units == "relative"
    assert np.all(np.isfinite(result.depth)) and result.depth.min() >= 1.0 and result.depth.max() <= 20.0
    # The filled hole takes neighbouring values, never the far plane an unknown 0 would mean.
    hole = result.depth[10:20, 30:40]
    around = result.depth[5:25, 25:45]
    assert hole.min() >= around.min() and hole.max() <= around.max()
    assert any("unknown" in note for note in result.notes)
    # Larger disparity (right side) is nearer.
    assert result.depth[:, -1].mean() < result.depth[:, 0].mean()


def test_npy_with_nans_is_filled(tmp_path):
    depth = np.full((24, 32), 3.0, dtype=np.float32)
    depth[:, 16:] = 6.0
    depth[5:8, 2:5] = np.nan
    depth[0, 31] = -1.0
    path = str(tmp_path / "depth.npy")
    np.save(path, depth)
    result = load_depth_file(path, (24, 32), DepthOptions())
    assert np.all(np.isfinite(result.depth))
    assert np.all(result.depth[5:8, 2:5] == 3.0)
    assert result.depth[0, 31] == 6.0


def test_npy_pickle_is_refused(tmp_path):
    path = str(tmp_path / "objects.npy")
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=re.escape(path)):
        load_depth_file(path, (1, 1), DepthOptions())


def test_float_tiff_resized_to_photo(tmp_path):
    import tifffile

    depth = np.linspace(1.0, 5.0, 24 * 32, dtype=np.float32).reshape(24, 32)
    path = str(tmp_path / "depth.tif")
    tifffile.imwrite(path, depth)
    result = load_depth_file(path, (48, 64), DepthOptions())
    assert result.depth.shape == (48, 64)
    assert result.depth.min() >= 1.0 - 1e-5 and result.depth.max() <= 5.0 + 1e-5


def test_exr_depth(tmp_path):
    depth = np.random.default_rng(1).uniform(0.5, 9.0, (30, 40)).astype(np.float32)
    path = str(tmp_path / "depth.exr")
    if not cv2.imwrite(path, depth):
        import imageio.v3 as iio

        iio.imwrite(path, depth)
    result = load_depth_file(path, (30, 40), DepthOptions())
    np.testing.assert_allclose(result.depth, depth, rtol=1e-6)


def test_pfm_disparity_with_inf_unknown(tmp_path):
    disparity = np.tile(np.linspace(10, 50, 40, dtype=np.float32), (30, 1))
    disparity[0, 0] = np.inf  # Middlebury 2014 PFMs mark unknown with inf
    path = str(tmp_path / "disp0.pfm")
    assert cv2.imwrite(path, disparity)
    result = load_depth_file(path, (30, 40), DepthOptions(depth_kind="disparity"))
    assert np.all(np.isfinite(result.depth))


def test_grey_stored_as_rgb_is_accepted_and_colour_map_refused(tmp_path):
    grey = np.tile(np.arange(1, 65, dtype=np.uint8), (48, 1))
    path = str(tmp_path / "grey.png")
    cv2.imwrite(path, np.dstack([grey, grey, grey]))
    result = load_depth_file(path, (48, 64), DepthOptions())
    np.testing.assert_allclose(result.depth, grey.astype(np.float32))
    assert any("channel" in note for note in result.notes)

    coloured = str(tmp_path / "turbo.png")
    cv2.imwrite(coloured, cv2.applyColorMap(grey, cv2.COLORMAP_TURBO))
    with pytest.raises(InputError, match="colour-mapped"):
        load_depth_file(coloured, (48, 64), DepthOptions())


def test_wrong_aspect_names_both_sizes(tmp_path):
    path = str(tmp_path / "depth.npy")
    np.save(path, np.ones((50, 50), np.float32))
    with pytest.raises(InputError) as info:
        load_depth_file(path, (48, 64), DepthOptions())
    assert "50x50" in str(info.value) and "64x48" in str(info.value) and path in str(info.value)


def test_aspect_within_one_percent_is_accepted(tmp_path):
    path = str(tmp_path / "depth.npy")
    np.save(path, np.ones((100, 201), np.float32))
    assert load_depth_file(path, (50, 100), DepthOptions()).depth.shape == (50, 100)


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "nope.png")
    with pytest.raises(InputError, match=re.escape(path)):
        load_depth_file(path, (48, 64), DepthOptions())


def test_all_unknown_map_is_refused(tmp_path):
    path = str(tmp_path / "zeros.png")
    cv2.imwrite(path, np.zeros((48, 64), np.uint16))
    with pytest.raises(InputError, match="no valid values"):
        load_depth_file(path, (48, 64), DepthOptions())


def test_unreadable_and_empty_files_are_refused(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_depth_file(str(empty), (4, 4), DepthOptions())
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="cannot be read"):
        load_depth_file(str(garbage), (4, 4), DepthOptions())


def test_fill_is_fast_at_1080p(tmp_path):
    import time

    rng = np.random.default_rng(2)
    depth = rng.uniform(1.0, 10.0, (1080, 1920)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0.0
    path = str(tmp_path / "big.npy")
    np.save(path, depth)
    start = time.perf_counter()
    result = load_depth_file(path, (1080, 1920), DepthOptions())
    assert time.perf_counter() - start < 3.0
    assert result.depth.min() >= 1.0


def test_the_nearest_and_farthest_content_keep_their_shape_and_outliers_cannot_stretch_the_scene():
    disparity = np.linspace(0.0, 1.0, 1000)
    inverse = 1.0 / disparity_to_depth(disparity, 1.0, 10.0).astype(np.float64)
    # No plateau: the nearest and farthest 2 % still step, more finely than the middle (soft tails).
    steps = np.diff(inverse)
    assert (steps > 0).all()
    assert steps[:15].mean() < steps[500] and steps[-15:].mean() < steps[500]
    # One wild value (a reflection, a sky pixel) takes at most a tenth of the range beyond the rest.
    wild = np.concatenate([disparity, [1000.0]])
    inverse = 1.0 / disparity_to_depth(wild, 1.0, 10.0).astype(np.float64)
    span = inverse.max() - inverse.min()
    assert (inverse[-1] - inverse[-2]) / span < 0.1


def test_a_folder_given_as_a_photos_depth_map_is_named_as_such(tmp_path):
    from core.depth import load_depth_file
    from core.errors import InputError
    from core.options import DepthOptions

    with pytest.raises(InputError, match="is a folder: a photo takes one depth file"):
        load_depth_file(str(tmp_path), (4, 4), DepthOptions())

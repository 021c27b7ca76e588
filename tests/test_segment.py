"""Segmentation: superpixel fallback, mask painting and clean-up, NMS, and SAM with a tiny random model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from core.errors import Cancelled, ModelError
from core.models import ModelCache
from core.options import RuntimeOptions, SegmentOptions
from core.progress import Progress
from core.segment import (
    clean_labels,
    masks_to_labels,
    nms_masks,
    point_grid,
    sam_masks,
    segment_image,
    superpixel_labels,
)
from tests.scenes import square_scene
from tests.tiny_models.sam import make_tiny_sam

CPU = RuntimeOptions(device="cpu", offline=True)


def assert_valid_label_map(labels: np.ndarray, shape: tuple[int, int], min_pixels: int = 1) -> None:
    """int32, contiguous 0..K-1, every label one 4-connected region of at least ``min_pixels``."""
    assert labels.shape == shape
    assert labels.dtype == np.int32
    count = int(labels.max()) + 1
    assert labels.min() == 0
    sizes = np.bincount(labels.ravel(), minlength=count)
    assert (sizes >= min_pixels).all()
    for value in range(count):
        _, parts = ndimage.label(labels == value)  # default structure: 4-connectivity
        assert parts == 1, f"label {value} has {parts} parts"


def textured(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A blotchy colour texture, the same statistics for every seed."""
    noise = np.random.default_rng(seed).random((*shape, 3)).astype(np.float32)
    return np.clip(0.5 + 0.8 * (cv2.GaussianBlur(noise, (0, 0), 1.5) - 0.5), 0, 1)


# --------------------------------------------------------------------------------------------------
# Superpixel fallback


@pytest.mark.parametrize("blur", [0.0, 1.5, 3.0])
def test_superpixels_never_straddle_a_depth_step(blur: float) -> None:
    h, w = 96, 128
    square = np.zeros((h, w), bool)
    square[24:72, 40:96] = True
    # Wall and square share one texture's statistics: only depth tells them apart.
    rgb = np.where(square[..., None], textured((h, w), 1), textured((h, w), 2))
    depth = np.where(square, 2.0, 5.0).astype(np.float32)
    if blur:
        depth = cv2.GaussianBlur(depth, (0, 0), blur)  # network depth blurs edges over a few pixels
    options = SegmentOptions(model="none", superpixels=200)

    labels = segment_image(rgb, depth, options, CPU)

    assert_valid_label_map(labels, (h, w))
    inside_labels = 0
    for value in range(int(labels.max()) + 1):
        region = labels == value
        inside = np.count_nonzero(region & square) / np.count_nonzero(region)
        assert inside >= 0.95 or inside <= 0.05, f"label {value} straddles the square ({inside:.2f} inside)"
        inside_labels += inside >= 0.95
    assert 1 <= inside_labels <= 3
    assert labels.max() + 1 <= 8


def test_superpixels_merge_flat_regions_but_not_a_depth_step() -> None:
    h, w = 60, 80
    rgb = np.full((h, w, 3), 0.4, np.float32)
    depth = np.full((h, w), 3.0, np.float32)
    depth[:, 40:] = 6.0

    labels = superpixel_labels(rgb, depth, 100)

    # One flat colour: exactly the two depth planes remain, split at the step.
    assert labels.dtype == np.int32
    assert labels.max() == 1
    assert len(np.unique(labels[:, :40])) == 1
    assert len(np.unique(labels[:, 40:])) == 1
    assert labels[0, 0] != labels[0, -1]


def test_superpixels_on_speckled_depth_stay_few() -> None:
    # Per-pixel noise in depth (stereo, sensors) must not shatter the result into thousands of crumbs.
    rng = np.random.default_rng(9)
    rgb = textured((96, 128), 10)
    depth = (2.0 + rng.random((96, 128))).astype(np.float32)
    labels = segment_image(rgb, depth, SegmentOptions(model="none", superpixels=200), CPU)
    assert_valid_label_map(labels, (96, 128), min_pixels=7)  # 0.0005 of the image, rounded up
    assert labels.max() + 1 <= 200


# --------------------------------------------------------------------------------------------------
# Masks to labels, clean-up, NMS


def test_masks_to_labels_paints_small_on_top_and_merges_fragments() -> None:
    h, w = 10, 12
    masks = np.zeros((3, h, w), bool)
    masks[0, 0:6, 0:8] = True  # A, 48 px, painted first
    masks[1, 4:10, 6:12] = True  # B, 36 px, painted over A where they overlap
    masks[2, 5, 4:6] = True  # a 2 px fragment: borders A (3), uncovered (2), B (1)
    scores = np.array([0.9, 0.8, 0.7], np.float32)

    labels = masks_to_labels(masks, scores, min_region_fraction=0.02)  # 2.4 -> at least 3 px

    expected = np.zeros((h, w), np.int32)  # A, with the fragment merged into it
    expected[0:4, 8:12] = 1  # uncovered, top right
    expected[4:10, 6:12] = 2  # B
    expected[6:10, 0:6] = 3  # uncovered, bottom left
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int32


def test_masks_to_labels_without_masks_is_one_label() -> None:
    labels = masks_to_labels(np.zeros((0, 7, 9), bool), np.zeros(0, np.float32), 0.01)
    np.testing.assert_array_equal(labels, np.zeros((7, 9), np.int32))


def test_clean_labels_on_noise_gives_connected_regions_of_minimum_size() -> None:
    noise = np.random.default_rng(3).integers(0, 6, (40, 50))
    labels = clean_labels(noise, min_region_fraction=0.01)  # at least 20 px each
    assert_valid_label_map(labels, (40, 50), min_pixels=20)


def test_clean_labels_splits_disconnected_parts() -> None:
    labels = np.zeros((20, 20), np.int64)
    labels[:, 5:10] = 7  # splits label 0 into two parts
    cleaned = clean_labels(labels, 0.0)
    expected = np.zeros((20, 20), np.int32)
    expected[:, 5:10] = 1
    expected[:, 10:] = 2
    np.testing.assert_array_equal(cleaned, expected)


def test_nms_removes_duplicate_and_keeps_better_score() -> None:
    masks = np.zeros((3, 30, 30), bool)
    masks[0, 5:20, 5:20] = True
    masks[1, 5:20, 6:20] = True  # near duplicate of 0 (IoU 0.93), better scored
    masks[2, 22:28, 22:28] = True
    scores = np.array([0.8, 0.9, 0.5])

    np.testing.assert_array_equal(nms_masks(masks, scores, 0.7), [1, 2])
    # A threshold above their IoU keeps both, best first.
    np.testing.assert_array_equal(nms_masks(masks, scores, 0.95), [1, 0, 2])


def test_point_grid_cell_centres() -> None:
    points = point_grid(2, 100, 50)
    np.testing.assert_allclose(points, [[25, 12.5], [75, 12.5], [25, 37.5], [75, 37.5]])


# --------------------------------------------------------------------------------------------------
# SAM with a tiny random model


class CountingCache(ModelCache):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def get(self, key, loader):
        def counted():
            self.loads += 1
            return loader()

        return super().get(key, counted)


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory) -> str:
    return str(make_tiny_sam(tmp_path_factory.mktemp("tiny-sam")))


def sam_options(model: str, **changes) -> SegmentOptions:
    # Random weights predict low IoU and unstable masks: thresholds at 0 let masks through.
    values = dict(
        model=model,
        points_per_side=4,
        points_per_batch=5,
        pred_iou_threshold=0.0,
        stability_threshold=0.0,
        nms_iou_threshold=0.7,
        min_region_fraction=0.01,
    )
    values.update(changes)
    return SegmentOptions(**values)


def test_sam_path_gives_valid_label_map_and_loads_once(tiny_sam: str) -> None:
    h, w = 64, 80
    rgb = textured((h, w), 4)
    depth = np.full((h, w), 2.0, np.float32)
    cache = CountingCache()
    options = sam_options(tiny_sam)

    masks, scores = sam_masks(rgb, options, CPU, None, cache)
    labels = segment_image(rgb, depth, options, CPU, None, cache)

    assert masks.dtype == bool and masks.shape[1:] == (h, w) and len(masks) > 0
    assert scores.shape == (len(masks),)
    assert (np.diff(scores) <= 0).all()
    assert masks.reshape(len(masks), -1).any(axis=1).all()
    assert_valid_label_map(labels, (h, w), min_pixels=52)  # 1% of 5120 px, rounded up
    assert cache.loads == 1 and len(cache) == 1


def test_sam_with_strict_thresholds_still_labels_everything(tiny_sam: str) -> None:
    rgb = textured((40, 30), 5)
    options = sam_options(tiny_sam, pred_iou_threshold=0.99, stability_threshold=0.99)
    labels = segment_image(rgb, np.ones((40, 30), np.float32), options, CPU, None, CountingCache())
    np.testing.assert_array_equal(labels, np.zeros((40, 30), np.int32))


def test_cancel_during_sam_batches(tiny_sam: str) -> None:
    messages: list[str] = []
    progress = Progress()

    def on_progress(stage: str, fraction: float, message: str) -> None:
        messages.append(message)
        if message.startswith("masks: batch 1/"):
            progress.cancel_token.cancel()

    progress.callback = on_progress
    with pytest.raises(Cancelled):
        sam_masks(textured((32, 32), 6), sam_options(tiny_sam), CPU, progress, CountingCache())
    assert [m for m in messages if m.startswith("masks: batch")] == ["masks: batch 1/4"]


def test_missing_sam_model_offline_names_the_model(tmp_path) -> None:
    runtime = RuntimeOptions(device="cpu", offline=True, models_dir=str(tmp_path))
    options = sam_options("example-org/sam-that-is-not-here")
    with pytest.raises(ModelError, match="example-org/sam-that-is-not-here"):
        segment_image(textured((16, 16), 7), np.ones((16, 16), np.float32), options, runtime)


def test_folder_without_sam_weights_is_a_model_error(tmp_path) -> None:
    options = sam_options(str(tmp_path))
    with pytest.raises(ModelError, match="segmentation model"):
        sam_masks(textured((16, 16), 8), options, CPU, None, CountingCache())


def test_official_checkpoint_needs_segment_anything(tmp_path):
    from core.errors import ModelError
    from core.options import RuntimeOptions, SegmentOptions
    from core.segment import segment_image

    rgb = np.zeros((32, 32, 3), np.float32)
    depth = np.ones((32, 32), np.float32)
    missing = SegmentOptions(model=str(tmp_path / "sam_vit_b_01ec64.pth"))
    with pytest.raises(ModelError, match="checkpoint not found: .*sam_vit_b_01ec64.pth"):
        segment_image(rgb, depth, missing, RuntimeOptions())
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"
    checkpoint.write_bytes(b"not really weights")
    # torchvision does not import with this torch build, so neither does segment-anything.
    with pytest.raises(ModelError, match="segment-anything package .* facebook/sam-vit-base"):
        segment_image(rgb, depth, SegmentOptions(model=str(checkpoint)), RuntimeOptions())


def test_superpixel_fallback_checks_for_cancel_between_steps_and_merges():
    scene = square_scene(h=120, w=160)
    rgb = scene.rgb.astype(np.float32) / 255.0
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        superpixel_labels(rgb, scene.depth, 100, check=check)
    assert len(calls) == 2


def test_a_long_native_step_is_cancelled_within_a_poll():
    import threading
    import time

    from core.errors import Cancelled
    from core.progress import CancelToken
    from core.segment import run_cancellable

    token = CancelToken()
    threading.Timer(0.1, token.cancel).start()
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        run_cancellable(lambda: time.sleep(3.0), token.check, poll_s=0.02)
    assert time.perf_counter() - started < 0.5
    assert run_cancellable(lambda: 42, token.__class__().check) == 42
    with pytest.raises(ZeroDivisionError):
        run_cancellable(lambda: 1 / 0, lambda: None)


def test_the_sam_grid_is_smaller_on_the_cpu_unless_chosen():
    from core.options import CPU_POINTS_PER_SIDE, GPU_POINTS_PER_SIDE, PipelineOptions, SegmentOptions

    assert (CPU_POINTS_PER_SIDE, GPU_POINTS_PER_SIDE) == (8, 16)
    auto = SegmentOptions()
    assert auto.points_per_side is None
    assert auto.grid_points_per_side("cpu") == 8 and auto.grid_points_per_side("cuda:0") == 16
    assert SegmentOptions(points_per_side=12).grid_points_per_side("cpu") == 12
    loaded = PipelineOptions.from_dict({"segment": {"points_per_side": None}})
    assert loaded.segment.points_per_side is None
    assert PipelineOptions.from_dict(loaded.to_dict()).segment.points_per_side is None

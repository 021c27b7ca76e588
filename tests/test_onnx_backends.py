"""The ONNX Runtime backends: each exported tiny network agrees with torch, the registry sends .onnx values to
them, LaMa's crops touch only hole pixels, providers fall back, and bad files are clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import ModelError
from core.models import ModelCache, Runtime, backend_class, backend_for, check_models, onnx_runtime
from core.models.depth import TransformersDepth
from core.models.inpainting import TorchScriptLama
from core.models.onnx_depth import OnnxDepth
from core.models.onnx_export import TOLERANCE, difference
from core.models.onnx_lama import OnnxLama, hole_crops
from core.models.onnx_sam import OnnxSam, multimask
from core.models.segmentation import TransformersSam
from core.options import TORCH_DEPTH_MODEL, TORCH_SAM_MODEL, PipelineOptions
from core.segment import point_grid
from tests.onnx_models import OnnxModels, onnx_models

ROOT = Path(__file__).resolve().parents[1]
CPU = Runtime(device="cpu")
CPU_PROVIDER = "CPUExecutionProvider"


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> OnnxModels:
    return onnx_models(tmp_path_factory)


def _photo(height: int = 60, width: int = 90, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 3)
    return np.clip((smooth - smooth.min()) / (np.ptp(smooth) + 1e-6), 0, 1).astype(np.float32)


def _relative(expected: np.ndarray, actual: np.ndarray) -> float:
    return difference("", "", expected, actual).max_rel


# --- parity: torch and ONNX Runtime on the same input ------------------------------------------------------


def test_every_exported_network_matches_torch_within_tolerance(exported):
    """Relative difference max|torch - ort| / max|torch| per output, at several input sizes and prompt counts."""
    for task, result in exported.exports.items():
        assert result.differences, task
        for found in result.differences:
            assert found.max_rel <= TOLERANCE, found.line()
    checked = {d.network for d in exported.exports["depth"].differences}
    assert checked == {"depth 70x56", "depth 84x42", "depth 42x70"}  # traced at one size, right at all three


def test_depth_backend_agrees_with_the_transformers_backend(exported):
    cache = ModelCache()
    torch_net = backend_for("depth", str(exported.depth_source), CPU, cache)
    onnx_net = backend_for("depth", str(exported.depth_onnx / "model.onnx"), CPU, cache)
    assert isinstance(torch_net, TransformersDepth) and isinstance(onnx_net, OnnxDepth)
    assert onnx_net.provider == CPU_PROVIDER and onnx_net.multiple == 14 and onnx_net.metric is False
    np.testing.assert_allclose(onnx_net.mean, torch_net.mean)
    np.testing.assert_allclose(onnx_net.std, torch_net.std)
    image = cv2.resize(_photo(), (84, 56), interpolation=cv2.INTER_CUBIC)  # not the trace's size
    expected = torch_net.predict(image, (60, 90))
    actual = onnx_net.predict(image, (60, 90))
    assert actual.shape == (60, 90)
    assert _relative(expected, actual) < TOLERANCE


@pytest.mark.parametrize("split", ["sam_onnx", "sam_js"])
def test_sam_backends_give_the_torch_backends_masks(exported, split):
    cache = ModelCache()
    rgb = _photo()
    reference = backend_for("segmentation", str(exported.sam_source), CPU, cache).embed(rgb)
    backend = backend_for("segmentation", str(getattr(exported, split)), CPU, cache)
    assert isinstance(backend, OnnxSam) and backend.provider == CPU_PROVIDER
    assert backend.js is (split == "sam_js")
    image = backend.embed(rgb)
    assert image.frame_size == reference.frame_size == (128, 85)
    points = point_grid(3, *image.frame_size)
    expected_masks, expected_scores = reference.masks(points, 0.0, 0.0)
    masks, scores = image.masks(points, 0.0, 0.0)
    assert masks.shape == expected_masks.shape and len(masks) > 0
    assert _relative(expected_scores, scores) < TOLERANCE
    # Bilinear resizes in cv2 and torch differ by float rounding only: a pixel may flip where a logit is ~0.
    assert np.count_nonzero(masks != expected_masks) <= 0.001 * masks.size


def test_decoders_with_four_masks_drop_the_single_mask_answer():
    masks, scores = np.zeros((2, 4, 5, 5)), np.arange(8.0).reshape(2, 4)
    kept_masks, kept_scores = multimask(masks, scores)
    assert kept_masks.shape == (2, 3, 5, 5) and kept_scores.tolist() == [[1, 2, 3], [5, 6, 7]]


# --- the registry: .onnx values go to ONNX Runtime -----------------------------------------------------------


def test_backend_class_for_onnx_values(exported, tmp_path):
    assert backend_class("depth", str(exported.depth_onnx / "model.onnx")) is OnnxDepth
    assert backend_class("depth", str(exported.depth_onnx)) is OnnxDepth  # a folder holding model.onnx
    assert backend_class("depth", "depth-anything-v2-small.ONNX") is OnnxDepth
    assert backend_class("depth", str(exported.depth_source)) is TransformersDepth  # safetensors: transformers
    assert backend_class("depth", TORCH_DEPTH_MODEL) is TransformersDepth
    assert backend_class("segmentation", str(exported.sam_onnx)) is OnnxSam
    assert backend_class("segmentation", str(exported.sam_js)) is OnnxSam
    assert backend_class("segmentation", str(exported.sam_onnx / "encoder.onnx")) is OnnxSam
    assert backend_class("segmentation", TORCH_SAM_MODEL) is TransformersSam
    assert backend_class("inpainting", str(exported.lama_onnx)) is OnnxLama
    assert backend_class("inpainting", "big-lama.pt") is TorchScriptLama


def test_onnx_backends_open_once_per_cache(exported):
    cache = ModelCache()
    first = backend_for("inpainting", str(exported.lama_onnx), CPU, cache)
    assert backend_for("inpainting", str(exported.lama_onnx), CPU, cache) is first
    assert first.provider == CPU_PROVIDER and first.size == (512, 512)


# --- LaMa: crop, resize, run, resize back, paste the hole only ----------------------------------------------


def test_hole_crops_widen_the_box_by_context_and_make_it_square():
    hole = np.zeros((100, 200), bool)
    hole[40:50, 60:80] = True
    (crop,) = hole_crops(hole)
    # margin max(16, 0.5 * 20) = 16 -> a 52 x 52 square centred on the box.
    assert (crop.top, crop.bottom, crop.left, crop.right) == (19, 71, 44, 96)
    assert crop.fills.sum() == 200 and crop.fills[21:31, 16:36].all()
    hole[:, :] = False
    hole[0:4, 0:4] = True  # in a corner: the square is shifted inside the photo
    (corner,) = hole_crops(hole)
    assert (corner.top, corner.bottom, corner.left, corner.right) == (0, 36, 0, 36)


def test_near_holes_share_a_crop_and_far_ones_do_not():
    hole = np.zeros((100, 300), bool)
    hole[40:45, 10:15] = True
    hole[40:45, 30:35] = True  # 15 px away: within the context, one crop
    hole[40:45, 250:255] = True
    crops = hole_crops(hole)
    assert len(crops) == 2
    assert sorted(int(c.fills.sum()) for c in crops) == [25, 50]


def test_lama_fills_only_hole_pixels_with_the_network_on_the_resized_crop(exported):
    import torch

    from core.models.lama import load_lama

    lama = backend_for("inpainting", str(exported.lama_onnx), CPU, ModelCache())
    images = np.stack([_photo(100, 200, seed=1), _photo(100, 200, seed=2)])
    masks = np.zeros((2, 100, 200), bool)
    masks[0, 40:50, 60:80] = True
    masks[1, 5:15, 150:190] = True
    masks[1, 70:90, 20:30] = True
    filled = lama.fill(images, masks)
    assert filled.shape == images.shape and filled.dtype == np.float32
    np.testing.assert_array_equal(filled[~masks], images[~masks])  # exactly: outside holes nothing moves
    assert np.abs(filled[masks] - images[masks]).max() > 1e-3

    # The first image by hand: its crop grown to 512 (bilinear), the torch network, shrunk back (area).
    (crop,) = hole_crops(masks[0])
    window = (slice(crop.top, crop.bottom), slice(crop.left, crop.right))
    side = crop.bottom - crop.top
    image = cv2.resize(images[0][window], (512, 512), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(masks[0][window].astype(np.float32), (512, 512), interpolation=cv2.INTER_LINEAR) > 0
    module = load_lama(str(exported.lama_source), "cpu")
    with torch.no_grad():
        out = module(
            torch.from_numpy(image.transpose(2, 0, 1)[None].copy()),
            torch.from_numpy(mask[None, None].astype(np.float32)),
        )
    out = out[0].numpy().transpose(1, 2, 0).astype(np.float32)
    expected = cv2.resize(out, (side, side), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(filled[0][window][crop.fills], expected[crop.fills], atol=1e-5)


def test_lama_without_holes_returns_the_images(exported):
    lama = backend_for("inpainting", str(exported.lama_onnx), CPU, ModelCache())
    images = np.stack([_photo(20, 30)])
    out = lama.fill(images, np.zeros((1, 20, 30), bool))
    np.testing.assert_array_equal(out, images)


# --- execution providers ---------------------------------------------------------------------------------


def test_providers_are_chosen_from_the_available_ones(monkeypatch):
    monkeypatch.delenv(onnx_runtime.PROVIDERS_ENV, raising=False)
    listed = ["CoreMLExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider", CPU_PROVIDER]
    assert onnx_runtime.choose_providers("cpu", listed) == [CPU_PROVIDER]
    assert onnx_runtime.choose_providers("cuda", listed) == [
        "CUDAExecutionProvider",
        "CoreMLExecutionProvider",
        CPU_PROVIDER,
    ]
    assert onnx_runtime.choose_providers("cuda:1", [CPU_PROVIDER]) == [CPU_PROVIDER]
    assert onnx_runtime.choose_providers("cuda", listed, requested=["TensorrtExecutionProvider", "Nope"])[:2] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
    ]
    monkeypatch.setenv(onnx_runtime.PROVIDERS_ENV, "DmlExecutionProvider, TensorrtExecutionProvider")
    assert onnx_runtime.choose_providers("cuda", listed)[0] == "TensorrtExecutionProvider"


def test_a_provider_that_cannot_start_falls_back_to_the_next(exported, monkeypatch):
    import onnxruntime

    real = onnxruntime.InferenceSession
    tried = []

    def session(path, sess_options=None, providers=None):
        names = [item[0] for item in providers]
        tried.append(names)
        if "CUDAExecutionProvider" in names:
            raise RuntimeError("CUDA driver version is insufficient")
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    monkeypatch.setattr(onnx_runtime, "available_providers", lambda: ["CUDAExecutionProvider", CPU_PROVIDER])
    net = onnx_runtime.open_session(str(exported.lama_onnx), "cuda", "LaMa model")
    assert tried == [["CUDAExecutionProvider", CPU_PROVIDER], [CPU_PROVIDER]]
    assert net.provider == CPU_PROVIDER


# --- bad files are clear errors ----------------------------------------------------------------------------


def test_a_missing_onnx_file_is_named(tmp_path):
    missing = tmp_path / "depth-small.onnx"
    with pytest.raises(ModelError, match="weights file 'depth-small.onnx' not found") as info:
        backend_for("depth", str(missing), CPU, ModelCache())
    assert str(missing) in str(info.value)
    options = PipelineOptions.from_dict(
        {"runtime": {"device": "cpu"}, "depth": {"model": str(missing)}, "segment": {"model": "none"}}
    )
    with pytest.raises(ModelError, match="depth.model: weights file 'depth-small.onnx' not found"):
        check_models(options)


def test_a_folder_missing_its_decoder_is_named(exported, tmp_path):
    encoder = tmp_path / "encoder.onnx"
    encoder.write_bytes((exported.sam_onnx / "encoder.onnx").read_bytes())
    with pytest.raises(ModelError, match=f"SAM decoder not found: {tmp_path / 'decoder.onnx'}"):
        backend_for("segmentation", str(encoder), CPU, ModelCache())


def test_a_corrupt_onnx_file_is_named(tmp_path):
    corrupt = tmp_path / "lama.onnx"
    corrupt.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match=f"cannot load LaMa model {corrupt}: not a usable ONNX model"):
        backend_for("inpainting", str(corrupt), CPU, ModelCache())


def test_an_export_with_another_interface_is_named(exported):
    with pytest.raises(ModelError, match="is not the expected export: it has no input 'pixel_values'"):
        backend_for("depth", str(exported.lama_onnx), CPU, ModelCache())


def test_without_torch_the_device_comes_from_onnx_runtime():
    # The bundled worker has no torch: ``auto`` must resolve through ONNX Runtime's providers, not fail.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from core.errors import ModelError\n"
        "from core.models.runtime import resolve_device\n"
        "print(resolve_device('auto'), resolve_device('cpu'))\n"
        "try:\n"
        "    resolve_device('cuda')\n"
        "except ModelError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first == "cpu cpu"  # this machine's onnxruntime is the CPU build
    assert rest and rest[0].startswith("refused:") and "ONNX Runtime offers no GPU provider" in rest[0]


def test_tensorrt_caches_its_engines_and_cuda_gets_the_device_index(tmp_path, monkeypatch):
    monkeypatch.setenv(onnx_runtime.TRT_CACHE_ENV, str(tmp_path / "engines"))
    trt = onnx_runtime.provider_options("TensorrtExecutionProvider", "cuda:1")
    assert trt["device_id"] == "1" and trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path / "engines")
    assert onnx_runtime.provider_options("CUDAExecutionProvider", "cuda:2") == {"device_id": "2"}
    assert onnx_runtime.provider_options("CUDAExecutionProvider", "cuda") == {}
    assert onnx_runtime.provider_options("CPUExecutionProvider", "cuda:1") == {}

"""The models layer: the pre-flight names every missing or incomplete model at once, the registry picks the
backend for each kind of option value, and a backend registered from outside is used by the stages as is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest

from core.cli import main
from core.depth import disparity_to_depth, estimate_depth, network_input_size
from core.errors import ModelError
from core.inpaint import inpaint_layers
from core.layers import Layer
from core.models import (
    MissingModels,
    ModelCache,
    Runtime,
    WeightsNeed,
    backend_class,
    backend_for,
    check_models,
    register_backend,
    registered_backends,
    transformers_folder_problem,
    unregister_backend,
)
from core.models.depth import TransformersDepth
from core.models.inpainting import TorchScriptLama
from core.models.segmentation import OfficialSam, TransformersSam
from core.options import (
    TORCH_DEPTH_MODEL,
    TORCH_LAMA_MODEL,
    TORCH_SAM_MODEL,
    DepthOptions,
    InpaintOptions,
    PipelineOptions,
    RuntimeOptions,
    SegmentOptions,
)
from core.pipeline import convert_image
from core.progress import Progress
from core.segment import point_grid, sam_masks, segment_image
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]
CPU = Runtime(device="cpu")
CPU_OPTIONS = RuntimeOptions(device="cpu")


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches, so weights the user has never count as found."""
    hf_cache = tmp_path / "hf-cache"
    hf_cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def _options(models_dir=None, **sections) -> PipelineOptions:
    data = {"runtime": {"device": "cpu", "models_dir": str(models_dir) if models_dir else None}}
    data.update(sections)
    return PipelineOptions.from_dict(data)


def _torch_options(models_dir=None, **sections) -> PipelineOptions:
    """Options naming the torch backends' models (Hugging Face ids, big-lama TorchScript), not the defaults."""
    chosen = {
        "depth": {"model": TORCH_DEPTH_MODEL},
        "segment": {"model": TORCH_SAM_MODEL},
        "inpaint": {"lama_model": TORCH_LAMA_MODEL},
    }
    for name, values in sections.items():
        chosen[name] = {**chosen.get(name, {}), **values}
    return _options(models_dir, **chosen)


# --- pre-flight: every problem at once --------------------------------------------------------------------


def test_preflight_names_every_missing_model_at_once(tmp_path):
    models_dir = tmp_path / "models"
    options = _torch_options(models_dir, inpaint={"method": "lama"})
    with pytest.raises(MissingModels) as info:
        check_models(options)
    error = info.value
    assert isinstance(error, ModelError) and error.exit_code == 3 and error.code == "missing_model"
    assert len(error.problems) == 3
    depth, segment, lama = error.problems
    assert depth.startswith(f"depth.model: depth model {TORCH_DEPTH_MODEL!r} is not available offline")
    assert str(models_dir / TORCH_DEPTH_MODEL.replace("/", "--")) in depth
    assert segment.startswith(f"segment.model: segmentation model {TORCH_SAM_MODEL!r} is not available offline")
    assert f"hf download {TORCH_SAM_MODEL} --local-dir {models_dir / 'facebook--sam-vit-base'}" in segment
    assert lama.startswith("inpaint.lama_model: weights file 'big-lama.pt' not found")
    assert f"put it at {models_dir / 'big-lama.pt'}" in lama
    message = str(error)
    assert message.startswith("the models this job needs are not all available (3 problems):\n")
    assert message.splitlines()[1:] == [f"  1. {depth}", f"  2. {segment}", f"  3. {lama}"]


def test_one_problem_is_the_message_itself(tmp_path):
    options = _options(tmp_path, segment={"model": "none"}, inpaint={"method": "lama", "lama_model": "not-here.pt"})
    options.depth.depth_file = str(tmp_path / "depth.npy")  # a depth file: no depth model needed
    with pytest.raises(MissingModels) as info:
        check_models(options)
    assert info.value.problems == [str(info.value)]
    assert str(info.value).startswith("inpaint.lama_model: weights file 'not-here.pt' not found. Searched: ")


def test_an_unusable_device_is_listed_with_the_models(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    options = _torch_options(tmp_path, segment={"model": "none"})
    options.runtime.device = "cuda"
    with pytest.raises(MissingModels) as info:
        check_models(options)
    device, depth = info.value.problems
    assert device.startswith("device 'cuda' was requested but this torch build sees no CUDA GPU")
    assert depth.startswith(f"depth.model: depth model {TORCH_DEPTH_MODEL!r} is not available offline")


def test_cli_lists_all_three_and_exits_3(tmp_path, capsys):
    image, _ = square_scene().write(tmp_path / "input")
    args = ["convert", str(image), "-o", str(tmp_path / "out"), "--models-dir", str(tmp_path / "models")]
    torch_models = ["--depth-model", TORCH_DEPTH_MODEL, "--segment", TORCH_SAM_MODEL, "--lama-model", TORCH_LAMA_MODEL]
    assert main([*args, *torch_models, "--inpaint", "lama", "--device", "cpu", "-q"]) == 3
    err = capsys.readouterr().err
    assert "(3 problems)" in err
    for name in (TORCH_DEPTH_MODEL, TORCH_SAM_MODEL, "big-lama.pt"):
        assert name in err
    assert not (tmp_path / "out").exists()


def test_complete_models_pass_the_preflight(models_dir):
    check_models(_torch_options(models_dir, inpaint={"method": "lama"}))  # the tiny models: nothing raised
    for name in (TORCH_DEPTH_MODEL, TORCH_SAM_MODEL):
        assert transformers_folder_problem(str(models_dir / name.replace("/", "--"))) is None


# --- pre-flight: incomplete model folders -----------------------------------------------------------------


def _write(folder: Path, files: dict[str, bytes | str]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return folder


SHARD_INDEX = json.dumps(
    {"weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}
)
INCOMPLETE = {
    "empty": ({}, "it is empty"),
    "no weights": ({"config.json": "{}"}, "it has no weights file (model.safetensors)"),
    "no config": ({"model.safetensors": b"x"}, "it has no config.json"),
    "neither": ({"README.md": "hi"}, "it has no config.json; it has no weights file (model.safetensors)"),
    "missing shard": (
        {"config.json": "{}", "model.safetensors.index.json": SHARD_INDEX, "model-00001-of-00002.safetensors": b"x"},
        "1 weight shard(s) its model.safetensors.index.json lists are missing: model-00002-of-00002.safetensors",
    ),
    "pickle only": (
        {"config.json": "{}", "pytorch_model.bin": b"x"},
        "it holds only pytorch_model.bin weights, which are not loaded because pickle files can run code; "
        "get the model.safetensors version",
    ),
}


@pytest.mark.parametrize("case", list(INCOMPLETE))
def test_preflight_catches_an_incomplete_depth_folder(tmp_path, case):
    files, problem = INCOMPLETE[case]
    folder = _write(tmp_path / "my-depth", files)
    options = _options(depth={"model": str(folder)}, segment={"model": "none"})
    with pytest.raises(MissingModels) as info:
        check_models(options)
    assert info.value.problems == [
        f"depth.model: depth model folder {folder} is incomplete: {problem}; "
        "put the model's config.json and model.safetensors there"
    ]


def test_preflight_catches_an_empty_segmentation_folder_in_the_models_dir(tmp_path):
    models_dir = tmp_path / "models"
    folder = _write(models_dir / "owner--tiny-sam", {})
    depth = _write(tmp_path / "depth", {"config.json": "{}"})
    options = _options(models_dir, depth={"model": str(depth)}, segment={"model": "owner/tiny-sam"})
    with pytest.raises(MissingModels) as info:
        check_models(options)
    assert info.value.problems == [
        f"depth.model: depth model folder {depth} is incomplete: it has no weights file (model.safetensors); "
        "put the model's config.json and model.safetensors there",
        f"segment.model: segmentation model folder {folder} is incomplete: it is empty; "
        f"get it with `hf download owner/tiny-sam --local-dir {folder}`",
    ]


def test_complete_shards_and_pickle_when_allowed(tmp_path):
    shards = {"config.json": "{}", "model.safetensors.index.json": SHARD_INDEX}
    shards.update({f"model-0000{i}-of-00002.safetensors": b"x" for i in (1, 2)})
    assert transformers_folder_problem(str(_write(tmp_path / "sharded", shards))) is None
    pickle = _write(tmp_path / "pickle", {"config.json": "{}", "pytorch_model.bin": b"x"})
    assert transformers_folder_problem(str(pickle), safetensors_only=False) is None
    assert transformers_folder_problem(str(pickle)).startswith("it holds only pytorch_model.bin weights")


def test_the_stage_refuses_an_incomplete_folder_the_same_way(tmp_path):
    folder = _write(tmp_path / "my-depth", {})
    with pytest.raises(ModelError) as info:
        estimate_depth(np.zeros((8, 8, 3), np.float32), DepthOptions(model=str(folder)), RuntimeOptions(device="cpu"))
    assert str(info.value) == (
        f"depth model folder {folder} is incomplete: it is empty; "
        "put the model's config.json and model.safetensors there"
    )


# --- the registry picks the backend -----------------------------------------------------------------------


def test_backend_class_for_each_kind_of_option_value(tmp_path):
    assert backend_class("depth", TORCH_DEPTH_MODEL) is TransformersDepth
    assert backend_class("depth", str(tmp_path / "a-folder")) is TransformersDepth
    assert backend_class("segmentation", TORCH_SAM_MODEL) is TransformersSam
    assert backend_class("segmentation", str(tmp_path / "sam_vit_b_01ec64.pth")) is OfficialSam
    assert backend_class("segmentation", "SAM_VIT_H.PTH") is OfficialSam
    assert backend_class("inpainting", "big-lama.pt") is TorchScriptLama
    assert [cls.name for cls in registered_backends("segmentation")] == [
        "onnx-sam",
        "segment-anything",
        "transformers-sam",
    ]
    with pytest.raises(ValueError, match="unknown model task 'colour'"):
        backend_class("colour", "x")


def test_backend_for_opens_each_built_in_backend_once(models_dir):
    runtime = Runtime(device="cpu", models_dir=str(models_dir))
    cache = ModelCache()
    depth = backend_for("depth", TORCH_DEPTH_MODEL, runtime, cache)
    sam = backend_for("segmentation", TORCH_SAM_MODEL, runtime, cache)
    lama = backend_for("inpainting", "big-lama.pt", runtime, cache)
    assert type(depth) is TransformersDepth and type(sam) is TransformersSam and type(lama) is TorchScriptLama
    assert depth.source == str(models_dir / TORCH_DEPTH_MODEL.replace("/", "--"))
    assert (depth.metric, depth.multiple) == (False, 14)
    assert lama.source == str(models_dir / "big-lama.pt")
    assert backend_for("depth", TORCH_DEPTH_MODEL, runtime, cache) is depth
    assert len(cache) == 3


def test_official_checkpoint_goes_to_segment_anything(tmp_path):
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(ModelError, match=f"^segment-anything checkpoint not found: {re.escape(str(checkpoint))}$"):
        backend_for("segmentation", str(checkpoint), CPU, ModelCache())
    checkpoint.write_bytes(b"not really weights")
    # torchvision does not import with this torch build, so neither does segment-anything.
    with pytest.raises(ModelError, match="segment-anything package .* facebook/sam-vit-base"):
        backend_for("segmentation", str(checkpoint), CPU, ModelCache())


def test_importing_core_never_imports_torch():
    code = (
        "import sys, core.models, core.depth, core.segment, core.inpaint, core.models.lama, core.pipeline; "
        "print(sorted(m for m in ('torch', 'transformers', 'segment_anything') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


# --- a backend from outside, used by the unchanged stages ---------------------------------------------------


class FakeDepth:
    """Relative disparity that rises left to right; records what the stage handed it."""

    task = "depth"
    name = "fake-depth"
    source = "fake:depth"
    metric = False
    multiple = 7
    seen: list = []

    @classmethod
    def handles(cls, model):
        return model == "fake-depth"

    @classmethod
    def needs(cls, model):
        return ()

    @classmethod
    def open(cls, model, runtime, cache):
        return cls()

    def predict(self, image, size):
        self.seen.append((image.shape, tuple(size)))
        return np.tile(np.linspace(0.0, 1.0, size[1], dtype=np.float32), (size[0], 1))


class FakePrompts:
    frame_size = (60, 40)  # twice the photo, as SAM's processor resizes
    calls: list = []

    def __init__(self, shape):
        self.shape = shape

    def masks(self, points, pred_iou_threshold, stability_threshold):
        self.calls.append((np.array(points), pred_iou_threshold, stability_threshold))
        h, w = self.shape
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        masks = np.stack([left if x < 30 else ~left for x, _ in points])
        scores = np.array([0.9 if x < 30 else 0.8 for x, _ in points], np.float32)
        return masks, scores


class FakeSegmenter:
    """Left half for prompts on the left, right half for prompts on the right."""

    task = "segmentation"
    name = "fake-sam"
    source = "fake:sam"

    @classmethod
    def handles(cls, model):
        return model == "fake-sam"

    @classmethod
    def needs(cls, model):
        return ()

    @classmethod
    def open(cls, model, runtime, cache):
        return cls()

    def embed(self, rgb):
        return FakePrompts(rgb.shape[:2])


FILL = np.array([0.25, 0.5, 0.75], np.float32)


class FakeInpaint:
    """Fills every hole with one colour."""

    task = "inpainting"
    name = "fake-inpaint"
    source = "fake:inpaint"

    @classmethod
    def handles(cls, model):
        return model.endswith(".fake")

    @classmethod
    def needs(cls, model):
        return ()

    @classmethod
    def open(cls, model, runtime, cache):
        return cls()

    def fill(self, images, masks):
        return np.where(masks[..., None], FILL, images).astype(np.float32)


@pytest.fixture
def fakes():
    FakeDepth.seen.clear()
    FakePrompts.calls.clear()
    for cls in (FakeDepth, FakeSegmenter, FakeInpaint):
        register_backend(cls)
    yield
    for cls in (FakeDepth, FakeSegmenter, FakeInpaint):
        unregister_backend(cls)
    assert backend_class("depth", "fake-depth") is TransformersDepth


def test_a_registered_depth_backend_is_used_by_the_stage(fakes):
    photo = np.full((30, 40, 3), 0.5, np.float32)
    result = estimate_depth(photo, DepthOptions(model="fake-depth", input_size=14, near=1.0, far=10.0), CPU_OPTIONS)
    in_h, in_w = network_input_size(30, 40, 14, 7)
    assert (in_h, in_w) == (14, 21)
    assert FakeDepth.seen == [((14, 21, 3), (30, 40))]
    ramp = np.tile(np.linspace(0.0, 1.0, 40, dtype=np.float32), (30, 1))
    np.testing.assert_array_equal(result.depth, disparity_to_depth(ramp, 1.0, 10.0))
    assert (result.kind, result.source, result.units) == ("relative", "fake:depth", "relative")


def test_a_registered_segmenter_gets_the_grid_and_its_masks_go_through_nms(fakes):
    rgb = np.full((20, 30, 3), 0.5, np.float32)
    options = SegmentOptions(model="fake-sam", points_per_side=2, points_per_batch=3, min_region_fraction=0.01)
    masks, scores = sam_masks(rgb, options, CPU_OPTIONS)
    grid = point_grid(2, 60, 40)
    assert [len(points) for points, _, _ in FakePrompts.calls] == [3, 1]
    np.testing.assert_array_equal(np.concatenate([points for points, _, _ in FakePrompts.calls]), grid)
    assert {(iou, stable) for _, iou, stable in FakePrompts.calls} == {(0.80, 0.85)}
    np.testing.assert_array_equal(scores, np.array([0.9, 0.8], np.float32))  # duplicates removed, best first
    assert masks[0][:, :15].all() and not masks[0][:, 15:].any() and (masks[1] == ~masks[0]).all()
    labels = segment_image(rgb, np.ones((20, 30), np.float32), options, CPU_OPTIONS)
    expected = np.zeros((20, 30), np.int32)
    expected[:, 15:] = 1
    np.testing.assert_array_equal(labels, expected)


def test_a_registered_inpainter_fills_the_holes(fakes):
    h, w = 24, 32
    near = np.zeros((h, w), bool)
    near[8:16, 10:20] = True
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[near] = (1.0, 0.0, 0.0)
    layers = [Layer(0, ~near, [0], 5.0, 0.0), Layer(1, near, [1], 2.0, 1.0)]
    depth = np.where(near, 2.0, 5.0).astype(np.float32)
    options = InpaintOptions(method="lama", lama_model="net.fake")
    far, front = inpaint_layers(rgb, depth, layers, options, CPU_OPTIONS)
    np.testing.assert_array_equal(far.hole, near)
    np.testing.assert_array_equal(far.rgb[near], np.tile(FILL, (int(near.sum()), 1)))
    np.testing.assert_array_equal(far.rgb[~near], rgb[~near])
    assert not front.hole.any()


def test_the_preflight_asks_the_registered_backend_what_it_needs(fakes, tmp_path):
    options = _options(
        tmp_path, depth={"model": "fake-depth"}, segment={"model": "fake-sam"}, inpaint={"method": "lama"}
    )
    options.inpaint.lama_model = "net.fake"
    check_models(options)  # the fakes need nothing: nothing raised

    class NeedyFake(FakeInpaint):
        @classmethod
        def needs(cls, model):
            return (WeightsNeed("inpainting weights", "fake.onnx", "file"),)

    register_backend(NeedyFake)
    try:
        with pytest.raises(MissingModels) as info:
            check_models(options)
    finally:
        unregister_backend(NeedyFake)
    (problem,) = info.value.problems
    assert problem.startswith("inpaint.lama_model: weights file 'fake.onnx' not found")
    assert str(tmp_path / "fake.onnx") in problem


def test_the_whole_pipeline_runs_on_registered_backends(fakes, tmp_path):
    image, _ = square_scene(48, 64).write(tmp_path / "input")
    options = _options(
        depth={"model": "fake-depth", "input_size": 28},
        segment={"model": "fake-sam", "points_per_side": 2},
        inpaint={"method": "lama", "lama_model": "net.fake"},
    )
    stages = []
    result = convert_image(image, tmp_path / "pkg", options, Progress(lambda stage, f, m: stages.append(stage)))
    manifest = json.loads((Path(result.package_path) / "manifest.json").read_text())
    assert manifest["depth"]["source"] == "fake:depth" and manifest["depth"]["kind"] == "relative"
    assert manifest["models"]["segmentation"] == "fake-sam"
    assert manifest["models"]["inpaint"] == "net.fake"
    assert manifest["stats"]["segments"] == 2
    assert {"depth", "segment", "inpaint"} <= set(stages)

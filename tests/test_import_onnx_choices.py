"""The import with the bundled (ONNX-only) worker: its networks are the model manager's files."""

from __future__ import annotations

import pytest

from core.errors import ModelError
from core.models import check_models
from core.models.catalog import CATALOG
from core.options import PipelineOptions
from tests.pure_addon import addon


def _option(task: str) -> str:
    return next(model.option for model in CATALOG if model.task == task and (model.default or task == "inpainting"))


def test_the_torch_worker_keeps_the_pipelines_own_defaults():
    choices = addon("importing.choices")
    options = choices.pipeline_options(choices.ImportChoices())
    assert "model" not in options["depth"] and "model" not in options["segment"]
    assert choices.catalog_models(choices.ImportChoices()) == []


def test_the_bundled_worker_uses_the_model_managers_files(tmp_path):
    choices = addon("importing.choices")
    picked = choices.ImportChoices(onnx_models=True, inpaint="LAMA", models_dir=str(tmp_path))
    options = choices.pipeline_options(picked)
    assert options["depth"]["model"] == _option("depth") == "depth-anything-v2-small/model.onnx"
    assert options["segment"]["model"] == _option("segmentation") == "slimsam-77/vision_encoder.onnx"
    assert options["inpaint"]["lama_model"] == _option("inpainting") == "lama/lama_fp32.onnx"
    assert [model.task for model in choices.catalog_models(picked)] == ["depth", "segmentation", "inpainting"]
    # Nothing downloaded yet: the pre-flight names every one of them, with where it goes.
    with pytest.raises(ModelError) as missing:
        check_models(PipelineOptions.from_dict(options))
    for relative in (_option("depth"), "slimsam-77/vision_encoder.onnx", _option("inpainting")):
        assert str(tmp_path / relative) in str(missing.value)


def test_without_networks_the_bundled_worker_needs_no_model(tmp_path):
    choices = addon("importing.choices")
    depth = tmp_path / "depth.npy"
    depth.write_bytes(b"")
    picked = choices.ImportChoices(onnx_models=True, depth_source="FILE", depth_file=str(depth), segmentation=False)
    options = choices.pipeline_options(picked)
    assert options["segment"]["model"] == "none" and "model" not in options["depth"]
    assert choices.catalog_models(picked) == []

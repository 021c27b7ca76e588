"""The import's networks are the model manager's ONNX files (the pipeline's defaults), whatever the worker."""

from __future__ import annotations

import pytest

from core.errors import ModelError
from core.models import check_models
from core.options import PipelineOptions
from tests.pure_addon import addon


def test_the_defaults_are_the_model_managers_files(tmp_path):
    choices = addon("importing.choices")
    picked = choices.ImportChoices(inpaint="LAMA", models_dir=str(tmp_path))
    options = PipelineOptions.from_dict(choices.pipeline_options(picked))
    assert options.depth.model == "depth-anything-v2-small/model.onnx"
    assert options.segment.model == "slimsam-77/vision_encoder.onnx"
    assert options.inpaint.lama_model == "lama/lama_fp32.onnx"
    assert [m.key for m in choices.catalog_models(picked)] == ["depth-small", "segment-slimsam", "inpaint-lama"]
    # Nothing downloaded yet: the pre-flight names every file, where it goes, and the command that gets it.
    with pytest.raises(ModelError) as missing:
        check_models(options)
    message = str(missing.value)
    for relative in (options.depth.model, options.segment.model, "slimsam-77/prompt_encoder_mask_decoder.onnx",
                     options.inpaint.lama_model):  # fmt: skip
        assert str(tmp_path / relative) in message
    for key in ("depth-small", "segment-slimsam", "inpaint-lama"):
        assert f"`python -m core models download {key}`" in message
    # ... which Blender words as the button to press.
    state = addon("worker.job").JobState(status="failed", error_code="missing_model", error=message)
    shown = state.describe_error()
    assert "python -m core" not in shown and shown.count("press 'Download Models'") == 4


def test_without_networks_an_import_needs_no_model(tmp_path):
    choices = addon("importing.choices")
    depth = tmp_path / "depth.npy"
    depth.write_bytes(b"")
    picked = choices.ImportChoices(depth_source="FILE", depth_file=str(depth), segmentation=False)
    options = choices.pipeline_options(picked)
    assert options["segment"]["model"] == "none"
    assert choices.catalog_models(picked) == []

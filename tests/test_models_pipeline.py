"""The pipeline with networks: tiny random models of the real architectures, found in a models folder."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ModelError
from core.models import ModelCache
from core.options import TORCH_DEPTH_MODEL, TORCH_LAMA_MODEL, TORCH_SAM_MODEL, PipelineOptions
from core.package import read_package
from core.pipeline import convert_image
from core.progress import Progress
from tests.scenes import square_scene


@pytest.fixture
def photo(tmp_path):
    image, _ = square_scene(72, 96).write(tmp_path / "input")
    return image


def test_depth_sam_and_lama_models_through_the_real_loading_path(photo, tmp_path, models_dir):
    # The torch backends (the ONNX ones, the defaults, are tests/test_onnx_pipeline.py's).
    options = PipelineOptions.from_dict(
        {
            "runtime": {"models_dir": str(models_dir), "device": "cpu"},
            "depth": {"model": TORCH_DEPTH_MODEL},
            "segment": {
                "model": TORCH_SAM_MODEL, "points_per_side": 4, "pred_iou_threshold": 0.0, "stability_threshold": 0.0
            },
            "inpaint": {"method": "lama", "lama_model": TORCH_LAMA_MODEL},
        }
    )  # fmt: skip
    cache = ModelCache()
    result = convert_image(photo, tmp_path / "pkg", options, cache=cache)
    package = read_package(result.package_path)
    assert package.manifest.depth.kind == "relative"
    assert package.manifest.models["segmentation"] == options.segment.model
    assert package.manifest.models["inpaint"] == "big-lama.pt"
    depth = np.load(package.path_of("depth.npy"))
    assert depth.shape == (72, 96) and np.isfinite(depth).all() and (depth > 0).all()
    loaded = len(cache)
    # A second job reuses the warm models instead of loading them again.
    convert_image(photo, tmp_path / "pkg2", options, cache=cache)
    assert len(cache) == loaded >= 3


def test_missing_lama_weights_fail_before_any_output(photo, tmp_path, models_dir):
    options = PipelineOptions.from_dict(
        {
            "runtime": {"models_dir": str(models_dir)},
            "segment": {"model": "none"},
            "inpaint": {"method": "lama", "lama_model": "not-here.pt"},
        }
    )
    stages = []
    with pytest.raises(ModelError, match="not-here.pt"):
        convert_image(photo, tmp_path / "pkg", options, Progress(lambda stage, f, m: stages.append(stage)))
    assert stages == []  # checked before the first stage starts
    assert not (tmp_path / "pkg").exists()

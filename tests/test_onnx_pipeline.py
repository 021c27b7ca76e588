"""The whole pipeline on ONNX Runtime (depth, SAM and LaMa from .onnx files), and ``models export-onnx``."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.models import ModelCache
from core.options import PipelineOptions
from core.package import read_package
from core.pipeline import convert_image
from tests.onnx_models import OnnxModels, onnx_models


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> OnnxModels:
    return onnx_models(tmp_path_factory)


@pytest.fixture
def photo(tmp_path):
    from skimage import data

    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).resize((96, 64), Image.LANCZOS).save(path)
    return path


def test_the_pipeline_runs_on_onnx_runtime_and_writes_a_valid_package(exported, photo, tmp_path):
    depth = str(exported.depth_onnx / "model.onnx")
    options = PipelineOptions.from_dict(
        {
            "runtime": {"device": "cpu"},
            "depth": {"model": depth, "input_size": 56},
            "segment": {
                "model": str(exported.sam_onnx),
                "points_per_side": 4,
                "pred_iou_threshold": 0.0,
                "stability_threshold": 0.0,
            },
            "inpaint": {"method": "lama", "lama_model": str(exported.lama_onnx)},
        }
    )
    cache = ModelCache()
    result = convert_image(photo, tmp_path / "pkg", options, cache=cache)
    package = read_package(result.package_path)
    manifest = package.manifest
    assert manifest.depth.kind == "relative" and manifest.depth.source.endswith("model.onnx")
    assert manifest.models["segmentation"] == str(exported.sam_onnx)
    assert manifest.models["inpaint"] == str(exported.lama_onnx)
    # What each network ran on goes into the manifest: backend and the execution provider actually used.
    assert manifest.models["depth_runs_on"] == "onnx-depth on CPUExecutionProvider"
    assert manifest.models["segmentation_runs_on"] == "onnx-sam on CPUExecutionProvider"
    assert manifest.models["inpaint_runs_on"] == "onnx-lama on CPUExecutionProvider"
    from core.cli import summary_text

    assert "ran on  depth: onnx-depth on CPUExecutionProvider; " in summary_text(manifest, str(package.root))
    assert manifest.layers
    depth_map = np.load(package.path_of("depth.npy"))
    assert depth_map.shape == (64, 96) and np.isfinite(depth_map).all()
    # Every network the job opened ran through ONNX Runtime, none through torch.
    assert sorted(key[0] for key in cache._items) == ["onnx-depth", "onnx-lama", "onnx-sam"]


def test_export_onnx_command_checks_parity_and_writes_the_files(exported, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["models", "export-onnx", "depth", str(exported.depth_source), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parity  depth 686x518 predicted_depth: max abs" in printed
    assert (out / "model.onnx").is_file() and (out / "preprocessor_config.json").is_file()
    assert f"wrote   {out / 'model.onnx'}" in printed


def test_export_onnx_above_the_tolerance_fails_and_keeps_nothing(exported, tmp_path, capsys):
    out = tmp_path / "exported"
    args = ["models", "export-onnx", "inpainting", str(exported.lama_source), "-o", str(out), "--tolerance", "0"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "does not match torch: lama output: max abs" in err and "above 0 (relative); nothing was kept" in err
    assert "Traceback" not in err
    assert not (out / "lama.onnx").exists()


def test_a_corrupt_onnx_model_stops_the_cli_with_a_clear_message(photo, tmp_path, capsys):
    corrupt = tmp_path / "depth.onnx"
    corrupt.write_bytes(b"\x00garbage" * 64)
    args = ["convert", str(photo), "-o", str(tmp_path / "out"), "--depth-model", str(corrupt)]
    assert main([*args, "--segment", "none", "--device", "cpu", "-q"]) == 3
    err = capsys.readouterr().err
    assert f"cannot load ONNX depth model {corrupt}: not a usable ONNX model" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


_watched: list[str] = []
_writes: list[tuple[str, str]] = []


def _note_writes(event: str, args: tuple) -> None:
    """An audit hook (it cannot be removed, so it only records while ``_watched`` names a folder)."""
    if not _watched:
        return
    if event == "open":
        path, mode = args[0], args[1]
        writing = isinstance(mode, str) and any(flag in mode for flag in "wax+")
        writing |= isinstance(args[2], int) and bool(args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.chmod", "os.truncate"):
        path, writing = args[0], True
    else:
        return
    if writing and isinstance(path, str | os.PathLike) and os.path.abspath(path).startswith(_watched[0]):
        _writes.append((event, str(path)))


sys.addaudithook(_note_writes)


def test_a_shared_models_folder_is_only_read(exported, photo, tmp_path):
    """A farm shares one read-only models folder: a conversion with every network opens nothing in it for
    writing, creates, renames or removes nothing there (TensorRT's engines go to the user's cache folder)."""
    folder = os.path.commonpath([str(exported.depth_onnx), str(exported.sam_onnx), str(exported.lama_onnx)])
    options = PipelineOptions.from_dict(
        {
            "runtime": {"device": "cpu", "models_dir": folder},
            "depth": {"model": str(exported.depth_onnx / "model.onnx"), "input_size": 56},
            "segment": {"model": str(exported.sam_onnx), "points_per_side": 4, "pred_iou_threshold": 0.0,
                        "stability_threshold": 0.0},
            "inpaint": {"method": "lama", "lama_model": str(exported.lama_onnx)},
        }
    )  # fmt: skip
    _writes.clear()
    _watched[:] = [folder]
    try:
        with open(os.path.join(folder, "probe.txt"), "w") as probe:  # first: the hook sees a write there
            probe.write("x")
        probe_path = os.path.join(folder, "probe.txt")
        assert _writes == [("open", probe_path)], "the hook does not see writes"
        os.remove(probe_path)
        _writes.clear()
        convert_image(photo, tmp_path / "pkg", options, cache=ModelCache())
    finally:
        _watched.clear()
    assert _writes == []

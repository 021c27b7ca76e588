"""Session fixtures: tiny random models of the real architectures, laid out as a user's models folder."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from core.options import TORCH_DEPTH_MODEL, TORCH_LAMA_MODEL, TORCH_SAM_MODEL

# Tests never download: the hub is offline and its cache is an empty folder of the test run.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory):
    hf_home = tmp_path_factory.mktemp("hf_home")
    saved = {key: os.environ.get(key) for key in ("HF_HOME", "TORCH_HOME")}
    os.environ["HF_HOME"] = str(hf_home)
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch_home"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A user's models folder with tiny random models of the real architectures: the defaults (ONNX files
    where the model manager puts them) and the torch backends' (Hugging Face folders, big-lama.pt)."""
    from core.models.catalog import CATALOG
    from tests.onnx_models import install_catalog_models, onnx_models
    from tests.tiny_models import make_tiny_depth_model, make_tiny_lama
    from tests.tiny_models.sam import make_tiny_sam

    folder = tmp_path_factory.mktemp("models")
    make_tiny_depth_model(folder / TORCH_DEPTH_MODEL.replace("/", "--"))
    make_tiny_sam(folder / TORCH_SAM_MODEL.replace("/", "--"))
    make_tiny_lama(folder / TORCH_LAMA_MODEL)
    install_catalog_models(folder, onnx_models(tmp_path_factory))
    assert {str(p.relative_to(folder)) for p in folder.rglob("*.onnx")} == {
        item.path for model in CATALOG for item in model.files
    }
    return folder


# Blender's user folder (extensions, preferences) for the whole run: set before anything imports bpy, so
# installing the extension never touches the real ~/.config/blender.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="photo3d-blender-user-"))


@pytest.fixture(scope="session")
def photo3d_extension(tmp_path_factory):
    """The extension built into a zip, installed and enabled through Blender's extension machinery.

    Its worker runs with this test run's Python, which has the worker's packages.
    """
    pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")
    import bpy

    from tests.blender_support import EXTENSION, build_zip, install_extension

    zip_path = build_zip(tmp_path_factory.mktemp("dist"))
    module = install_extension(zip_path)
    prefs = bpy.context.preferences.addons[EXTENSION].preferences
    prefs.worker_python = sys.executable
    prefs.packages_dir = str(tmp_path_factory.mktemp("packages"))
    yield module
    from tests.blender_support import addon_module

    addon_module("photo3d_addon.worker.client").stop_shared_worker()

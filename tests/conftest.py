"""Session fixtures: tiny random models of the real architectures, laid out as a user's models folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.options import DEFAULT_DEPTH_MODEL, DEFAULT_SAM_MODEL

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
    """A models folder holding tiny depth, SAM and big-lama-interface models under the default names."""
    from tests.tiny_models import make_tiny_depth_model, make_tiny_lama
    from tests.tiny_models.sam import make_tiny_sam

    folder = tmp_path_factory.mktemp("models")
    make_tiny_depth_model(folder / DEFAULT_DEPTH_MODEL.replace("/", "--"))
    make_tiny_sam(folder / DEFAULT_SAM_MODEL.replace("/", "--"))
    make_tiny_lama(folder / "big-lama.pt")
    return folder

"""Where weights are looked up, device choice, and the warm model cache."""

from __future__ import annotations

import os

import huggingface_hub.constants
import pytest
import torch

from core.errors import InputError, ModelError
from core.models import (
    ModelCache,
    resolve_device,
    resolve_model_source,
    resolve_weights_file,
    shared_cache,
)

MODEL_ID = "owner/tiny-depth"


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Point the Hugging Face and torch hub caches at empty folders so the user's caches never leak in."""
    hf_cache = tmp_path / "hf-cache"
    hf_cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return hf_cache


def _fake_hf_snapshot(cache, model_id: str) -> str:
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    (snapshot / "config.json").write_text("{}")
    return str(snapshot)


def test_auto_device_follows_cuda_availability():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_cuda_without_gpu_is_a_model_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="cuda"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_unknown_device_is_an_input_error():
    with pytest.raises(InputError, match="tpu"):
        resolve_device("tpu")


def test_explicit_folder_wins(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    models_dir = tmp_path / "models"
    (models_dir / "my-model").mkdir(parents=True)
    assert resolve_model_source(str(folder), str(models_dir), True, "depth model") == str(folder)


def test_missing_explicit_path_is_named(tmp_path):
    missing = str(tmp_path / "nowhere" / "model")
    with pytest.raises(ModelError, match="model folder not found: " + missing):
        resolve_model_source(missing, None, True, "depth model")
    with pytest.raises(ModelError, match="folder not found: ./relative-model"):
        resolve_model_source("./relative-model", None, False, "depth model")


def test_explicit_file_is_refused(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelError, match="model folder is expected"):
        resolve_model_source(str(file), None, True, "depth model")


@pytest.mark.parametrize("name", ["owner--tiny-depth", "tiny-depth", os.path.join("owner", "tiny-depth")])
def test_models_dir_naming(tmp_path, name):
    models_dir = tmp_path / "models"
    (models_dir / name).mkdir(parents=True)
    found = resolve_model_source(MODEL_ID, str(models_dir), True, "depth model")
    assert found == str(models_dir / name)


def test_dashed_name_is_preferred_over_last_part(tmp_path):
    models_dir = tmp_path / "models"
    (models_dir / "owner--tiny-depth").mkdir(parents=True)
    (models_dir / "tiny-depth").mkdir()
    assert resolve_model_source(MODEL_ID, str(models_dir), True, "m") == str(models_dir / "owner--tiny-depth")


def test_hugging_face_cache_is_used_offline(isolated_caches, tmp_path):
    snapshot = _fake_hf_snapshot(isolated_caches, MODEL_ID)
    assert resolve_model_source(MODEL_ID, str(tmp_path / "models"), True, "depth model") == snapshot


def test_models_dir_wins_over_hf_cache(isolated_caches, tmp_path):
    _fake_hf_snapshot(isolated_caches, MODEL_ID)
    models_dir = tmp_path / "models"
    (models_dir / "tiny-depth").mkdir(parents=True)
    assert resolve_model_source(MODEL_ID, str(models_dir), True, "m") == str(models_dir / "tiny-depth")


def test_online_returns_the_hub_id(tmp_path):
    assert resolve_model_source(MODEL_ID, str(tmp_path), False, "depth model") == MODEL_ID


def test_missing_offline_names_id_folder_and_command(tmp_path):
    models_dir = tmp_path / "models"
    with pytest.raises(ModelError) as info:
        resolve_model_source(MODEL_ID, str(models_dir), True, "depth model")
    message = str(info.value)
    assert MODEL_ID in message
    assert str(models_dir / "owner--tiny-depth") in message
    assert f"hf download {MODEL_ID} --local-dir {models_dir / 'owner--tiny-depth'}" in message
    assert "--online" in message


def test_missing_offline_without_models_dir_still_says_where():
    with pytest.raises(ModelError, match="MODELS_DIR"):
        resolve_model_source(MODEL_ID, None, True, "depth model")


def test_weights_file_lookup(tmp_path):
    explicit = tmp_path / "elsewhere" / "big-lama.pt"
    explicit.parent.mkdir()
    explicit.write_bytes(b"x")
    assert resolve_weights_file(str(explicit), None) == str(explicit)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "big-lama.pt").write_bytes(b"x")
    assert resolve_weights_file("big-lama.pt", str(models_dir)) == str(models_dir / "big-lama.pt")


def test_weights_file_in_torch_hub_cache(tmp_path):
    checkpoints = tmp_path / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "big-lama.pt").write_bytes(b"x")
    assert resolve_weights_file("big-lama.pt", None) == str(checkpoints / "big-lama.pt")


def test_missing_weights_file_names_file_and_place(tmp_path):
    models_dir = tmp_path / "models"
    with pytest.raises(ModelError) as info:
        resolve_weights_file("big-lama.pt", str(models_dir))
    message = str(info.value)
    assert "big-lama.pt" in message
    assert str(models_dir / "big-lama.pt") in message
    assert "simple-lama-inpainting" in message


def test_cache_loads_once_and_clears():
    cache = ModelCache()
    calls = []

    def loader():
        calls.append(1)
        return object()

    first = cache.get(("depth", "a", "cpu"), loader)
    assert cache.get(("depth", "a", "cpu"), loader) is first
    assert len(calls) == 1
    assert cache.get(("depth", "b", "cpu"), loader) is not first
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0
    assert cache.get(("depth", "a", "cpu"), loader) is not first


def test_empty_cache_is_truthy():
    cache = ModelCache()
    assert (cache or ModelCache()) is cache


def test_shared_cache_is_one_object():
    assert shared_cache() is shared_cache()

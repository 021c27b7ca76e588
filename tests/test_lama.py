"""big-lama wrapper: padding, batching and keeping known pixels, with a tiny TorchScript stand-in."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core.errors import InputError, ModelError
from core.models import resolve_weights_file
from core.models.lama import load_lama, run_lama
from tests.tiny_models import make_tiny_lama


@pytest.fixture(scope="module")
def tiny_lama_path(tmp_path_factory):
    return make_tiny_lama(tmp_path_factory.mktemp("models") / "big-lama.pt")


@pytest.fixture(scope="module")
def tiny_lama(tiny_lama_path):
    return load_lama(str(tiny_lama_path), "cpu")


def _batch(count: int, height: int, width: int):
    rng = np.random.default_rng(0)
    images = rng.random((count, height, width, 3), dtype=np.float32)
    masks = np.zeros((count, height, width), dtype=bool)
    for i in range(count):
        masks[i, height // 4 : height // 2 + i, width // 3 : width // 2 + i] = True
    return images, masks


@pytest.mark.parametrize("size", [(37, 53), (8, 16), (5, 3), (1, 9)])
def test_output_shape_for_any_size(tiny_lama, size):
    images, masks = _batch(3, *size)
    masks[:, 0, 0] = True
    out = run_lama(tiny_lama, images, masks, "cpu")
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_known_pixels_are_kept_exactly(tiny_lama):
    images, masks = _batch(3, 37, 53)
    out = run_lama(tiny_lama, images, masks, "cpu")
    np.testing.assert_array_equal(out[~masks], images[~masks])
    # Masked pixels come from the network, which never reproduces the random input.
    assert not np.allclose(out[masks], images[masks])


def test_batched_equals_one_by_one(tiny_lama):
    images, masks = _batch(3, 24, 40)
    together = run_lama(tiny_lama, images, masks, "cpu")
    apart = run_lama(tiny_lama, images, masks, "cpu", batch_size=1)
    np.testing.assert_allclose(together, apart, atol=1e-6)


def test_no_holes_returns_input(tiny_lama):
    images, _ = _batch(2, 16, 16)
    out = run_lama(tiny_lama, images, np.zeros((2, 16, 16), bool), "cpu")
    np.testing.assert_array_equal(out, images)


def test_shape_mismatch_is_an_input_error(tiny_lama):
    images, masks = _batch(2, 16, 16)
    with pytest.raises(InputError, match="masks"):
        run_lama(tiny_lama, images, masks[:, :8], "cpu")


def test_missing_big_lama_names_the_file(tmp_path):
    models_dir = tmp_path / "models"
    with pytest.raises(ModelError, match=re.escape(str(models_dir / "big-lama.pt"))):
        resolve_weights_file("big-lama.pt", str(models_dir))
    missing = str(tmp_path / "big-lama.pt")
    with pytest.raises(ModelError, match=re.escape(missing)):
        load_lama(missing, "cpu")


def test_not_torchscript_is_a_model_error(tmp_path):
    bogus = tmp_path / "big-lama.pt"
    bogus.write_bytes(b"this is not a TorchScript archive")
    with pytest.raises(ModelError, match="TorchScript"):
        load_lama(str(bogus), "cpu")

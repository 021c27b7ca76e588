"""Integration on the real Middlebury Motorcycle photo with its ground-truth depth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.geometry import composite_back_to_front
from core.options import PipelineOptions
from core.package import read_package
from core.pipeline import convert_image

ROOT = Path(__file__).resolve().parents[1]


def _example_module():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "scripts" / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def motorcycle(tmp_path_factory):
    from skimage.data import stereo_motorcycle

    example = _example_module()
    left, _, disparity = stereo_motorcycle()
    folder = tmp_path_factory.mktemp("motorcycle")
    Image.fromarray(left).save(folder / "left.png")
    np.save(folder / "depth.npy", example.motorcycle_depth(disparity))
    return left, folder / "left.png", folder / "depth.npy", example.FOCAL_PX


@pytest.mark.parametrize("representation", ["mesh", "mpi"])
def test_motorcycle_layers(motorcycle, tmp_path, representation):
    left, image, depth, focal = motorcycle
    options = PipelineOptions.from_dict(
        {
            "load": {"focal_px": focal},
            "depth": {"depth_file": str(depth)},
            "segment": {"model": "none"},
            "geometry": {"representation": representation},
        }
    )
    result = convert_image(image, tmp_path / "pkg", options)
    package = read_package(result.package_path)
    layers = package.layers
    total = left.shape[0] * left.shape[1]
    if representation == "mesh":
        assert 2 <= len(layers) <= PipelineOptions().layers.max_layers
        medians = [layer.median_depth for layer in layers]
        assert medians == sorted(medians, reverse=True)  # back to front
        for layer in layers:
            assert layer.pixel_count > 0.01 * total
            mesh = package.load_mesh(layer)
            assert 100 < len(mesh["faces"]) <= 10_000
            # Vertices lie in front of the camera within the ground-truth depth range (about 2-5 m).
            z = -mesh["vertices"][:, 2]
            assert z.min() > 1.5 and z.max() < 6.0
        assert layers[0].inpainted_fraction > 0.1
        # Nothing hides the nearest layer: what it has filled is only its border past the photo's edges.
        nearest = layers[-1]
        assert nearest.inpainted_fraction == 0.0 if nearest.border is None else 0.0 < nearest.inpainted_fraction < 0.5
    else:
        planes = [layer.plane_depth for layer in layers]
        assert planes == sorted(planes, reverse=True) and len(planes) <= 32
    assert package.manifest.camera.focal_px == pytest.approx(focal)
    textures = [np.asarray(Image.open(package.path_of(layer.texture))).astype(np.float32) / 255 for layer in layers]
    textures = [package.in_frame(layer, texture) for layer, texture in zip(layers, textures, strict=True)]
    assert textures[0].shape == (*left.shape[:2], 4)
    composite = composite_back_to_front(textures) * 255
    mse = np.mean((composite - left.astype(np.float32)) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 40.0

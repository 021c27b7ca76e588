"""The whole pipeline on synthetic scenes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import Cancelled
from core.geometry import composite_back_to_front
from core.options import PipelineOptions
from core.package import read_package
from core.pipeline import compute_layers, convert_image
from core.progress import STAGES, CancelToken, Progress
from tests.scenes import square_scene


def _options(depth_file, **sections) -> PipelineOptions:
    data = {
        "depth": {"depth_file": str(depth_file), "depth_kind": "depth"},
        "segment": {"model": "none"},
        "inpaint": {"method": "telea"},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return PipelineOptions.from_dict(data)


@pytest.fixture
def square(tmp_path):
    scene = square_scene()
    image, depth = scene.write(tmp_path / "input")
    return scene, image, depth


def test_square_in_front_of_wall_gives_two_layers(square):
    scene, image, depth = square
    result = compute_layers(image, _options(depth))
    assert len(result.layers) == 2
    bordered, block = result.fills
    assert np.array_equal(result.layers[1].mask, scene.square)
    assert np.array_equal(result.layers[0].mask, ~scene.square)
    # The wall reaches 8 % of the width past each edge (the default border), wholly filled there at its
    # own depth, and its colour is the wall's mirrored.
    border = round(0.08 * scene.rgb.shape[1])
    h, w = scene.square.shape
    assert bordered.border == border and bordered.extent.shape == (h + 2 * border, w + 2 * border)
    assert bordered.extent.all() and bordered.hole.sum() == bordered.hole.size - (~scene.square).sum()
    assert np.allclose(bordered.depth, scene.far, rtol=1e-3)
    np.testing.assert_array_equal(bordered.rgb[border - 1, border:-border], bordered.rgb[border, border:-border])
    assert block.border == 0
    wall = bordered.frame()
    # The wall's hole is filled exactly behind the square, and the wall is opaque everywhere.
    assert np.array_equal(wall.hole, scene.square)
    assert wall.extent.all()
    assert not block.hole.any()
    assert np.allclose(wall.depth, scene.far, rtol=1e-3)
    assert np.allclose(block.depth[scene.square], scene.near, rtol=1e-3)
    # Filled colour continues the wall (blue-green), not the orange square.
    filled = wall.rgb[scene.square]
    assert filled[:, 2].mean() > filled[:, 0].mean() + 0.2


def test_package_round_trips_and_reproduces_the_photo(square, tmp_path):
    scene, image, depth = square
    stages = []
    progress = Progress(callback=lambda stage, fraction, message: stages.append(stage))
    result = convert_image(image, tmp_path / "pkg", _options(depth), progress)
    package = read_package(result.package_path)
    assert package.representation == "mesh"
    assert [layer.name for layer in package.layers] == ["layer_00", "layer_01"]
    border = package.layers[0].border
    h, w = scene.square.shape
    assert border == 16 >= round(0.08 * w) and package.layers[1].border is None  # on the mipmaps' 16 px grid
    work_border = round(0.08 * w)  # the fill's, at the working resolution (here the photo's)
    framed = (h + 2 * work_border) * (w + 2 * work_border)
    assert package.layers[0].inpainted_fraction == pytest.approx(1 - (~scene.square).sum() / framed, abs=1e-6)
    assert package.layers[0].depth_range == pytest.approx((scene.far, scene.far), rel=1e-3)
    # Stages report in pipeline order and every one is timed.
    seen = list(dict.fromkeys(stages))
    assert seen == list(STAGES)
    assert set(package.manifest.timings) == set(STAGES)
    for layer in package.layers:
        mesh = package.load_mesh(layer)
        assert 0 < len(mesh["faces"]) <= 10_000
    # Layers composited back to front reproduce the photo exactly.
    from PIL import Image

    textures = [np.asarray(Image.open(package.path_of(layer.texture))) for layer in package.layers]
    assert textures[0].shape == (h + 2 * border, w + 2 * border, 4) and textures[1].shape == (h, w, 4)
    framed_textures = [package.in_frame(layer, t) for layer, t in zip(package.layers, textures, strict=True)]
    rgba = [t.astype(np.float32) / 255 for t in framed_textures]
    composite = composite_back_to_front(rgba)
    assert np.abs(composite * 255 - scene.rgb).max() <= 1.0
    # Past the photo's edges the backdrop is the photo mirrored, opaque.
    np.testing.assert_array_equal(textures[0][border - 1, border:-border], textures[0][border, border:-border])
    assert (textures[0][..., 3] == 255).all()
    assert (result.package_path / "contact_sheet.png").is_file()


def test_mpi_composite_reproduces_the_photo(square, tmp_path):
    scene, image, depth = square
    options = _options(depth, geometry={"representation": "mpi", "mpi_planes": 32})
    result = convert_image(image, tmp_path / "mpi", options)
    package = read_package(result.package_path)
    assert package.representation == "mpi"
    assert len(package.layers) <= 32
    depths = [layer.plane_depth for layer in package.layers]
    assert depths == sorted(depths, reverse=True)  # back to front
    from PIL import Image

    rgba = [np.asarray(Image.open(package.path_of(layer.texture))).astype(np.float32) / 255 for layer in package.layers]
    composite = composite_back_to_front(rgba)
    assert np.abs(composite * 255 - scene.rgb).max() <= 2.0


def test_cancel_leaves_no_package(square, tmp_path):
    scene, image, depth = square
    token = CancelToken()

    def cancel_at_inpaint(stage, fraction, message):
        if stage == "inpaint":
            token.cancel()

    with pytest.raises(Cancelled):
        convert_image(image, tmp_path / "out", _options(depth), Progress(cancel_at_inpaint, token))
    assert list(tmp_path.iterdir()) == [tmp_path / "input"]


def test_a_supplied_depth_file_is_only_nudged_by_harmonize():
    from core.options import PipelineOptions
    from core.pipeline import _harmonize_options

    model = PipelineOptions()
    assert _harmonize_options(model) == model.harmonize  # model depth: full snapping to masks
    supplied = PipelineOptions.from_dict({"depth": {"depth_file": "d.npy"}})
    trusted = _harmonize_options(supplied)
    assert (trusted.data_weight_interior, trusted.data_weight_edge, trusted.boundary_weight) == (4.0, 2.0, 0.5)
    untrusted = PipelineOptions.from_dict({"depth": {"depth_file": "d.npy"}, "harmonize": {"trust_depth_file": False}})
    assert _harmonize_options(untrusted) == untrusted.harmonize

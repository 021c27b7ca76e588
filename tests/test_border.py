"""The border past the photo's edges: layers the frame cuts go on past it, their meshes and textures line
up, the manifest carries it (format 1.1) and camera paths need no zoom for the moves it covers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.camera import Camera
from core.errors import PackageError
from core.geometry import build_layer_mesh, rebase_uvs
from core.inpaint import LayerFill, add_border, touches_frame
from core.options import PipelineOptions
from core.package import parse_manifest
from core.pipeline import compute_layers
from core.textures import layer_rgba, texture_border
from tests.manifests import manifest_dict
from tests.pure_addon import addon
from tests.scenes import square_scene

cp = addon("motion.paths")


def test_the_extended_camera_has_the_same_rays():
    camera = Camera(64, 48, 50.0, 30.5, 25.0)
    grown = camera.extended(6)
    assert (grown.width, grown.height) == (76, 60)
    u, v, z = np.array([0.0, 17.25, 64.0]), np.array([0.0, 3.5, 48.0]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(grown.unproject(u + 6, v + 6, z), camera.unproject(u, v, z))


def _fill(extent: np.ndarray, depth: float = 4.0) -> LayerFill:
    h, w = extent.shape
    rgb = np.random.default_rng(1).random((h, w, 3)).astype(np.float32)
    return LayerFill(extent=extent, hole=np.zeros_like(extent), rgb=rgb, depth=np.full((h, w), depth, np.float32))


def test_a_layer_the_frame_cuts_goes_on_straight_past_it():
    extent = np.zeros((20, 30), bool)
    extent[5:12, :8] = True  # meets the left edge in rows 5..11
    assert touches_frame(extent) and not touches_frame(np.pad(np.ones((4, 4), bool), 3))
    grown = add_border(_fill(extent), 4, backdrop=False)
    assert grown.border == 4 and grown.extent.shape == (28, 38)
    np.testing.assert_array_equal(grown.frame().extent, extent)
    # Left of the photo the layer's edge rows repeat outwards; nothing appears where it did not meet the edge.
    past = grown.extent[:, :4]
    assert past[4 + 5 : 4 + 12].all() and past.sum() == 4 * 7
    assert grown.hole[:, :4].sum() == 4 * 7 and not grown.frame().hole.any()
    np.testing.assert_allclose(grown.depth[grown.extent], 4.0)
    # Colour mirrors the photo at the edge.
    np.testing.assert_array_equal(grown.rgb[4:-4, 3], grown.rgb[4:-4, 4])
    backdrop = add_border(_fill(np.ones((20, 30), bool)), 4, backdrop=True)
    assert backdrop.extent.all() and backdrop.hole.sum() == 28 * 38 - 20 * 30


@pytest.mark.parametrize("scale", [1, 2])
def test_mesh_uvs_point_at_the_same_photo_pixel_in_the_grown_texture(scale):
    work = Camera(30, 20, 40.0, 15.0, 10.0)
    source = (20 * scale, 30 * scale)
    border = 4
    pad = texture_border(border, (20, 30), source)
    assert pad == 16 and pad >= border * scale  # at least as far, on the mipmaps' 16 px grid
    fill = add_border(_fill(np.ones((20, 30), bool)), border, backdrop=True)
    mesh = build_layer_mesh(fill.extent, fill.depth, work.extended(border), 1000)
    rebased = rebase_uvs(mesh, fill.extent.shape, border, source, pad)
    # Each vertex, projected by the photo's working camera, is photo pixel (u, v); its UV must be that pixel
    # in the texture, which starts ``pad`` source pixels before the photo.
    uv = work.project(mesh.vertices.astype(np.float64))
    expected_u = (uv[:, 0] * scale + pad) / (source[1] + 2 * pad)
    expected_v = 1.0 - (uv[:, 1] * scale + pad) / (source[0] + 2 * pad)
    np.testing.assert_allclose(rebased.uvs[:, 0], expected_u, atol=1e-5)
    np.testing.assert_allclose(rebased.uvs[:, 1], expected_v, atol=1e-5)
    assert rebased.uvs.min() >= 0.0 and rebased.uvs.max() <= 1.0


def test_the_grown_texture_is_the_photo_mirrored_with_the_coverage_repeated():
    extent = np.zeros((20, 30), bool)
    extent[:, 20:] = True  # meets the top, bottom and right edges
    fill = add_border(_fill(extent), 3, backdrop=False)
    photo = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    rgba = layer_rgba(photo, None, extent, fill)
    pad = 16  # 3 working pixels at twice the working resolution, rounded up to the mipmaps' grid
    assert rgba.shape == (40 + 2 * pad, 60 + 2 * pad, 4)
    np.testing.assert_array_equal(rgba[pad:-pad, pad:-pad, :3], photo)
    np.testing.assert_array_equal(rgba[pad:-pad, pad - 1, :3], photo[:, 0])  # mirrored at the left edge
    np.testing.assert_array_equal(rgba[pad:-pad, pad - 3, :3], photo[:, 2])
    np.testing.assert_array_equal(rgba[:, -pad:, 3], 255)  # covered past the right edge
    np.testing.assert_array_equal(rgba[0, :, 3], rgba[pad, :, 3])  # the top row's coverage repeated upwards
    assert (rgba[pad:-pad, :pad, 3] == 0).all()  # and nothing past the left edge, which it never met


def test_no_border_for_mpi_photos_with_transparency_or_when_turned_off(tmp_path):
    scene = square_scene()
    image, depth = scene.write(tmp_path / "input")
    base = {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}}
    default = compute_layers(image, PipelineOptions.from_dict(base))
    assert default.fills[0].border == round(0.08 * scene.rgb.shape[1])
    off = compute_layers(image, PipelineOptions.from_dict({**base, "inpaint": {"border_fraction": 0.0}}))
    mpi = compute_layers(image, PipelineOptions.from_dict({**base, "geometry": {"representation": "mpi"}}))
    assert all(fill.border == 0 for fill in off.fills + mpi.fills)
    rgba = np.dstack([scene.rgb, np.full(scene.rgb.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "cut out.png")
    cut_out = compute_layers(tmp_path / "cut out.png", PipelineOptions.from_dict(base))
    assert all(fill.border == 0 for fill in cut_out.fills)


def test_the_manifest_reads_a_border_and_refuses_one_it_cannot_mean():
    data = manifest_dict(layer_ranges=[(4.0, 6.0), (2.0, 3.0)])
    data["version"] = "1.1"
    data["layers"][0]["border"] = 51
    data["layers"][1]["border"] = 20
    manifest = parse_manifest(data)
    assert manifest.texture_size(manifest.layers[0]) == (640 + 102, 480 + 102)
    assert manifest.texture_size(manifest.layers[1]) == (680, 520) and manifest.texture_size() == (640, 480)
    data["layers"][0]["border"] = 322  # more than half the longest side
    with pytest.raises(PackageError, match=r"layers\[0\]\.border"):
        parse_manifest(data)
    data["layers"][0]["border"] = 0
    assert parse_manifest(data).layers[0].border == 0
    data["version"] = "1.2"
    with pytest.raises(PackageError, match="newer than this reader"):
        parse_manifest(data)


def test_overscan_zooms_only_past_the_border():
    info = cp.SceneInfo(width=741, height=500, focal_px=994.978, depth_min=2.04, depth_max=5.28, border_depth=3.8)
    swing = cp.camera_path(cp.PathSettings("SWING_H", loop=True), info)
    assert cp.cover_scale(swing, info) > 1.01  # the bare photo's edge comes into view
    reveal = max(abs(p.location[0]) for p in swing) * info.focal_px / info.border_depth
    covered = cp.SceneInfo(**{**info.__dict__, "border_px": int(np.ceil(reveal)) + 1})
    assert cp.cover_scale(swing, covered) == pytest.approx(1.0)
    narrow = cp.SceneInfo(**{**info.__dict__, "border_px": int(reveal / 2)})
    assert 1.0 < cp.cover_scale(swing, narrow) < cp.cover_scale(swing, info)
    data = manifest_dict(layer_ranges=[(4.0, 6.0)])
    data["version"], data["layers"][0]["border"] = "1.1", 59
    assert cp.SceneInfo.from_manifest(parse_manifest(data)).border_px == 59

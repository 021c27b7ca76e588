"""Blender tier: the photo's own camera renders the photo, and a camera moved sideways sees the layers' border
past the photo's edge (``inpaint.border_fraction``), not the empty world."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from tests.blender_support import EEVEE, addon_module, reset_scene  # noqa: E402
from tests.scenes import write_motorcycle  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = (370, 250)
"""Half the Motorcycle photo each way; the photo is this size, so its camera renders it pixel for pixel."""


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("border")
    image, depth = write_motorcycle(folder / "full.png", folder / "depth.npy")
    half = cv2.resize(cv2.imread(str(image)), SIZE, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "photo.png"), half)
    return folder, folder / "photo.png", depth, half[..., ::-1].copy()


def _package(photo, name: str, border_fraction: float | None = None):
    from core.options import PipelineOptions
    from core.pipeline import convert_image

    folder, image, depth, _ = photo
    inpaint = {"method": "telea"}
    if border_fraction is not None:
        inpaint["border_fraction"] = border_fraction
    options = PipelineOptions.from_dict(
        {
            "load": {"work_size": max(SIZE)},
            "depth": {"depth_file": str(depth)},
            "segment": {"model": "none"},
            "inpaint": inpaint,
        }
    )
    return convert_image(image, folder / name, options).package_path


def _render(package_dir, out, shift_px: float = 0.0) -> np.ndarray:
    """Build the package's scene, move the camera sideways so the nearest content shifts by ``shift_px``
    photo pixels, render with a transparent film; returns RGBA uint8."""
    reset_scene()
    package = addon_module("core.package").read_package(package_dir)
    addon_module("photo3d_addon.scene.builder").build_scene(package, bpy.context.scene)
    scene = bpy.context.scene
    manifest = package.manifest
    scene.camera.location.x = shift_px * manifest.depth.min / manifest.camera.focal_px
    render = scene.render
    render.engine = EEVEE
    scene.eevee.taa_render_samples = 1
    render.resolution_x, render.resolution_y = SIZE
    render.resolution_percentage = 100
    render.dither_intensity = 0.0
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.filepath = str(out)
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"  # llvmpipe mis-samples with it
    bpy.ops.render.render(write_still=True)
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)


def test_the_photos_own_camera_renders_the_photo(photo3d_extension, photo, tmp_path):
    package = _package(photo, "own view")
    rgba = _render(package, tmp_path / "own.png")
    assert (rgba[..., 3] == 255).all()
    error = rgba[..., :3].astype(np.float64) - photo[3].astype(np.float64)
    psnr = 10 * np.log10(255.0**2 / np.mean(error**2))
    assert psnr >= 35.0, psnr


def test_a_sideways_move_sees_the_border_not_the_empty_world(photo3d_extension, photo, tmp_path):
    # The nearest content moves 15 px: half of the default border (8 % of 370 px), and past the photo's edge
    # for everything behind it.
    bordered = _render(_package(photo, "bordered"), tmp_path / "bordered.png", shift_px=15.0)
    assert (bordered[..., 3] == 255).all()
    # Without a border the same move shows the world in a strip along the edge the camera moves towards.
    bare = _render(_package(photo, "bare", border_fraction=0.0), tmp_path / "bare.png", shift_px=15.0)
    empty_columns = np.flatnonzero((bare[..., 3] < 255).any(axis=0))
    assert len(empty_columns) >= 3 and empty_columns.min() >= SIZE[0] - 20

"""Blender tier: the sidebar's operators (camera path, clear, render) on an imported photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from scripts.make_example import motorcycle_depth  # noqa: E402
from tests.blender_support import reset_scene  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def imported(photo3d_extension, tmp_path_factory):
    from skimage.data import stereo_motorcycle

    folder = tmp_path_factory.mktemp("panel")
    left, _, disparity = stereo_motorcycle()
    Image.fromarray(left).save(folder / "moto.png")
    np.save(folder / "moto.npy", motorcycle_depth(disparity))
    reset_scene()
    result = bpy.ops.photo3d.import_image(
        filepath=str(folder / "moto.png"), depth_source="FILE", depth_file=str(folder / "moto.npy"),
        segmentation=False, quality="DRAFT",
    )  # fmt: skip
    assert result == {"FINISHED"}
    yield bpy.context.scene
    reset_scene()


def test_apply_then_clear_camera_path(imported):
    settings = imported.photo3d
    settings.path_preset, settings.duration, settings.loop = "DOLLY", 24, False
    assert bpy.ops.photo3d.apply_camera_path() == {"FINISHED"}
    camera = imported.camera
    assert camera["photo3d_path"] == "DOLLY"
    imported.frame_set(imported.frame_start)
    start = camera.matrix_world.translation.copy()
    imported.frame_set(imported.frame_start + 23)
    end = camera.matrix_world.translation.copy()
    # The rig faces +Y (the photo's view axis): a dolly moves the camera into the scene along +Y only.
    assert end.y - start.y > 0.01 and abs(end.x - start.x) < 1e-4 and abs(end.z - start.z) < 1e-4
    assert bpy.ops.photo3d.clear_camera_path() == {"FINISHED"}
    assert "photo3d_path" not in camera
    imported.frame_set(imported.frame_start + 23)
    assert tuple(camera.location) == (0.0, 0.0, 0.0)


def test_a_missing_pivot_layer_is_named(imported):
    imported.photo3d.pivot_layer = 42
    try:
        with pytest.raises(RuntimeError, match="no layer 42"):
            bpy.ops.photo3d.apply_camera_path()
    finally:
        imported.photo3d.pivot_layer = -1


def test_render_still_writes_the_frame(imported, tmp_path):
    settings = imported.photo3d
    settings.output, settings.quality, settings.filepath = "PNG", "PREVIEW", str(tmp_path / "still_")
    settings.motion_blur = False
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"  # llvmpipe: see blender_support
    frame_range = (imported.frame_start, imported.frame_end)
    assert bpy.ops.photo3d.render(still=True) == {"FINISHED"}
    assert (imported.frame_start, imported.frame_end) == frame_range
    (frame,) = list(Path(tmp_path).glob("still_*.png"))
    pixels = np.asarray(Image.open(frame).convert("RGB"))
    assert pixels.shape == (250, 370, 3) and pixels.std() > 20

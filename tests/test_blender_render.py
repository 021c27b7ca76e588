"""Blender tier: render settings presets, PNG frame sequences and H.264 video from a Photo3D scene."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from core.options import PipelineOptions  # noqa: E402
from core.pipeline import convert_image  # noqa: E402
from tests.blender_support import EXTENSION, addon_module, reset_scene  # noqa: E402
from tests.scenes import square_scene  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture
def square(photo3d_extension, tmp_path):
    """A square in front of a wall, imported with the scene builder into an empty file."""
    reset_scene()
    image, depth = square_scene().write(tmp_path / "in")
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    package = importlib.import_module(f"{EXTENSION}.core.package").read_package(
        convert_image(image, tmp_path / "pkg", options).package_path
    )
    addon_module("photo3d_addon.scene.builder").build_scene(package, bpy.context.scene)
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"  # llvmpipe: see blender_support
    yield bpy.context.scene
    reset_scene()


def _settings(**kw):
    return addon_module("photo3d_addon.render.settings").RenderSettings(**kw)


def test_presets_set_engine_size_quality_and_rate(square):
    rs = addon_module("photo3d_addon.render.settings")
    rs.apply_render_settings(square, _settings(resolution="FULL_HD", fps=30, quality="PREVIEW", motion_blur=False))
    assert square.render.engine == rs.eevee_engine_id() == "BLENDER_EEVEE_NEXT"
    assert (square.render.resolution_x, square.render.resolution_y) == (1920, 1080)
    assert rs.output_size(square) == (960, 540)
    assert square.render.fps == 30 and square.eevee.taa_render_samples == rs.QUALITY["PREVIEW"][0]
    assert not square.render.use_motion_blur
    assert square.render.image_settings.file_format == "FFMPEG" and square.render.ffmpeg.codec == "H264"
    # The photo's own size stays when the preset is PHOTO.
    square.render.resolution_x, square.render.resolution_y = 128, 96
    rs.apply_render_settings(square, _settings(resolution="PHOTO", quality="FINAL", output="PNG"))
    assert (square.render.resolution_x, square.render.resolution_y) == (128, 96)
    assert square.render.resolution_percentage == 100 and square.render.image_settings.file_format == "PNG"


@pytest.mark.parametrize(
    ("change", "message"),
    [({"resolution": "8K"}, "resolution"), ({"quality": "ULTRA"}, "quality"), ({"output": "GIF"}, "output")],
)
def test_bad_settings_are_named(square, change, message):
    rs = addon_module("photo3d_addon.render.settings")
    with pytest.raises(rs.RenderError, match=message):
        rs.apply_render_settings(square, _settings(**change))


def test_png_sequence_reports_every_frame(square, tmp_path):
    rs = addon_module("photo3d_addon.render.settings")
    rs.apply_render_settings(
        square,
        _settings(output="PNG", frame_start=1, frame_end=3, filepath=str(tmp_path / "frames" / "f_")),
    )
    square.eevee.taa_render_samples = 1
    seen = []
    files = rs.render_frames(square, on_frame=lambda frame, done, total: seen.append((frame, done, total)))
    assert seen == [(1, 1, 3), (2, 2, 3), (3, 3, 3)]
    assert [f.name for f in files] == ["f_0001.png", "f_0002.png", "f_0003.png"]
    frame = np.asarray(Image.open(files[0]))
    assert frame.shape[:2] == (96, 128)
    # The square (near layer) and the wall both show: the frame is not empty or flat.
    assert frame.std() > 10


def test_mp4_has_the_frames_and_size_asked_for(square, tmp_path):
    rs = addon_module("photo3d_addon.render.settings")
    rs.apply_render_settings(
        square, _settings(output="MP4", frame_start=1, frame_end=5, filepath=str(tmp_path / "clip_"))
    )
    square.eevee.taa_render_samples = 1
    seen = []
    (video,) = rs.render_frames(square, on_frame=lambda frame, done, total: seen.append(done))
    assert video.suffix == ".mp4" and video.stat().st_size > 0
    assert seen == [1, 2, 3, 4, 5]
    clip = bpy.data.movieclips.load(str(video))
    try:
        assert clip.frame_duration == 5
        assert tuple(clip.size) == (128, 96)
    finally:
        bpy.data.movieclips.remove(clip)


def test_mp4_refuses_an_odd_size(square, tmp_path):
    rs = addon_module("photo3d_addon.render.settings")
    rs.apply_render_settings(square, _settings(output="MP4", filepath=str(tmp_path / "odd_")))
    square.render.resolution_x = 127
    with pytest.raises(rs.RenderError, match="even width and height"):
        rs.render_frames(square)

"""Blender tier: a layered video package plays in Blender (the installed extension's video scene builder): the
layers move with their point caches, show their image sequences frame by frame, and each shot is seen only
over its own frames; a render of a frame from the footage's camera is the footage's frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from core.camera import STAGE_EULER, euler_matrix  # noqa: E402
from core.video.convert import convert_video  # noqa: E402
from tests.blender_support import EXTENSION, addon_module, psnr, render_camera, reset_scene  # noqa: E402
from tests.test_video_convert import H, W, _clip, _options  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture
def footage(photo3d_extension, tmp_path):
    """An 8-frame clip with a cut at frame 4, converted and built into an empty file from scene frame 1."""
    import importlib

    reset_scene()
    images, depths = _clip(tmp_path / "in", frames=8, cut_at=4, step=3)
    path = convert_video(images, tmp_path / "pkg", _options(depths))
    package = importlib.import_module(f"{EXTENSION}.core.video.package").read_video_package(path)
    collection = addon_module("photo3d_addon.scene.video_builder").build_video_scene(package, bpy.context.scene)
    yield package, collection, images
    reset_scene()


def _layer(collection, shot: int, layer: int):
    return next(o for o in collection.objects if o.get("photo3d_shot") == shot and o.get("photo3d_layer") == layer)


def test_the_layers_follow_their_point_caches(footage):
    package, collection, _ = footage
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 8)
    stage = euler_matrix(STAGE_EULER)
    for shot, frame in ((0, 0), (0, 3), (1, 4), (1, 7)):
        scene.frame_set(1 + frame)
        obj = _layer(collection, shot, 1)
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.to_mesh()
        try:
            local = np.empty(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", local)
        finally:
            evaluated.to_mesh_clear()
        world = np.asarray(obj.matrix_world) @ np.c_[local.reshape(-1, 3), np.ones(len(local) // 3)].T
        expected = stage @ package.points(shot, 1)[frame - package.manifest.shots[shot].first].T
        assert np.allclose(world[:3], expected, atol=1e-4), (shot, frame)


def test_each_shot_is_seen_only_over_its_frames(footage):
    _, collection, _ = footage
    scene = bpy.context.scene
    first, second = _layer(collection, 0, 1), _layer(collection, 1, 1)
    scene.frame_set(2)
    assert not first.hide_render and second.hide_render
    scene.frame_set(6)
    assert first.hide_render and not second.hide_render


def test_a_rendered_frame_is_the_footages_frame(footage, tmp_path):
    """From the footage's own camera, frame 1 and frame 7 render as the footage's frames (the square has moved,
    so a layer stuck on its first texture or points would fail)."""
    _, _, images = footage
    for frame in (1, 7):
        bpy.context.scene.frame_set(1 + frame)
        rendered = render_camera(tmp_path / f"f{frame}.png", W, H, samples=4)
        source = np.asarray(Image.open(images / f"frame_{frame:04d}.png").convert("RGB"))
        other = np.asarray(Image.open(images / f"frame_{frame - 1:04d}.png").convert("RGB"))
        assert psnr(rendered, source) > 28.0, frame
        assert psnr(rendered, source) > psnr(rendered, other) + 3.0, frame


def _mp4(images, path) -> None:
    """The clip's frames as an H.264 MP4 (PyAV), as a camera would hand them over."""
    import av

    frames = sorted(images.iterdir())
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "12"}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.asarray(Image.open(frame).convert("RGB")), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_the_batch_converts_and_renders_footage(tmp_path):
    """``photo3d CLIP.mp4 --depth FOLDER``: the worker makes a layered video package, the batch renders its
    frames from the footage's camera, and a record lists the package and the frames."""
    import json
    import os
    import subprocess
    import sys

    from tests.blender_support import ROOT

    images, depths = _clip(tmp_path / "in", frames=6, step=3)
    clip = tmp_path / "clip.mp4"
    _mp4(images, clip)
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), str(clip), "--out", str(out), "--depth",
         str(depths), "--no-segmentation", "--output", "PNG", "--no-blend", "--resolution", "PHOTO",
         "--quality", "FINAL", "--samples", "2"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PHOTO3D_WORKER_PYTHON=sys.executable),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "footage scene built (6 frames, 1 shots)" in run.stdout, run.stdout
    frames = sorted((out / "clip_frames").glob("*.png"))
    assert [f.name for f in frames] == [f"clip_{n:04d}.png" for n in range(1, 7)]
    for n in (0, 5):
        rendered = np.asarray(Image.open(frames[n]).convert("RGB"))
        source = np.asarray(Image.open(images / f"frame_{n:04d}.png").convert("RGB"))
        assert rendered.shape == source.shape and psnr(rendered, source) > 26.0, n
    record = json.loads((out / "items" / "clip.json").read_text())
    assert record["outputs"][0].startswith("packages/clip-") and len(record["outputs"]) == 7

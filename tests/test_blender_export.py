"""Blender tier: the comp export of an imported photo with an animated camera, read back.

The Nuke ``.chan`` is parsed back here; Alembic and FBX, written by Blender's exporters, are read back by
Blender's importers (no other reader of them installs here); USD and glTF are imported with Blender's own
importers into a fresh scene and rendered from the exported camera, against the original scene's render.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from tests.blender_support import addon_module, psnr, render_camera, reset_scene  # noqa: E402
from tests.scenes import write_motorcycle  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = (186, 125)
"""A quarter of the Motorcycle photo each way: small renders, still the real photo's layers."""
FRAMES = 9
ROUND_TRIP_DB = 30.0


@pytest.fixture(scope="module")
def package_dir(photo3d_extension, tmp_path_factory):
    from core.options import PipelineOptions
    from core.pipeline import convert_image

    folder = tmp_path_factory.mktemp("export")
    image, depth = write_motorcycle(folder / "full.png", folder / "depth.npy")
    small = cv2.resize(cv2.imread(str(image)), SIZE, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "photo.png"), small)
    options = PipelineOptions.from_dict(
        {"load": {"work_size": max(SIZE)}, "depth": {"depth_file": str(depth)}, "segment": {"model": "none"}}
    )
    return convert_image(folder / "photo.png", folder / "package", options).package_path


KEPT = (
    ("", "world"),
    ("render", "film_transparent"),
    ("eevee", "taa_render_samples"),
    ("", "frame_start"),
    ("", "frame_end"),
    ("render", "resolution_x"),
    ("render", "resolution_y"),
)
"""Scene settings these tests change, put back after each: the other Blender test files expect Blender's."""


@pytest.fixture(autouse=True)
def _scene_settings_kept():
    scene = bpy.context.scene
    owners = {"": scene, "render": scene.render, "eevee": scene.eevee}
    saved = [(owners[owner], name, getattr(owners[owner], name)) for owner, name in KEPT]
    yield
    for owner, name, value in saved:
        setattr(owner, name, value)
    scene.frame_set(scene.frame_start)


def _build(package_dir, preset: str | None = "ORBIT", **settings):
    """Import the package into an emptied scene and key a camera path; returns the PhotoScene."""
    reset_scene()
    package = addon_module("core.package").read_package(package_dir)
    photo = addon_module("photo3d_addon.scene.builder").build_scene(package, bpy.context.scene)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, FRAMES
    if preset is not None:
        paths = addon_module("photo3d_addon.motion.paths")
        keyframes = addon_module("photo3d_addon.motion.keyframes")
        path = paths.PathSettings(preset, duration_frames=FRAMES, easing="LINEAR", **settings)
        keyframes.apply_preset(photo, path, scene, frame_start=1)
    return photo


def _export(photo, out, formats):
    return addon_module("photo3d_addon.export.run").export_comp(photo, out, formats)


def _world_matrix(frame: int, obj) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    return np.array(obj.matrix_world.normalized(), np.float64)


def _zxy(rx: float, ry: float, rz: float) -> np.ndarray:
    """Nuke's ZXY order: Z applied first, then X, then Y (written independently of core.export.chan)."""
    a, b, c = (math.radians(v) for v in (rx, ry, rz))
    x = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    y = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    z = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return y @ x @ z


def test_the_chan_file_is_the_blender_camera_at_every_frame(package_dir, tmp_path):
    photo = _build(package_dir, "ORBIT")
    result = _export(photo, tmp_path / "comp", ["chan"])
    rows = [line.split() for line in (result.folder / "camera.chan").read_text().splitlines()]
    assert [int(row[0]) for row in rows] == list(range(1, FRAMES + 1))
    y_up = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float64)  # Blender (x, y, z) -> Nuke (x, z, -y)
    camera = bpy.context.scene.camera
    moved = 0.0
    for row in rows:
        frame, values = int(row[0]), [float(v) for v in row[1:]]
        expected = _world_matrix(frame, camera)
        rotation = y_up.T @ _zxy(*values[3:6])
        translation = y_up.T @ np.array(values[:3])
        assert np.abs(rotation - expected[:3, :3]).max() < 1e-4, frame
        assert np.abs(translation - expected[:3, 3]).max() < 1e-4, frame
        data = camera.data
        # A Photo3D camera is fitted along the photo's longer side (here the width).
        vertical = data.sensor_width * SIZE[1] / SIZE[0]
        assert values[6] == pytest.approx(math.degrees(2 * math.atan(vertical / (2 * data.lens))), abs=1e-4)
        moved = max(moved, float(np.abs(translation - _world_matrix(1, camera)[:3, 3]).max()))
    assert moved > 1e-3  # the orbit really moves: the comparison above is not of one still pose


def test_alembic_and_fbx_cameras_import_back_as_the_camera(package_dir, tmp_path):
    photo = _build(package_dir, "ORBIT")
    camera = bpy.context.scene.camera
    expected = {frame: _world_matrix(frame, camera) for frame in (1, FRAMES // 2 + 1, FRAMES)}
    result = _export(photo, tmp_path / "comp", ["abc", "fbx"])
    assert set(result.files) == {"abc", "fbx"}
    before = set(bpy.data.objects)
    assert bpy.ops.wm.alembic_import(filepath=str(result.folder / "camera.abc")) == {"FINISHED"}
    abc = [obj for obj in set(bpy.data.objects) - before if obj.type == "CAMERA"]
    before = set(bpy.data.objects)
    # FBX keys frame f at f / fps seconds; the importer adds a one-frame offset unless told not to.
    assert bpy.ops.import_scene.fbx(filepath=str(result.folder / "camera.fbx"), anim_offset=0.0) == {"FINISHED"}
    fbx = [obj for obj in set(bpy.data.objects) - before if obj.type == "CAMERA"]
    assert len(abc) == 1 and len(fbx) == 1, (abc, fbx)
    for name, imported in (("abc", abc[0]), ("fbx", fbx[0])):
        for frame, matrix in expected.items():
            got = _world_matrix(frame, imported)
            assert np.abs(got - matrix).max() < 1e-3, (name, frame, got, matrix)
        assert imported.data.lens == pytest.approx(camera.data.lens, rel=1e-3), name


def test_a_still_camera_exports_as_one_frame(package_dir, tmp_path):
    photo = _build(package_dir, preset=None)
    result = _export(photo, tmp_path / "comp", ["chan"])
    comp = json.loads((result.folder / "comp.json").read_text())
    assert comp["animated"] is False and comp["frames"] == [1, 1]
    assert len((result.folder / "camera.chan").read_text().splitlines()) == 1


def test_bad_destinations_change_nothing(package_dir, tmp_path):
    errors = addon_module("core.errors")
    photo = _build(package_dir, "ORBIT")
    foreign = tmp_path / "holiday photos"
    foreign.mkdir()
    (foreign / "IMG_0001.jpg").write_bytes(b"not ours")
    with pytest.raises(errors.OutputError, match="not a Photo3D comp package"):
        _export(photo, foreign, ["chan", "abc"])
    assert [p.name for p in foreign.iterdir()] == ["IMG_0001.jpg"]
    assert [p.name for p in tmp_path.iterdir()] == ["holiday photos"]  # no staging folder left behind
    with pytest.raises(errors.ExportError, match="unknown export format"):
        _export(photo, tmp_path / "comp", ["obj"])
    # An export over an earlier comp package replaces it.
    first = _export(photo, tmp_path / "comp", ["chan", "abc"])
    second = _export(photo, tmp_path / "comp", ["chan"])
    assert first.folder == second.folder and not (second.folder / "camera.abc").exists()


def test_the_operator_reports_a_missing_photo(photo3d_extension, tmp_path):
    reset_scene()
    assert not bpy.ops.photo3d.export_comp.poll()


def _render_frames(folder, frames, tag: str) -> dict[int, np.ndarray]:
    scene = bpy.context.scene
    scene.world = None  # no light anywhere: a lit importer material shows its emission only
    scene.render.film_transparent = False
    renders = {}
    for frame in frames:
        scene.frame_set(frame)
        renders[frame] = render_camera(folder / f"{tag}_{frame:03d}.png", *SIZE, samples=1)
    return renders


def _imported_camera(before: set) -> object:
    cameras = [obj for obj in set(bpy.data.objects) - before if obj.type == "CAMERA"]
    assert len(cameras) == 1, cameras
    return cameras[0]


def _first_key(obj) -> int:
    """The frame an importer put the first camera key on (glTF has times, not frames)."""
    action = obj.animation_data.action if obj.animation_data else None
    return int(round(action.frame_range[0])) if action is not None else bpy.context.scene.frame_start


@pytest.mark.parametrize("kind", ["usd", "gltf"])
def test_the_exported_scene_renders_like_the_original_in_a_fresh_scene(package_dir, tmp_path, kind):
    photo = _build(package_dir, "ORBIT")
    frames = (1, FRAMES // 2 + 1, FRAMES)
    originals = _render_frames(tmp_path, frames, "original")
    assert psnr(originals[frames[0]], originals[frames[-1]]) < 25.0  # the camera really moves
    result = _export(photo, tmp_path / "comp", [kind])
    reset_scene()
    before = set(bpy.data.objects)
    if kind == "usd":
        assert bpy.ops.wm.usd_import(filepath=str(result.folder / "scene.usda")) == {"FINISHED"}
    else:
        assert bpy.ops.import_scene.gltf(filepath=str(result.folder / "scene.glb")) == {"FINISHED"}
    camera = _imported_camera(before)
    scene = bpy.context.scene
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    offset = _first_key(camera) - frames[0] if kind == "gltf" else 0
    imported = _render_frames(tmp_path, [f + offset for f in frames], kind)
    scores = {f: psnr(originals[f], imported[f + offset]) for f in frames}
    print(f"{kind} round trip PSNR by frame: {scores}")
    assert min(scores.values()) >= ROUND_TRIP_DB, scores


def _over(layers_rgba: list[np.ndarray]) -> np.ndarray:
    """Premultiplied layers (back to front) composited with 'over'."""
    out = np.zeros_like(layers_rgba[0])
    for rgba in layers_rgba:
        out = rgba + out * (1.0 - rgba[..., 3:4])
    return out


def test_exr_frames_read_back_with_the_openexr_bindings(package_dir, tmp_path):
    import OpenEXR as openexr  # requirements/dev.txt: a missing reader fails the test, never skips it

    photo = _build(package_dir, preset=None)
    bpy.context.scene.eevee.taa_render_samples = 1
    package = photo.package()
    ranges = {layer.index: layer.depth_range for layer in package.layers}
    result = _export(photo, tmp_path / "comp", ["exr", "deep"])
    assert len(result.files["exr"]) == 1 and len(result.files["deep"]) == 1  # a still camera: one frame
    exr = openexr.File(str(result.folder / result.files["exr"][0]), separate_channels=True)
    channels = {name: channel.pixels for name, channel in exr.channels().items()}
    expected = {"R", "G", "B", "A", "Z"}
    for index in ranges:
        expected |= {f"L{index:02d}.{c}" for c in ("R", "G", "B", "A", "Z", "matte")}
    assert set(channels) == expected
    header = exr.header()
    assert header["dataWindow"][1].tolist() == [SIZE[0] - 1, SIZE[1] - 1]
    for name, pixels in channels.items():
        assert pixels.dtype == (np.float32 if name.endswith("Z") else np.float16), name
        assert pixels.shape == (SIZE[1], SIZE[0]), name
    layers = []
    for index, (lo, hi) in ranges.items():
        prefix = f"L{index:02d}"
        rgba = np.stack([channels[f"{prefix}.{c}"] for c in "RGBA"], -1).astype(np.float64)
        assert (rgba[..., :3] <= rgba[..., 3:4] + 2e-3).all(), prefix  # premultiplied
        covered = rgba[..., 3] > 0
        assert covered.any(), prefix
        z = channels[f"{prefix}.Z"][covered]
        # The photo's own camera sees each layer at the depths the package gives it.
        assert (z >= lo * (1 - 1e-3)).all() and (z <= hi * (1 + 1e-3)).all(), (prefix, z.min(), z.max(), lo, hi)
        assert np.isinf(channels[f"{prefix}.Z"][~covered]).all()
        layers.append(rgba)
    beauty = np.stack([channels[c] for c in "RGBA"], -1).astype(np.float64)
    assert (beauty[..., 3] > 0.999).all()  # the backdrop covers the frame
    composite = _over(layers)
    error = np.abs(composite - beauty)
    print(f"layers over each other vs beauty: mean {error.mean():.2e}, max {error.max():.2e}")
    assert error.mean() < 2e-3 and error.max() < 0.05
    mattes = sum(channels[f"L{index:02d}.matte"].astype(np.float64) for index in ranges)
    assert np.abs(mattes - beauty[..., 3]).max() < 5e-3
    # Deep: one sample per covering layer, nearest first, and flattened it is the beauty.
    deep = openexr.File(str(result.folder / result.files["deep"][0]), separate_channels=True)
    assert deep.header()["type"] == openexr.deepscanline
    assert deep.header()["compression"] == openexr.ZIPS_COMPRESSION
    samples = {name: channel.pixels for name, channel in deep.channels().items()}
    assert set(samples) == {"R", "G", "B", "A", "Z", "ZBack"}
    coverage = sum((layer[..., 3] > 0).astype(int) for layer in layers)
    flattened = np.zeros_like(beauty)
    for y in range(SIZE[1]):
        for x in range(SIZE[0]):
            z = samples["Z"][y, x]
            count = 0 if z is None else len(z)
            assert count == coverage[y, x], (y, x)
            assert count == 0 or (np.diff(z) >= 0).all(), (y, x, z)
            through = 1.0
            for s in range(count):
                alpha = float(samples["A"][y, x][s])
                rgb = [float(samples[c][y, x][s]) for c in "RGB"]
                flattened[y, x, :3] += through * np.array(rgb)
                flattened[y, x, 3] += through * alpha
                through *= 1.0 - alpha
    error = np.abs(flattened - beauty)
    # Deep samples composite in depth order, the beauty in layer order: they part only where two layers'
    # surfaces cross (a few edge pixels).
    share = (error.max(axis=-1) > 0.02).mean()
    print(f"deep flattened vs beauty: mean {error.mean():.2e}, max {error.max():.2e}, {share:.2%} of pixels > 0.02")
    assert error.mean() < 2e-3 and share < 0.01


def test_the_operator_exports_and_a_cancelled_task_leaves_nothing(package_dir, tmp_path):
    photo = _build(package_dir, "ORBIT")
    scene = bpy.context.scene
    scene.frame_end = 3
    scene.eevee.taa_render_samples = 1
    formats = {f"use_{name}": name in ("chan", "exr") for name in ("usd", "gltf", "chan", "exr", "deep", "abc", "fbx")}
    assert bpy.ops.photo3d.export_comp(directory=str(tmp_path / "shot"), **formats) == {"FINISHED"}
    comp = json.loads((tmp_path / "shot" / "comp.json").read_text())
    assert set(comp["files"]) == {"chan", "exr"} and len(comp["files"]["exr"]) == 3
    # The UI's way: started, stepped one EXR frame, then Esc.
    before = (scene.render.film_transparent, scene.render.image_settings.file_format, scene.render.filepath)
    task = addon_module("photo3d_addon.export.run").ExportTask(photo, tmp_path / "cancelled", ["usd", "exr"])
    task.start()
    assert not task.step()  # one frame rendered, more to go
    assert task.status[0] == pytest.approx(1 / 4)
    task.cancel()
    assert task.step()  # ended
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot"]  # nothing of the cancelled export
    # Every setting the passes changed is back.
    assert (scene.render.film_transparent, scene.render.image_settings.file_format, scene.render.filepath) == before
    assert all(not obj.hide_render and not obj.is_holdout for obj in photo.layers)


def test_the_usd_camera_is_blenders_camera_at_every_frame(package_dir, tmp_path):
    from pxr import Usd, UsdGeom  # usd-core (requirements/dev.txt): missing fails, not skips

    photo = _build(package_dir, "DOLLY_ZOOM")  # the lens changes every frame
    camera = bpy.context.scene.camera
    result = _export(photo, tmp_path / "comp", ["usd", "gltf"])
    assert any("field of view" in w or "lens" in w for w in result.warnings)  # glTF cannot animate it
    stage = Usd.Stage.Open(str(result.folder / "scene.usda"))
    usd_camera = UsdGeom.Camera(stage.GetPrimAtPath("/Photo3D/Camera"))
    assert list(usd_camera.GetFocalLengthAttr().GetTimeSamples()) == list(range(1, FRAMES + 1))
    lenses = []
    for frame in range(1, FRAMES + 1):
        expected = _world_matrix(frame, camera)
        gf = usd_camera.GetCamera(Usd.TimeCode(frame))
        matrix = np.array(gf.transform, np.float64).T  # USD's row-vector matrix
        assert np.abs(matrix - expected).max() < 1e-5, frame
        # Tenths of a scene unit on a metre stage: millimetres / 100.
        assert gf.focalLength == pytest.approx(camera.data.lens / 100.0, rel=1e-6), frame
        assert gf.horizontalAperture == pytest.approx(camera.data.sensor_width / 100.0, rel=1e-6), frame
        assert gf.verticalAperture == pytest.approx(camera.data.sensor_width * SIZE[1] / SIZE[0] / 100.0, rel=1e-6)
        lenses.append(camera.data.lens)
    assert max(lenses) - min(lenses) > 1.0  # the dolly-zoom really changed the lens

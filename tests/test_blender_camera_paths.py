"""Blender tier: camera path presets as keyframes on an imported photo's camera, replaced (not stacked) when
applied again, and parallax that is right in Eevee renders (near layers move more than far ones)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from mathutils import Vector  # noqa: E402

from tests.blender_support import addon_module, render_camera, reset_scene  # noqa: E402
from tests.scenes import write_motorcycle  # noqa: E402

pytestmark = pytest.mark.blender
RENDER_SIZE = (185, 125)  # a quarter of the Motorcycle photo (741 x 500) each way
DURATION = 24


@pytest.fixture(scope="module")
def mods(photo3d_extension):
    return addon_module("photo3d_addon.motion.paths"), addon_module("photo3d_addon.motion.keyframes")


@pytest.fixture(scope="module")
def photo(photo3d_extension, tmp_path_factory):
    """The Motorcycle photo imported with its ground-truth depth; one import for the whole module."""

    folder = tmp_path_factory.mktemp("camera paths")
    image, depth = write_motorcycle(folder / "motorcycle.png", folder / "motorcycle depth.npy")
    reset_scene()
    result = bpy.ops.photo3d.import_image(
        filepath=str(image), depth_source="FILE", depth_file=str(depth), segmentation=False, inpaint="TELEA",
        quality="DRAFT",
    )  # fmt: skip
    assert result == {"FINISHED"}
    (collection,) = [c for c in bpy.context.scene.collection.children_recursive if "photo3d_source" in c]
    yield addon_module("photo3d_addon.scene.photo_scene").PhotoScene(collection)
    reset_scene()


@pytest.fixture
def camera(photo, mods):
    _, anim = mods
    obj = photo.camera
    anim.clear_camera_path(obj)
    bpy.context.scene.frame_set(1)
    yield obj
    anim.clear_camera_path(obj)


def _fcurves(block) -> dict[tuple[str, int], object]:
    anim = block.animation_data
    if anim is None or anim.action is None:
        return {}
    from bpy_extras.anim_utils import action_get_channelbag_for_slot

    channelbag = action_get_channelbag_for_slot(anim.action, anim.action_slot)
    return {(fc.data_path, fc.array_index): fc for fc in channelbag.fcurves} if channelbag else {}


def _apply(mods, collection, camera, preset: str, fstop: float | None = None, **settings) -> list:
    """What the operator does: one call for the photo's collection, keyed from frame 1."""
    paths, anim = mods
    settings.setdefault("duration_frames", DURATION)
    path = paths.PathSettings(preset, **settings)
    poses = anim.apply_preset(collection, path, bpy.context.scene, frame_start=1, fstop=fstop)
    assert collection.camera == camera
    return poses


def _at(camera, frame: int) -> tuple[np.ndarray, np.ndarray, float]:
    bpy.context.scene.frame_set(frame)
    return np.array(camera.location), np.array(camera.rotation_euler), float(camera.data.lens)


def test_a_preset_keys_every_frame_of_the_path(photo, camera, mods):
    base_lens = camera.data.lens
    poses = _apply(mods, photo, camera, "ORBIT", loop=True)
    keyed = _fcurves(camera)
    assert set(keyed) == {(path, i) for path in ("location", "rotation_euler") for i in range(3)}
    assert set(_fcurves(camera.data)) == {("lens", 0)}
    for fcurve in [*keyed.values(), *_fcurves(camera.data).values()]:
        frames = [key.co[0] for key in fcurve.keyframe_points]
        # One key a frame, and a loop's closing key at frame 1 + N repeating frame 1, cycled beyond.
        assert frames == [float(f) for f in range(1, DURATION + 2)]
        assert {key.interpolation for key in fcurve.keyframe_points} == {"LINEAR"}
        assert [m.type for m in fcurve.modifiers] == ["CYCLES"]
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, DURATION)
    assert camera["photo3d_path"] == "ORBIT" and list(camera["photo3d_path_frames"]) == [1, DURATION]
    # The keys hold the poses, in the camera's local (rig) space.
    for frame in (1, 7, 19):
        location, rotation, lens = _at(camera, frame)
        pose = poses[frame - 1]
        assert np.allclose(location, pose.location, atol=1e-6)
        assert np.allclose(rotation, pose.rotation_euler, atol=1e-6)
        assert lens == pytest.approx(base_lens * pose.lens_scale, rel=1e-6)
    # The pivot stays centred in Blender's own view of the orbit: world pivot in front of the camera's axis.
    pivot_depth = photo.scene_info().default_pivot
    root = camera.parent
    bpy.context.scene.frame_set(1 + DURATION // 4)
    pivot_world = root.matrix_world @ Vector((0.0, 0.0, -pivot_depth))
    local = camera.matrix_world.inverted() @ pivot_world
    assert abs(local.x) < 1e-4 and abs(local.y) < 1e-4 and local.z == pytest.approx(-pivot_depth, rel=1e-4)
    # Looped: the frame after the last is frame 1 again (the Cycles modifier carries it on).
    assert np.allclose(_at(camera, DURATION + 1)[0], _at(camera, 1)[0], atol=1e-6)
    assert np.allclose(_at(camera, DURATION + 7)[0], _at(camera, 7)[0], atol=1e-6)


def test_applying_again_replaces_instead_of_stacking(photo, camera, mods):
    # The user's own animation on the camera stays; only the path's channels are replaced.
    camera.keyframe_insert("scale", index=0, frame=5)
    camera.data.keyframe_insert("clip_start", frame=5)
    base_lens = camera.data.lens
    _apply(mods, photo, camera, "DOLLY", duration_frames=30)
    assert len(_fcurves(camera)[("location", 2)].keyframe_points) == 30
    assert _at(camera, 30)[0][2] < -0.05

    zoom = _apply(mods, photo, camera, "ZOOM", amplitude=1.3)
    keyed = _fcurves(camera)
    assert [len(keyed[("location", i)].keyframe_points) for i in range(3)] == [DURATION] * 3
    assert ("scale", 0) in keyed and ("clip_start", 0) in _fcurves(camera.data)
    # DOLLY's move is gone: the camera stays where the photo was taken while the lens zooms.
    for frame in (1, 12, DURATION):
        location, rotation, lens = _at(camera, frame)
        assert np.allclose(location, 0.0, atol=1e-7) and np.allclose(rotation, 0.0)
        assert lens == pytest.approx(base_lens * zoom[frame - 1].lens_scale, rel=1e-6)
    assert bpy.context.scene.frame_end == DURATION and camera["photo3d_path"] == "ZOOM"
    # The same preset again zooms from the photo's lens, not from the last keyed one.
    _apply(mods, photo, camera, "ZOOM", amplitude=1.3)
    assert _at(camera, DURATION)[2] == pytest.approx(1.3 * base_lens, rel=1e-6)
    assert len(_fcurves(camera.data)[("lens", 0)].keyframe_points) == DURATION

    mods[1].clear_camera_path(camera)
    assert set(_fcurves(camera)) == {("scale", 0)}
    assert "photo3d_path" not in camera and camera.data.lens == pytest.approx(base_lens)
    assert np.allclose(camera.location, 0.0) and np.allclose(camera.rotation_euler, 0.0)
    camera.animation_data_clear()
    camera.data.animation_data_clear()
    camera.scale = (1.0, 1.0, 1.0)


def test_pivot_depth_and_depth_of_field(photo, camera, mods):
    _, anim = mods
    manifest = json.loads((photo.package_root / "manifest.json").read_text())
    nearest = manifest["layers"][-1]
    assert anim.pivot_depth_from_layer(photo, nearest["index"]) == pytest.approx(nearest["median_depth"])
    with pytest.raises(ValueError, match="no layer"):
        anim.pivot_depth_from_layer(photo, 99)
    # The depth map is at the working size (DRAFT: 640 wide), picked in the photo's own pixels.
    depth = np.load(photo.package_root / "depth.npy")
    assert depth.shape[1] < manifest["camera"]["width"]
    u, v = 0.6 * manifest["camera"]["width"], 0.7 * manifest["camera"]["height"]
    picked = anim.depth_at_pixel(photo, u, v)
    assert picked == depth[int(0.7 * depth.shape[0]), int(0.6 * depth.shape[1])]
    assert manifest["depth"]["min"] <= picked <= manifest["depth"]["max"]

    anim.set_depth_of_field(camera, 3.0, fstop=2.0)
    assert camera.data.dof.use_dof and camera.data.dof.focus_distance == pytest.approx(3.0)
    _apply(mods, photo, camera, "DOLLY", pivot_depth=picked, fstop=1.4)
    assert camera.data.dof.aperture_fstop == pytest.approx(1.4)
    # The focus follows the pivot as the camera dollies toward it.
    for frame in (1, DURATION):
        location, _, _ = _at(camera, frame)
        assert location[2] <= 0.0
        assert camera.data.dof.focus_distance == pytest.approx(picked + location[2], rel=1e-5)
    # Re-applied without depth of field, the focus keys go with the rest of the old path.
    _apply(mods, photo, camera, "ZOOM")
    assert ("dof.focus_distance", 0) not in _fcurves(camera.data)
    camera.data.dof.use_dof = False


def _layer_shift(reference: np.ndarray, moved: np.ndarray) -> float:
    """Horizontal image shift (pixels, + = right) of ``moved`` against ``reference``, by phase correlation."""
    import cv2

    a, b = (np.float32(img.astype(np.float64).mean(axis=2)) for img in (reference, moved))
    window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
    (dx, _), _ = cv2.phaseCorrelate(a, b, window)
    return float(dx)


def test_swing_parallax_near_layers_move_more_than_far_ones(photo, camera, mods, tmp_path):
    """Rendered over a few frames: each layer shifts against the camera's move by f * t / depth."""
    _, anim = mods
    poses = _apply(mods, photo, camera, "SWING_H", loop=True)  # the safe default amplitude
    extreme = 1 + DURATION // 4
    move = poses[extreme - 1].location[0]
    assert move > 0.05  # the camera goes right
    layers = sorted((o for o in photo.collection.objects if "photo3d_layer" in o), key=lambda o: o["photo3d_layer"])
    far, near = layers[0], layers[-1]
    info = photo.scene_info()
    focal = info.focal_px * RENDER_SIZE[0] / info.width
    scene = bpy.context.scene
    saved = scene.render.film_transparent
    scene.render.film_transparent = True  # each layer alone on black
    shifts = {}
    try:
        for layer in (near, far):
            for other in layers:
                other.hide_render = other is not layer
            renders = []
            for frame in (1, extreme):
                scene.frame_set(frame)
                renders.append(render_camera(tmp_path / f"{layer['photo3d_layer']}_{frame}.png", *RENDER_SIZE))
            shifts[layer.name] = _layer_shift(*renders)
    finally:
        for other in layers:
            other.hide_render = False
        scene.render.film_transparent = saved
    near_shift, far_shift = shifts[near.name], shifts[far.name]
    print(f"swing of {move:.3f} m: near layer {near_shift:.2f} px, far layer {far_shift:.2f} px")  # shown with -s
    # The camera goes right, so the scene goes left; the nearer, the more.
    assert near_shift < far_shift < 0.0
    assert abs(near_shift) > 1.3 * abs(far_shift)
    # And by the pinhole's amount, at each layer's median depth.
    for layer, shift in ((near, near_shift), (far, far_shift)):
        depth = anim.pivot_depth_from_layer(photo, layer["photo3d_layer"])
        assert shift == pytest.approx(-focal * move / depth, rel=0.3), layer.name


def test_overscan_keeps_the_photo_edges_out_of_the_render(photo, camera, mods, tmp_path):
    """At a swing's extreme the view reaches past the photo's right edge: the layers' border fills it, and
    overscan zooms in only as far as a move would see past that border."""
    scene = bpy.context.scene
    extreme = 1 + DURATION // 4
    saved = scene.render.film_transparent
    scene.render.film_transparent = True  # empty pixels render black
    edges = {}
    try:
        for overscan in (False, True):
            _apply(mods, photo, camera, "SWING_H", loop=True, overscan=overscan)
            scene.frame_set(extreme)
            rendered = render_camera(tmp_path / f"overscan_{overscan}.png", *RENDER_SIZE)
            edges[overscan] = rendered[:, -2:].max(axis=2)  # the two rightmost columns
    finally:
        scene.render.film_transparent = saved
    assert (edges[False] < 8).mean() < 0.05 and (edges[True] < 8).mean() < 0.05
    paths, _ = mods
    info = photo.scene_info()
    assert info.border_px > 0
    poses = paths.camera_path(paths.PathSettings("SWING_H", duration_frames=DURATION, loop=True), info)
    bare = dataclasses.replace(info, border_px=0)
    assert paths.cover_scale(poses, bare) > 1.01  # the bare photo's edge would be in view...
    assert paths.cover_scale(poses, info) < paths.cover_scale(poses, bare)  # ...the border needs less zoom


def test_overscan_covers_near_content_at_the_border_when_backing_away(photo, camera, mods, tmp_path):
    """A dolly-zoom backs away: near content along the border (the floor) shrinks most, and its edge too must
    stay outside the view. Overscan is computed from the nearest depth anywhere on the photo's border."""
    _, anim = mods
    info = photo.scene_info()
    # The backdrop reaches past the photo and is filled behind every nearer layer: its own nearest depth
    # is where the view's edge may meet it.
    assert info.border_px > 0
    assert info.border_depth == pytest.approx(photo.manifest.layers[0].depth_range[0], rel=1e-6)
    scene = bpy.context.scene
    saved = scene.render.film_transparent
    scene.render.film_transparent = True  # empty pixels render black
    try:
        _apply(mods, photo, camera, "DOLLY_ZOOM", loop=True, overscan=True)
        scene.frame_set(1 + DURATION // 2)  # the loop's far end
        rendered = render_camera(tmp_path / "dolly_zoom.png", *RENDER_SIZE).max(axis=2)
    finally:
        scene.render.film_transparent = saved
    for name, strip in (("bottom", rendered[-2:]), ("right", rendered[:, -2:]), ("top", rendered[:2])):
        assert (strip < 8).mean() < 0.02, f"empty pixels along the {name} edge"

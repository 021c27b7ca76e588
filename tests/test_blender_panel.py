"""Blender tier: the sidebar's operators (camera path, clear, render) on an imported photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from mathutils import Vector  # noqa: E402

from tests.blender_support import reset_scene  # noqa: E402
from tests.scenes import write_motorcycle  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def imported(photo3d_extension, tmp_path_factory):

    folder = tmp_path_factory.mktemp("panel")
    write_motorcycle(folder / "moto.png", folder / "moto.npy")
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


def _effect_objects(scene) -> list[str]:
    return sorted(o["photo3d_effect"] for o in scene.objects if "photo3d_effect" in o)


def test_effect_settings_apply_live_and_remove(imported):
    settings = imported.photo3d
    settings.rain.enabled = True  # live: the property update builds it
    assert _effect_objects(imported) == ["RAIN"]
    settings.snow.enabled, settings.fog.enabled = True, True
    settings.rain.amount = 0.25
    assert _effect_objects(imported) == ["RAIN", "SNOW"]
    rain = next(o for o in imported.objects if o.get("photo3d_effect") == "RAIN")
    assert len(rain.data.vertices) == round(0.25 * 6000)
    layer = next(o for o in imported.objects if "photo3d_layer" in o)
    assert "Photo3D Fog" in layer.data.materials[0].node_tree.nodes
    # A band that can't be used is not applied; the operator names it.
    settings.live_effects = False
    settings.snow.near, settings.snow.far = 0.8, 0.2
    with pytest.raises(RuntimeError, match="snow depth band"):
        bpy.ops.photo3d.apply_effects()
    settings.snow.near, settings.snow.far = 0.0, 1.0
    settings.wind = 0.5
    assert bpy.ops.photo3d.apply_effects() == {"FINISHED"}
    rain = next(o for o in imported.objects if o.get("photo3d_effect") == "RAIN")
    assert rain.modifiers[0][next(i.identifier for i in rain.modifiers[0].node_group.interface.items_tree
                                  if i.name == "Velocity")][0] > 0  # fmt: skip
    settings.live_effects = True
    assert bpy.ops.photo3d.remove_effects() == {"FINISHED"}
    assert _effect_objects(imported) == []
    assert not (settings.rain.enabled or settings.snow.enabled or settings.fog.enabled)
    assert "Photo3D Fog" not in layer.data.materials[0].node_tree.nodes


def test_a_ray_through_the_photo_gives_the_depth_there(imported, photo3d_extension):
    from tests.blender_support import addon_module

    operators = addon_module("photo3d_addon.ui.operators")
    anim = addon_module("photo3d_addon.motion.keyframes")
    collection = next(c for c in imported.collection.children_recursive if "photo3d_source" in c)
    photo = addon_module("photo3d_addon.scene.photo_scene").PhotoScene(collection)
    camera = imported.camera
    info = photo.scene_info()
    for u, v in ((370.0, 250.0), (100.0, 400.0), (600.0, 80.0)):
        # The ray from the photo's camera through pixel (u, v), in world space.
        cx, cy = info.principal_point
        local = Vector(((u - cx) / info.focal_px, -(v - cy) / info.focal_px, -1.0))
        origin = camera.matrix_world.translation
        direction = camera.matrix_world.to_3x3() @ local
        depth = operators.depth_along_ray(bpy.context, photo, origin, direction)
        expected = anim.depth_at_pixel(photo, u, v)
        assert depth == pytest.approx(expected, rel=0.08), (u, v)
    # A ray that misses the photo altogether.
    assert operators.depth_along_ray(bpy.context, photo, camera.matrix_world.translation, -direction) is None
    # The picked depth becomes the path's pivot.
    imported.photo3d.pivot_depth = 3.0
    try:
        path = addon_module("photo3d_addon.ui.properties").path_settings(imported.photo3d, photo, 24.0)
        assert path.pivot_depth == 3.0
    finally:
        imported.photo3d.pivot_depth = 0.0


def test_the_sidebar_shows_the_amplitude_apply_uses_from_a_cache(imported, photo3d_extension, monkeypatch):
    """The safe amplitude shown is the one Apply Camera Path keys (pivot and all), and a redraw reuses it
    instead of bisecting again; changing a setting computes it anew."""
    from tests.blender_support import addon_module

    panels = addon_module("photo3d_addon.ui.panels")
    paths = addon_module("photo3d_addon.motion.paths")
    properties = addon_module("photo3d_addon.ui.properties")
    collection = next(c for c in imported.collection.children_recursive if "photo3d_source" in c)
    photo = addon_module("photo3d_addon.scene.photo_scene").PhotoScene(collection)
    settings = imported.photo3d
    settings.path_preset, settings.use_safe_amplitude, settings.pivot_depth = "ORBIT", True, 2.5
    try:
        shown = panels.shown_amplitude(bpy.context, photo)
        applied = properties.path_settings(settings, photo, imported.render.fps / imported.render.fps_base)
        assert shown == paths.path_amplitude(applied, photo.scene_info())
        # Another pivot is another orbit: the amplitude the old sidebar showed (no pivot) differs.
        assert shown != paths.safe_amplitude("ORBIT", photo.scene_info())
        calls = []
        original = paths.path_amplitude
        monkeypatch.setattr(panels, "path_amplitude", lambda *a: calls.append(a) or original(*a))
        for _ in range(5):  # five redraws
            assert panels.shown_amplitude(bpy.context, photo) == shown
        assert calls == []
        settings.pivot_depth = 3.5
        assert panels.shown_amplitude(bpy.context, photo) != shown and len(calls) == 1
    finally:
        settings.path_preset, settings.pivot_depth = "SWING_H", 0.0


def test_effects_are_measured_at_the_picked_pivot(imported, photo3d_extension):
    """The effects' frame (the particles' spread and size) is measured at the pivot the user picked."""
    from tests.blender_support import addon_module

    params = addon_module("photo3d_addon.effects.params")
    properties = addon_module("photo3d_addon.ui.properties")
    collection = next(c for c in imported.collection.children_recursive if "photo3d_source" in c)
    photo = addon_module("photo3d_addon.scene.photo_scene").PhotoScene(collection)
    settings = imported.photo3d
    live, settings.live_effects = settings.live_effects, False
    settings.rain.enabled, settings.pivot_depth = True, 3.0
    try:
        (rain,) = properties.apply_scene_effects(bpy.context, photo)
        effect = properties.scene_effects(imported)[0]
        picked = params.particle_layout(effect, params.Frustum.from_scene(photo.scene_info(), pivot_depth=3.0))
        automatic = params.particle_layout(effect, params.Frustum.from_scene(photo.scene_info()))
        modifier = rain.modifiers[0]
        velocity_input = next(i.identifier for i in modifier.node_group.interface.items_tree if i.name == "Velocity")
        keyed = tuple(modifier[velocity_input])
        assert keyed == pytest.approx(picked.velocity, rel=1e-5)
        assert picked.velocity[1] != pytest.approx(automatic.velocity[1], rel=1e-3)
    finally:
        settings.rain.enabled, settings.pivot_depth = False, 0.0
        addon_module("photo3d_addon.effects.build").remove_effects(photo)
        settings.live_effects = live

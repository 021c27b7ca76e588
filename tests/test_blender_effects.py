"""Blender tier: effects in Eevee renders of a square in front of a wall. Each effect changes the render where
it should and never in front of nearer layers; the node group moves particles exactly as the layout says;
renders are seeded; applying replaces and removing leaves the import as it was."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from core.options import PipelineOptions  # noqa: E402
from core.pipeline import convert_image  # noqa: E402
from tests.blender_support import EXTENSION, addon_module, render_camera, reset_scene  # noqa: E402
from tests.scenes import square_scene  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = (128, 96)
SCENE = square_scene(h=SIZE[1], w=SIZE[0], near=2.0, far=5.0)


@pytest.fixture(scope="module")
def mods(photo3d_extension):
    return addon_module("photo3d_addon.effects.build"), addon_module("photo3d_addon.effects.params")


@pytest.fixture(scope="module")
def photo(mods, tmp_path_factory):
    """The square scene imported into an empty file, as its ``PhotoScene``."""
    folder = tmp_path_factory.mktemp("effects")
    reset_scene()
    image, depth = SCENE.write(folder / "in")
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    package = importlib.import_module(f"{EXTENSION}.core.package").read_package(
        convert_image(image, folder / "pkg", options).package_path
    )
    yield addon_module("photo3d_addon.scene.builder").build_scene(package, bpy.context.scene)
    reset_scene()


@pytest.fixture
def clean(photo, mods, tmp_path):
    """No effects, frame 5; the render of the plain scene."""
    effects, _ = mods
    effects.remove_effects(photo)
    # Another test file's render settings may have left motion blur on; these renders compare still frames.
    bpy.context.scene.render.use_motion_blur = False
    bpy.context.scene.frame_set(5)
    yield render_camera(tmp_path / "plain.png", *SIZE)
    effects.remove_effects(photo)


def _render(path, samples: int = 1) -> np.ndarray:
    bpy.context.scene.frame_set(5)
    return render_camera(path, *SIZE, samples=samples)


def _regions() -> tuple[np.ndarray, np.ndarray]:
    """The square's inside (2 px in from its edge, where it is fully opaque) and the wall away from it."""
    square = SCENE.square
    inside = square.copy()
    for axis in (0, 1):
        for shift in (-2, 2):
            inside &= np.roll(square, shift, axis=axis)
    grown = square.copy()
    for axis in (0, 1):
        for shift in (-3, 3):
            grown |= np.roll(square, shift, axis=axis)
    return inside, ~grown


def _fractions(photo, fx, low: float, high: float) -> tuple[float, float]:
    info = photo.scene_info()
    frustum = fx.Frustum.from_scene(info)
    span = frustum.depth_end - frustum.depth_start
    return (low - frustum.depth_start) / span, (high - frustum.depth_start) / span


@pytest.mark.parametrize("kind", ["RAIN", "SNOW", "DUST", "HALOS"])
def test_particles_behind_the_square_show_only_around_it(photo, mods, clean, kind, tmp_path):
    effects, fx = mods
    near, far = _fractions(photo, fx, 2.6, 4.8)  # all between the square (depth 2) and the wall (5)
    effects.apply_effects(photo, [fx.EffectSettings(kind, amount=1.0, size=3.0, near=near, far=far, seed=1)])
    image = _render(tmp_path / f"{kind}.png")
    changed = np.abs(image.astype(int) - clean.astype(int)).max(axis=2) > 2
    inside, wall = _regions()
    assert changed[inside].sum() == 0, f"{kind} shows through the square in front of it"
    # Sprites 3x their natural size, as they would cover at a usual resolution; the plain render is exact.
    assert changed[wall].sum() >= 30, f"{kind} barely changed the wall ({changed[wall].sum()} pixels)"


@pytest.mark.parametrize("kind", ["RAIN", "SNOW"])
def test_particles_in_front_of_the_square_cover_it(photo, mods, clean, kind, tmp_path):
    effects, fx = mods
    near, far = _fractions(photo, fx, 1.0, 1.8)  # between the camera and the square
    effects.apply_effects(photo, [fx.EffectSettings(kind, amount=1.0, size=3.0, near=near, far=far, seed=1)])
    image = _render(tmp_path / f"{kind}.png")
    changed = np.abs(image.astype(int) - clean.astype(int)).max(axis=2) > 2
    inside, _ = _regions()
    assert changed[inside].sum() >= 30


def test_fog_grows_with_depth_as_the_layout_says(photo, mods, clean, tmp_path, monkeypatch):
    effects, fx = mods
    monkeypatch.setattr(fx, "FOG_NOISE", 0.0)  # even fog: every pixel has an exact expected value
    effect = fx.EffectSettings("FOG", amount=0.5)
    effects.apply_effects(photo, [effect])
    image = _render(tmp_path / "fog.png").astype(float)
    info = photo.scene_info()
    layout = fx.fog_layout(effect, fx.Frustum.from_scene(info))

    def linear(c):
        c = c / 255.0
        return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)

    def encoded(c):
        return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.maximum(c, 0) ** (1 / 2.4) - 0.055)

    # The view distance to each pixel's surface, through the photo's pinhole.
    yy, xx = np.mgrid[0 : SIZE[1], 0 : SIZE[0]] + 0.5
    rays = np.stack([(xx - info.principal_point[0]) / info.focal_px, (yy - info.principal_point[1]) / info.focal_px])
    distance = SCENE.depth * np.sqrt(1.0 + (rays**2).sum(axis=0))
    opacity = fx.fog_opacity(layout, distance)[..., None]
    expected = encoded(linear(clean.astype(float)) * (1 - opacity) + np.array(layout.colour) * opacity)
    inside, wall = _regions()
    assert np.abs(image - expected)[inside | wall].max() < 4.0
    # Fog sits over the layers too (the square changes), and more so far away.
    shift = np.abs(image - clean).mean(axis=2)
    assert 5.0 < shift[inside].mean() < shift[wall].mean()
    assert opacity[wall].mean() > opacity[inside].mean()


def test_fog_drift_follows_the_scene_frame_rate_without_python(photo, mods, clean):
    effects, fx = mods
    effects.apply_effects(photo, [fx.EffectSettings("FOG")])
    group = bpy.data.node_groups[f"Photo3D Fog {photo.name}"]
    (fcurve,) = group.animation_data.drivers
    assert fcurve.driver.is_simple_expression  # evaluates with Python scripts disabled
    scene = bpy.context.scene
    saved = scene.render.fps
    try:
        for fps in (24, 50):
            scene.render.fps = fps
            scene.frame_set(100)
            assert group.nodes["seconds"].outputs[0].default_value == pytest.approx(100 / fps)
    finally:
        scene.render.fps = saved


def test_node_group_moves_particles_as_the_layout_says(photo, mods, clean):
    effects, fx = mods
    (obj,) = effects.apply_effects(photo, [fx.EffectSettings("RAIN", amount=0.05, wind=0.4, seed=2)])
    info = photo.scene_info()
    layout = fx.particle_layout(fx.EffectSettings("RAIN", amount=0.05, wind=0.4, seed=2), fx.Frustum.from_scene(info))
    nodes = addon_module("photo3d_addon.effects.nodes")
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    for frame in (1, 17, 60):
        scene.frame_set(frame)
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.to_mesh()
        try:
            co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", co)
        finally:
            evaluated.to_mesh_clear()
        per_sprite = nodes.SPRITE_VERTICES + 1
        centres = co.reshape(-1, per_sprite, 3).mean(axis=1).astype(np.float64)
        centres[:, 2] += -layout.origin_depth  # object space -> camera (root) space
        expected = fx.positions_at(layout, frame / fps)
        assert centres.shape == expected.shape
        # Particles right at a wrap edge may land on either side in float32; all others agree to 1e-4.
        close = np.linalg.norm(centres - expected, axis=1) < 1e-4
        assert close.mean() > 0.99, f"frame {frame}: {close.mean():.3f} of particles where the layout says"


def test_renders_are_seeded(photo, mods, clean, tmp_path):
    effects, fx = mods
    chosen = [fx.EffectSettings(k, amount=0.6, seed=5) for k in ("RAIN", "SNOW", "FOG", "HALOS")]
    effects.apply_effects(photo, chosen)
    first = _render(tmp_path / "a.png", samples=4)
    effects.apply_effects(photo, chosen)  # rebuilt from scratch
    second = _render(tmp_path / "b.png", samples=4)
    assert np.array_equal(first, second)
    effects.apply_effects(photo, [fx.EffectSettings(e.kind, amount=0.6, seed=6) for e in chosen])
    assert not np.array_equal(first, _render(tmp_path / "c.png", samples=4))


def test_apply_replaces_and_remove_restores_the_import(photo, mods, clean, tmp_path):
    effects, fx = mods
    EFFECT_KEY = addon_module("photo3d_addon.scene.photo_scene").EFFECT_KEY
    before = {"objects": len(bpy.data.objects), "meshes": len(bpy.data.meshes), "materials": len(bpy.data.materials)}
    effects.apply_effects(photo, fx.parse_effects(["rain", "fog", "dust"]))
    effects.apply_effects(photo, fx.parse_effects(["snow", "fog:amount=0.2"]))
    assert sorted(o[EFFECT_KEY] for o in photo.effect_objects) == ["SNOW"]
    snow = fx.KINDS["SNOW"].amount  # the one default the sidebar and the batch also start from
    assert [(e.kind, e.amount) for e in effects.applied_effects(photo)] == [("SNOW", snow), ("FOG", 0.2)]
    layer_materials = [o.data.materials[0] for o in photo.layers]
    assert all("Photo3D Fog" in m.node_tree.nodes for m in layer_materials)
    with pytest.raises(ValueError, match="snow twice"):
        effects.apply_effects(photo, [fx.EffectSettings("SNOW"), fx.EffectSettings("SNOW")])
    with pytest.raises(fx.EffectError, match="amount"):
        effects.apply_effects(photo, [fx.EffectSettings("RAIN", amount=3.0)])
    assert sorted(o[EFFECT_KEY] for o in photo.effect_objects) == ["SNOW"]  # bad call: no change

    effects.remove_effects(photo)
    after = {"objects": len(bpy.data.objects), "meshes": len(bpy.data.meshes), "materials": len(bpy.data.materials)}
    assert after == before
    assert not any("Photo3D Fog" in m.node_tree.nodes for m in layer_materials)
    assert not [g for g in bpy.data.node_groups if g.name.startswith("Photo3D Fog")]
    assert np.array_equal(_render(tmp_path / "plain again.png"), clean)

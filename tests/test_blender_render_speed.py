"""Blender tier: the lean Eevee settings (no shadow passes, a small world probe) are chosen exactly when nothing
in the scene takes light, come back off when the user lights it or a render ends, and change no pixel; the
samples follow the quality and the effects that need more. Timings are measured by ``scripts/bench_render.py``,
never here."""

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
SIZE = (64, 48)
SCENE = square_scene(h=SIZE[1], w=SIZE[0], near=2.0, far=5.0)


@pytest.fixture(scope="module")
def rs(photo3d_extension):
    return addon_module("photo3d_addon.render.settings")


@pytest.fixture
def photo(rs, tmp_path):
    """The square scene imported into an empty file, as its ``PhotoScene``; Blender's settings restored after."""
    reset_scene()
    scene = bpy.context.scene
    saved = scene.eevee.use_shadows, scene.world.probe_resolution, scene.render.use_motion_blur
    image, depth = SCENE.write(tmp_path / "in")
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    package = importlib.import_module(f"{EXTENSION}.core.package").read_package(
        convert_image(image, tmp_path / "pkg", options).package_path
    )
    yield addon_module("photo3d_addon.scene.builder").build_scene(package, scene)
    reset_scene()
    for light in list(bpy.data.lights):
        bpy.data.lights.remove(light)
    scene.eevee.use_shadows, scene.world.probe_resolution, scene.render.use_motion_blur = saved
    if rs.LEAN_SAVED_KEY in scene:
        del scene[rs.LEAN_SAVED_KEY]


def _apply(rs, tmp_path, **kw):
    settings = rs.RenderSettings(output="PNG", filepath=str(tmp_path / "frames" / "f_"), **kw)
    return rs.apply_render_settings(bpy.context.scene, settings)


def _effects(photo, *kinds: str):
    effects, fx = addon_module("photo3d_addon.effects.build"), addon_module("photo3d_addon.effects.params")
    return effects.apply_effects(photo, fx.parse_effects(list(kinds)))


def _add_light(name: str = "Sun"):
    light = bpy.data.objects.new(name, bpy.data.lights.new(name, "SUN"))
    bpy.context.scene.collection.objects.link(light)
    return light


def _principled(name: str = "Painted"):
    material = bpy.data.materials.new(name)
    material.use_nodes = True  # Blender's default tree: a Principled BSDF
    return material


def test_an_imported_photo_gets_the_lean_settings(rs, photo, tmp_path, capsys):
    scene = bpy.context.scene
    scene.eevee.use_shadows, scene.world.probe_resolution = True, "1024"
    look = _apply(rs, tmp_path)
    assert look == rs.EeveeLook(True, "no lights, unlit materials")
    assert scene.eevee.use_shadows is False and scene.world.probe_resolution == "128"
    assert "Photo3D: lean Eevee settings (no lights, unlit materials)" in capsys.readouterr().out
    # Every Photo3D layer material carries the marker the rule reads.
    unlit = addon_module("photo3d_addon.scene.materials").UNLIT_KEY
    assert photo.layer_materials() and all(m.get(unlit) for m in photo.layer_materials())


@pytest.mark.parametrize("kinds", [("rain",), ("snow", "fog"), ("dust", "halos")])
def test_effects_keep_the_lean_settings(rs, photo, tmp_path, kinds):
    created = _effects(photo, *kinds)
    unlit = addon_module("photo3d_addon.scene.materials").UNLIT_KEY
    assert all(m.get(unlit) for obj in created for m in obj.data.materials)
    assert _apply(rs, tmp_path).lean


def test_a_light_brings_back_the_settings_it_replaced(rs, photo, tmp_path, capsys):
    scene = bpy.context.scene
    scene.eevee.use_shadows, scene.world.probe_resolution = True, "1024"
    _effects(photo, "rain")
    assert _apply(rs, tmp_path).lean
    _add_light("Key")
    look = _apply(rs, tmp_path)
    assert look == rs.EeveeLook(False, "light 'Key'")
    assert scene.eevee.use_shadows is True and scene.world.probe_resolution == "1024"
    assert "Photo3D: default Eevee settings: light 'Key'" in capsys.readouterr().out
    assert rs.LEAN_SAVED_KEY not in scene
    # A light hidden from renders lights nothing.
    scene.objects["Key"].hide_render = True
    assert _apply(rs, tmp_path).lean


def test_a_render_puts_the_settings_back_for_the_saved_file(rs, photo, tmp_path):
    scene = bpy.context.scene
    scene.eevee.use_shadows, scene.world.probe_resolution = True, "1024"
    assert _apply(rs, tmp_path, frame_start=1, frame_end=1, motion_blur=False).lean
    scene.eevee.taa_render_samples = 1
    (frame,) = rs.render_frames(scene)
    assert frame.is_file()
    # A .blend saved after the render (as the batch does) renders a light the user adds with shadows.
    assert scene.eevee.use_shadows is True and scene.world.probe_resolution == "1024"
    assert rs.LEAN_SAVED_KEY not in scene


def test_settings_photo3d_never_changed_stay_as_the_user_set_them(rs, photo, tmp_path):
    scene = bpy.context.scene
    _add_light()
    scene.eevee.use_shadows, scene.world.probe_resolution = False, "512"
    assert not _apply(rs, tmp_path).lean
    assert scene.eevee.use_shadows is False and scene.world.probe_resolution == "512"


def test_a_lit_material_keeps_the_default_settings(rs, photo, tmp_path):
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new("Prop")
    mesh.from_pydata([(0, 0, -3), (1, 0, -3), (0, 1, -3)], [], [(0, 1, 2)])
    prop = bpy.data.objects.new("Prop", mesh)
    scene.collection.objects.link(prop)
    # No material at all is Blender's default surface, which is lit.
    no_material = "object 'Prop' has no material (Blender's default, lit, surface)"
    assert _apply(rs, tmp_path) == rs.EeveeLook(False, no_material)
    mesh.materials.append(_principled())
    not_ours = "object 'Prop': material 'Painted' is not a Photo3D material"
    assert _apply(rs, tmp_path) == rs.EeveeLook(False, not_ours)
    bpy.data.objects.remove(prop)
    assert _apply(rs, tmp_path).lean


def test_a_photo3d_material_given_a_lit_shader_keeps_the_default_settings(rs, photo, tmp_path):
    material = photo.layer_materials()[0]
    bsdf = material.node_tree.nodes.new("ShaderNodeBsdfPrincipled")
    look = _apply(rs, tmp_path)
    assert not look.lean and f"material {material.name!r} has a lit shader (Principled BSDF)" in look.reason
    material.node_tree.nodes.remove(bsdf)
    assert _apply(rs, tmp_path).lean
    # The same, hidden inside a node group.
    group = bpy.data.node_groups.new("Lit Group", "ShaderNodeTree")
    group.nodes.new("ShaderNodeBsdfDiffuse")
    node = material.node_tree.nodes.new("ShaderNodeGroup")
    node.node_tree = group
    assert "has a lit shader (Diffuse BSDF)" in _apply(rs, tmp_path).reason
    material.node_tree.nodes.remove(node)
    bpy.data.node_groups.remove(group)


def test_an_override_material_keeps_the_default_settings(rs, photo, tmp_path):
    view_layer = bpy.context.scene.view_layers[0]
    view_layer.material_override = _principled("Clay")
    try:
        assert "overrides materials with 'Clay'" in _apply(rs, tmp_path).reason
    finally:
        view_layer.material_override = None


@pytest.mark.parametrize(("kinds", "motion_blur"), [((), False), (("rain", "fog", "halos"), True)])
def test_lean_renders_are_the_default_renders_pixel_for_pixel(rs, photo, tmp_path, kinds, motion_blur):
    scene = bpy.context.scene
    if kinds:
        _effects(photo, *kinds)
    scene.frame_set(5)
    assert _apply(rs, tmp_path, motion_blur=motion_blur).lean
    assert scene.eevee.use_shadows is False and scene.world.probe_resolution == "128"
    lean = render_camera(tmp_path / "lean.png", *SIZE, samples=2)
    scene.eevee.use_shadows, scene.world.probe_resolution = True, "1024"  # Blender's defaults
    default = render_camera(tmp_path / "default.png", *SIZE, samples=2)
    assert default.std() > 10  # the square and the wall both show
    assert np.array_equal(lean, default)


@pytest.mark.parametrize(
    ("quality", "kinds", "samples"),
    [
        ("PREVIEW", (), 1),
        ("PREVIEW", ("fog", "halos"), 1),
        ("PREVIEW", ("rain",), 16),
        ("PREVIEW", ("snow", "fog"), 16),
        ("PREVIEW", ("dust",), 16),
        ("FINAL", ("rain", "snow"), 64),
        ("FINAL", (), 64),
    ],
)
def test_samples_follow_the_quality_and_the_effects_that_need_more(rs, photo, tmp_path, quality, kinds, samples):
    if kinds:
        _effects(photo, *kinds)
    _apply(rs, tmp_path, quality=quality)
    assert bpy.context.scene.eevee.taa_render_samples == samples == rs.render_samples(bpy.context.scene, quality)

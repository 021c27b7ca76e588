"""Blender tier: the lean world probe is safe for a world other scenes share, and the render handlers re-check
the Eevee settings when any render of a Photo3D scene starts (F12 included) and restore them when it ends."""

from __future__ import annotations

import importlib

import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from core.options import PipelineOptions  # noqa: E402
from core.pipeline import convert_image  # noqa: E402
from tests.blender_support import EXTENSION, addon_module, reset_scene  # noqa: E402
from tests.scenes import square_scene  # noqa: E402

pytestmark = pytest.mark.blender
SIZE = (32, 24)


@pytest.fixture(scope="module")
def rs(photo3d_extension):
    return addon_module("photo3d_addon.render.settings")


@pytest.fixture(scope="module")
def handlers(photo3d_extension):
    return addon_module("photo3d_addon.render.handlers")


@pytest.fixture
def package(photo3d_extension, tmp_path):
    image, depth = square_scene(h=SIZE[1], w=SIZE[0], near=2.0, far=5.0).write(tmp_path / "in")
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    return importlib.import_module(f"{EXTENSION}.core.package").read_package(
        convert_image(image, tmp_path / "pkg", options).package_path
    )


@pytest.fixture
def scenes(rs, package):
    """The current scene with a Photo3D import, and a second, empty scene sharing its world; everything the tests
    change is put back after."""
    reset_scene()
    main = bpy.context.scene
    world = main.world
    saved = main.eevee.use_shadows, world.probe_resolution, main.render.engine
    addon_module("photo3d_addon.scene.builder").build_scene(package, main)
    main.render.engine = rs.eevee_engine_id()
    other = bpy.data.scenes.new("Other")
    other.world = world
    other.render.engine = rs.eevee_engine_id()
    world.probe_resolution, main.eevee.use_shadows = "1024", True
    yield main, other
    for scene in bpy.data.scenes:
        if rs.LEAN_SAVED_KEY in scene:
            del scene[rs.LEAN_SAVED_KEY]
    bpy.data.scenes.remove(other)
    main.world = world
    reset_scene()
    for light in list(bpy.data.lights):
        bpy.data.lights.remove(light)
    for extra in [w for w in bpy.data.worlds if w != world]:
        bpy.data.worlds.remove(extra)
    main.eevee.use_shadows, world.probe_resolution, main.render.engine = saved


def _import_into(scene, package):
    return addon_module("photo3d_addon.scene.builder").build_scene(package, scene)


def _add_light(scene, name: str = "Key"):
    light = bpy.data.objects.new(name, bpy.data.lights.new(name, "POINT"))
    scene.collection.objects.link(light)
    return light


def test_a_shared_world_gets_its_probe_back_when_the_last_lean_scene_restores(rs, scenes, package):
    main, other = scenes
    world = main.world
    _import_into(other, package)
    assert rs.apply_eevee_look(main).lean and world.probe_resolution == "128"
    # The second lean scene finds the world already lean: it keeps the resolution from before, not 128.
    assert rs.apply_eevee_look(other).lean
    assert other[rs.LEAN_SAVED_KEY]["probe_resolution"] == "1024"
    rs.restore_eevee_look(main)
    assert world.probe_resolution == "128"  # the other scene still renders with it
    assert main.eevee.use_shadows is True and other.eevee.use_shadows is False
    rs.restore_eevee_look(other)
    assert world.probe_resolution == "1024" and not rs.lean_holders(world)


def test_a_scene_given_another_world_puts_the_first_one_back(rs, scenes):
    main, _ = scenes
    first = main.world
    assert rs.apply_eevee_look(main).lean
    second = bpy.data.worlds.new("Second")
    second.probe_resolution = "512"
    main.world = second
    assert rs.apply_eevee_look(main).lean
    assert first.probe_resolution == "1024" and second.probe_resolution == "128"
    rs.restore_eevee_look(main)
    assert second.probe_resolution == "512" and first.probe_resolution == "1024"


def test_the_handlers_are_registered_with_the_extension(handlers):
    for handlers_list, function in (
        (bpy.app.handlers.render_pre, handlers.on_render_pre),
        (bpy.app.handlers.render_complete, handlers.on_render_end),
        (bpy.app.handlers.render_cancel, handlers.on_render_end),
    ):
        assert [h for h in handlers_list if h.__name__ == function.__name__] == [function]


def test_render_pre_rechecks_the_look_and_the_end_restores(rs, handlers, scenes):
    main, _ = scenes
    world = main.world
    handlers.on_render_pre(main, None)  # F12 on an imported photo: lean
    assert main.eevee.use_shadows is False and world.probe_resolution == "128"
    handlers.on_render_end(main, None)
    assert main.eevee.use_shadows is True and world.probe_resolution == "1024"
    # Photo3D's own settings were applied, then the user added a light before rendering: Blender's defaults.
    assert rs.apply_eevee_look(main).lean
    light = _add_light(main)
    handlers.on_render_pre(main, None)
    assert main.eevee.use_shadows is True and world.probe_resolution == "1024"
    assert rs.LEAN_SAVED_KEY not in main
    # The light gone again, a cancelled render restores as a finished one does.
    bpy.data.objects.remove(light)
    handlers.on_render_pre(main, None)
    assert main.eevee.use_shadows is False
    handlers.on_render_end(main, None)
    assert main.eevee.use_shadows is True and world.probe_resolution == "1024"


def test_a_lit_scene_renders_with_the_probe_of_a_world_held_lean(rs, handlers, scenes):
    main, other = scenes
    world = main.world
    _add_light(other)
    other.eevee.use_shadows = True
    assert rs.apply_eevee_look(main).lean
    handlers.on_render_pre(other, None)
    assert world.probe_resolution == "1024"  # the lit scene's render
    assert other.eevee.use_shadows is True  # not Photo3D's scene: untouched
    handlers.on_render_end(other, None)
    assert world.probe_resolution == "128"  # back for the scene that holds it
    rs.restore_eevee_look(main)
    assert world.probe_resolution == "1024"


def test_non_photo3d_and_non_eevee_scenes_are_left_alone(rs, handlers, scenes):
    main, other = scenes
    other.eevee.use_shadows = True
    handlers.on_render_pre(other, None)  # an empty scene: not Photo3D's to change
    assert other.eevee.use_shadows is True and rs.LEAN_SAVED_KEY not in other
    main.render.engine = "CYCLES"
    handlers.on_render_pre(main, None)
    assert main.eevee.use_shadows is True and rs.LEAN_SAVED_KEY not in main


def test_a_real_render_is_lean_while_it_runs_and_restored_after(rs, scenes, tmp_path):
    main, _ = scenes
    seen = []

    def during(scene, *_args) -> None:
        seen.append((scene.eevee.use_shadows, scene.world.probe_resolution))

    render = main.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = *SIZE, 100
    main.eevee.taa_render_samples = 1
    render.image_settings.file_format = "PNG"
    render.filepath = str(tmp_path / "still")
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"  # llvmpipe: see blender_support
    bpy.app.handlers.render_post.append(during)
    try:
        bpy.ops.render.render(write_still=True, scene=main.name)
    finally:
        bpy.app.handlers.render_post.remove(during)
    assert seen == [(False, "128")]
    assert main.eevee.use_shadows is True and main.world.probe_resolution == "1024"
    assert (tmp_path / "still.png").is_file()

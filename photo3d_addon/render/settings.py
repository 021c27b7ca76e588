"""Render settings for Photo3D scenes: Eevee, resolution and frame-rate presets, quality, video or PNG frames.

Stills and animations go through ``render_frames``, which renders frame by frame so long renders report
progress (and can be stopped between frames) both in the UI and in ``blender -b``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy

from ..scene.photo_scene import EFFECT_KEY, LEAN_SAVED_KEY, UNLIT_KEY

RESOLUTIONS = {
    "PHOTO": None,  # the photo's own size (set by the import)
    "HD": (1280, 720),
    "FULL_HD": (1920, 1080),
    "UHD": (3840, 2160),
    "SQUARE": (1080, 1080),
    "VERTICAL": (1080, 1920),
}
FRAME_RATES = (24, 25, 30, 50, 60)
# Eevee samples per pixel, and the share of the resolution: preview is for checking a move quickly. Photo3D's
# layers are unlit, bilinear textures with soft alpha edges, so one sample already renders them: against the
# real right view of the Motorcycle pair it scores as 12 samples do (in-view PSNR 25.94 vs 25.79 dB at 370x250,
# 24.24 vs 24.21 dB at 1280x720) at a fifth to a tenth of the CPU (``scripts/bench_render.py --versus``). It is
# sharper than many samples (no film filter: 32 dB against a 48-sample render), so FINAL keeps 64, the fewest
# within 0.5 dB of the look before (``--find-samples``). Dithered sprites need more: ``EFFECT_SAMPLES``.
QUALITY = {"PREVIEW": (1, 50), "FINAL": (64, 100)}
EFFECT_SAMPLES = {"PREVIEW": {"RAIN": 16, "SNOW": 16, "DUST": 16}}
"""The fewest samples a quality renders with while these effects are on: their sprites are dithered, so fewer
samples leave them grainy (1-2 dB below at 12; layers, fog and halos are not dithered and keep the quality's)."""
OUTPUTS = ("MP4", "PNG")


class RenderError(RuntimeError):
    """A render that cannot start or did not write what it should."""


@dataclass
class RenderSettings:
    resolution: str = "PHOTO"
    fps: int = 24
    quality: str = "FINAL"
    output: str = "MP4"
    """``MP4`` (H.264 video) or ``PNG`` (one file per frame)."""
    motion_blur: bool = True
    filepath: str = "//photo3d_render/"
    frame_start: int | None = None
    frame_end: int | None = None


DEFAULTS = RenderSettings()
"""The sidebar's and the batch's render settings when nothing is chosen."""


def render_samples(scene: bpy.types.Scene, quality: str) -> int:
    """Eevee samples for ``quality`` in ``scene``: the quality's, or more while an effect that needs them is on."""
    samples = QUALITY[quality][0]
    needs = EFFECT_SAMPLES.get(quality, {})
    for obj in scene.objects:
        kind = obj.get(EFFECT_KEY)
        if kind in needs and not obj.hide_render:
            samples = max(samples, needs[kind])
    return samples


def eevee_engine_id() -> str:
    """Eevee's engine id in this Blender: ``BLENDER_EEVEE_NEXT`` in 4.2-4.5, ``BLENDER_EEVEE`` in 5.x."""
    items = {item.identifier for item in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"


# -- lean Eevee settings for unlit scenes ---------------------------------------------------------------------
LEAN_EEVEE = {"use_shadows": False, "probe_resolution": "128"}
"""What a scene with no lights and only Photo3D's unlit materials renders with. Eevee otherwise runs its shadow
passes over thousands of unused tile maps every sample (from the second render in a process on), and rebuilds
the 1024 px world probe every frame: some 12-20 CPU s per 8-sample frame on two cores (4-9x a 370x250 frame,
1.6-1.9x a 1080p one, ``scripts/bench_render.py``), for pixels no light or world reaches."""
_NOT_RENDERED = {"EMPTY", "CAMERA", "ARMATURE", "LATTICE", "SPEAKER", "LIGHT_PROBE"}
"""Object types that draw nothing in a render (an empty may still instance a collection: checked)."""
_UNLIT_SHADERS = {
    "ShaderNodeEmission",
    "ShaderNodeBsdfTransparent",
    "ShaderNodeMixShader",
    "ShaderNodeAddShader",
    "ShaderNodeHoldout",
    "ShaderNodeGroup",  # looked into
    "NodeGroupInput",
    "NodeGroupOutput",
    "NodeReroute",
}
"""Nodes with a shader output that take no light: every other shader node (a BSDF, a volume) is lit."""


@dataclass(frozen=True)
class EeveeLook:
    """Whether a scene renders with the lean Eevee settings, and why (or why not)."""

    lean: bool
    reason: str

    def describe(self) -> str:
        if self.lean:
            return f"Photo3D: lean Eevee settings ({self.reason})"
        return f"Photo3D: default Eevee settings: {self.reason}"


def _lit_node(tree: bpy.types.NodeTree, seen: set[str]) -> str | None:
    """The name of the first node in ``tree`` (or a group inside it) that takes light, else None."""
    for node in tree.nodes:
        if node.bl_idname == "ShaderNodeGroup":
            group = node.node_tree
            if group is not None and group.name not in seen:
                seen.add(group.name)
                found = _lit_node(group, seen)
                if found is not None:
                    return found
        elif node.bl_idname not in _UNLIT_SHADERS and any(out.type == "SHADER" for out in node.outputs):
            return node.bl_label or node.bl_idname
    return None


def _material_problem(material: bpy.types.Material | None) -> str | None:
    """Why ``material`` may take light (None when it is one of Photo3D's unlit materials, unchanged)."""
    if material is None:
        return "an empty material slot (Blender's default, lit, surface)"
    if not material.get(UNLIT_KEY):
        return f"material {material.name!r} is not a Photo3D material"
    if not material.use_nodes or material.node_tree is None:
        return f"material {material.name!r} uses no nodes (a lit surface)"
    lit = _lit_node(material.node_tree, set())
    if lit is not None:
        return f"material {material.name!r} has a lit shader ({lit})"
    return None


def _object_problem(obj: bpy.types.Object) -> str | None:
    """Why ``obj`` may need shadows or the world's light (None when it is unlit or draws nothing)."""
    if obj.type == "LIGHT":
        return f"light {obj.name!r}"
    if obj.instance_type == "COLLECTION" and obj.instance_collection is not None:
        return f"object {obj.name!r} instances a collection"
    if obj.type in _NOT_RENDERED:
        return None
    if len(obj.particle_systems):
        return f"object {obj.name!r} has a particle system"
    if not obj.material_slots:
        return f"object {obj.name!r} has no material (Blender's default, lit, surface)"
    for slot in obj.material_slots:
        problem = _material_problem(slot.material)
        if problem is not None:
            return f"object {obj.name!r}: {problem}"
    for modifier in obj.modifiers:
        if modifier.type != "NODES" or modifier.node_group is None:
            continue
        if EFFECT_KEY not in obj:
            return f"object {obj.name!r} has geometry nodes (their materials are unknown)"
        for item in modifier.node_group.interface.items_tree:
            if getattr(item, "socket_type", "") == "NodeSocketMaterial" and item.in_out == "INPUT":
                problem = _material_problem(modifier.get(item.identifier))
                if problem is not None:
                    return f"object {obj.name!r}: {problem}"
    return None


def eevee_look(scene: bpy.types.Scene) -> EeveeLook:
    """Whether ``scene`` needs Eevee's shadows and a sharp world probe: not when nothing in it takes light.

    The rule is simple and errs towards Blender's defaults: no light objects, and every object that could
    render (hidden ones too, unless hidden from renders) has only Photo3D's unlit layer or sprite materials,
    whose node trees still hold no lit shader; no view layer overrides the materials; the world has no volume.
    Then shadows have nothing to cast onto and the world probe lights nothing, so the pixels are the same.
    """
    if scene.background_set is not None:
        return EeveeLook(False, f"background scene {scene.background_set.name!r}")
    for obj in scene.objects:
        if obj.hide_render:
            continue
        problem = _object_problem(obj)
        if problem is not None:
            return EeveeLook(False, problem)
    for view_layer in scene.view_layers:
        override = view_layer.material_override
        if override is not None and _material_problem(override) is not None:
            return EeveeLook(False, f"view layer {view_layer.name!r} overrides materials with {override.name!r}")
    world = scene.world
    if world is not None and world.use_nodes and world.node_tree is not None:
        for node in world.node_tree.nodes:
            if node.bl_idname == "ShaderNodeOutputWorld" and node.inputs["Volume"].is_linked:
                return EeveeLook(False, f"world {world.name!r} has a volume")
    return EeveeLook(True, "no lights, unlit materials")


def apply_eevee_look(scene: bpy.types.Scene) -> EeveeLook:
    """Lean shadow and world-probe settings when ``eevee_look`` allows them; otherwise the settings the lean
    ones replaced come back (a light added since), and settings Photo3D never changed stay as they are.

    The world probe belongs to the world, which other scenes may share: the resolution it had before any lean
    scene changed it is kept with every scene that holds it lean, and comes back when the last one restores."""
    look = eevee_look(scene)
    if not look.lean:
        restore_eevee_look(scene)
        return look
    world = scene.world
    if LEAN_SAVED_KEY in scene and scene[LEAN_SAVED_KEY].get("world", "") != _world_name(world):
        restore_eevee_look(scene)  # the scene was given another world since: put the first one back
    if LEAN_SAVED_KEY not in scene:
        scene[LEAN_SAVED_KEY] = {
            "use_shadows": bool(scene.eevee.use_shadows),
            "world": _world_name(world),
            "probe_resolution": probe_before_lean(world) if world is not None else "",
        }
    # Set only what differs: every write tags the scene or world for Eevee to update.
    if scene.eevee.use_shadows != LEAN_EEVEE["use_shadows"]:
        scene.eevee.use_shadows = LEAN_EEVEE["use_shadows"]
    if world is not None and world.probe_resolution != LEAN_EEVEE["probe_resolution"]:
        world.probe_resolution = LEAN_EEVEE["probe_resolution"]
    return look


def _world_name(world: bpy.types.World | None) -> str:
    return world.name if world is not None else ""


def lean_holders(world: bpy.types.World | None) -> list[bpy.types.Scene]:
    """The scenes that hold ``world``'s probe at the lean resolution (``apply_eevee_look`` without a restore)."""
    if world is None:
        return []
    return [s for s in bpy.data.scenes if LEAN_SAVED_KEY in s and s[LEAN_SAVED_KEY].get("world") == world.name]


def probe_before_lean(world: bpy.types.World) -> str:
    """The probe resolution ``world`` had before any scene made it lean (its own while none holds it)."""
    for holder in lean_holders(world):
        saved = holder[LEAN_SAVED_KEY].get("probe_resolution")
        if saved:
            return str(saved)
    return world.probe_resolution


def restore_eevee_look(scene: bpy.types.Scene) -> None:
    """Put back the shadow and world-probe settings the lean ones replaced, if they did: ``render_frames`` does
    after rendering, and so does the ``render_complete`` handler (``render/handlers.py``), so a file saved
    afterwards (the batch's .blend) renders right once the user adds a light. A world another scene still
    holds lean stays lean until that scene restores too."""
    if LEAN_SAVED_KEY not in scene:
        return
    saved = scene[LEAN_SAVED_KEY].to_dict()
    del scene[LEAN_SAVED_KEY]
    if scene.eevee.use_shadows != bool(saved.get("use_shadows", True)):
        scene.eevee.use_shadows = bool(saved.get("use_shadows", True))
    if "world" in saved:
        world = bpy.data.worlds.get(saved["world"]) if saved["world"] else None
    else:  # saved before the world's name was kept: the scene's world is the one it changed
        world = scene.world
    probe = saved.get("probe_resolution")
    if world is not None and probe and not lean_holders(world) and world.probe_resolution != probe:
        world.probe_resolution = probe


def apply_render_settings(scene: bpy.types.Scene, settings: RenderSettings) -> EeveeLook:
    """Set ``scene`` up to render ``settings``; bad choices raise RenderError naming them.

    Returns which Eevee settings the scene got (``apply_eevee_look``), also printed as one line."""
    if settings.resolution not in RESOLUTIONS:
        raise RenderError(f"unknown resolution preset {settings.resolution!r} ({', '.join(RESOLUTIONS)})")
    if settings.quality not in QUALITY:
        raise RenderError(f"unknown quality {settings.quality!r} ({', '.join(QUALITY)})")
    if settings.output not in OUTPUTS:
        raise RenderError(f"unknown output {settings.output!r} ({', '.join(OUTPUTS)})")
    if settings.fps <= 0:
        raise RenderError(f"the frame rate must be positive, not {settings.fps}")
    render = scene.render
    render.engine = eevee_engine_id()
    size = RESOLUTIONS[settings.resolution]
    if size is not None:
        render.resolution_x, render.resolution_y = size
    scene.eevee.taa_render_samples = render_samples(scene, settings.quality)
    percentage = QUALITY[settings.quality][1]
    render.resolution_percentage = percentage
    render.fps, render.fps_base = int(settings.fps), 1.0
    render.use_motion_blur = bool(settings.motion_blur)
    if settings.frame_start is not None:
        scene.frame_start = int(settings.frame_start)
    if settings.frame_end is not None:
        scene.frame_end = int(settings.frame_end)
    if scene.frame_end < scene.frame_start:
        raise RenderError(f"the last frame ({scene.frame_end}) is before the first ({scene.frame_start})")
    render.filepath = settings.filepath
    image = render.image_settings
    if settings.output == "MP4":
        # H.264 needs even sizes: drop a pixel row or column rather than fail (the camera keeps its fit).
        render.resolution_x -= render.resolution_x % 2
        render.resolution_y -= render.resolution_y % 2
        image.file_format = "FFMPEG"
        render.ffmpeg.format = "MPEG4"
        render.ffmpeg.codec = "H264"
        render.ffmpeg.constant_rate_factor = "HIGH" if settings.quality == "FINAL" else "MEDIUM"
        render.ffmpeg.ffmpeg_preset = "GOOD"
        render.ffmpeg.audio_codec = "NONE"
    else:
        image.file_format = "PNG"
        image.color_mode = "RGB"
        image.color_depth = "8"
    render.use_file_extension = True
    look = apply_eevee_look(scene)
    print(look.describe(), flush=True)
    return look


def output_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """The size of the frames written, after the resolution percentage."""
    render = scene.render
    scale = render.resolution_percentage / 100.0
    return int(render.resolution_x * scale), int(render.resolution_y * scale)


def render_frames(
    scene: bpy.types.Scene,
    on_frame: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Path]:
    """Render the scene's frame range to its output; returns the files written.

    PNG frames are rendered one by one (progress per frame, a stop between frames). A video is one
    ``render(animation=True)`` call whose frames report through ``render_post``. Lean Eevee settings that
    ``apply_render_settings`` chose are undone afterwards (``restore_eevee_look``).
    """
    try:
        return _render_frames(scene, on_frame, should_stop)
    finally:
        restore_eevee_look(scene)


def _render_frames(
    scene: bpy.types.Scene,
    on_frame: Callable[[int, int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> list[Path]:
    start, end = scene.frame_start, scene.frame_end
    total = end - start + 1
    render = scene.render
    if render.image_settings.file_format == "FFMPEG":
        width, height = output_size(scene)
        if width % 2 or height % 2:
            # H.264 needs even sizes; Blender would silently write nothing usable.
            raise RenderError(f"an MP4 needs an even width and height, not {width}x{height}")
        done = [0]

        def count(_scene, _depsgraph=None) -> None:
            done[0] += 1
            if on_frame is not None:
                on_frame(scene.frame_current, done[0], total)

        bpy.app.handlers.render_post.append(count)
        try:
            bpy.ops.render.render(animation=True, scene=scene.name)
        finally:
            bpy.app.handlers.render_post.remove(count)
        path = Path(bpy.path.abspath(render.frame_path(frame=start)))
        if not path.is_file() or path.stat().st_size == 0:
            raise RenderError(f"the video {path} was not written")
        return [path]

    written = []
    saved_frame = scene.frame_current
    try:
        for index, frame in enumerate(range(start, end + 1)):
            if should_stop is not None and should_stop():
                break
            scene.frame_set(frame)
            path = Path(bpy.path.abspath(render.frame_path(frame=frame)))
            # A still render writes to the output path as it is (no frame number): give it this frame's name.
            saved = render.filepath
            render.filepath = str(path.with_suffix(""))
            try:
                bpy.ops.render.render(write_still=True, scene=scene.name)
            finally:
                render.filepath = saved
            if not path.is_file():
                raise RenderError(f"frame {frame} was not written to {path}")
            written.append(path)
            if on_frame is not None:
                on_frame(frame, index + 1, total)
    finally:
        scene.frame_set(saved_frame)
    return written

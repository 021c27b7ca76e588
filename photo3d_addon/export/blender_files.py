"""The camera through Blender's own exporters: Alembic (``camera.abc``) and FBX (``camera.fbx``).

Both exporters write what is selected, so the camera is selected alone for the call and the user's
selection and active object are put back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import bpy

from ...core.errors import ExportError

FILES = {"abc": "camera.abc", "fbx": "camera.fbx"}


@contextlib.contextmanager
def _only_selected(view_layer: bpy.types.ViewLayer, obj: bpy.types.Object) -> Iterator[None]:
    selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    active = view_layer.objects.active
    hidden = obj.hide_get(view_layer=view_layer)
    try:
        for other in selected:
            other.select_set(False, view_layer=view_layer)
        obj.hide_set(False, view_layer=view_layer)
        obj.select_set(True, view_layer=view_layer)
        view_layer.objects.active = obj
        yield
    finally:
        obj.select_set(False, view_layer=view_layer)
        obj.hide_set(hidden, view_layer=view_layer)
        for other in selected:
            with contextlib.suppress(ReferenceError, RuntimeError):
                other.select_set(True, view_layer=view_layer)
        view_layer.objects.active = active


def _fbx_available() -> bool:
    import addon_utils

    loaded, enabled = addon_utils.check("io_scene_fbx")
    if not enabled:
        with contextlib.suppress(Exception):
            addon_utils.enable("io_scene_fbx", default_set=False)
    return hasattr(bpy.ops.export_scene, "fbx")


def write_camera_files(
    scene: bpy.types.Scene, camera: bpy.types.Object, folder: Path, formats: tuple[str, ...], frames: tuple[int, int]
) -> dict[str, str]:
    """Write the camera over ``frames`` in each of ``formats`` (``abc``, ``fbx``) into ``folder``."""
    view_layer = bpy.context.view_layer
    if camera.name not in view_layer.objects:
        raise ExportError(f"camera {camera.name} is not in the view layer {view_layer.name}; it cannot be exported")
    written: dict[str, str] = {}
    with _only_selected(view_layer, camera):
        for name in formats:
            path = folder / FILES[name]
            if name == "abc":
                result = bpy.ops.wm.alembic_export(
                    filepath=str(path),
                    start=frames[0],
                    end=frames[1],
                    selected=True,
                    visible_objects_only=False,
                    flatten=True,
                    uvs=False,
                    normals=False,
                    export_hair=False,
                    export_particles=False,
                    as_background_job=False,
                )
            else:
                if not _fbx_available():
                    raise ExportError("Blender's FBX exporter (io_scene_fbx) is not available")
                start, end = scene.frame_start, scene.frame_end
                scene.frame_start, scene.frame_end = frames
                try:
                    result = bpy.ops.export_scene.fbx(
                        filepath=str(path),
                        use_selection=True,
                        object_types={"CAMERA"},
                        bake_anim=True,
                        bake_anim_use_all_actions=False,
                        bake_anim_use_nla_strips=False,
                        bake_anim_simplify_factor=0.0,
                        add_leaf_bones=False,
                    )
                finally:
                    scene.frame_start, scene.frame_end = start, end
            if "FINISHED" not in result or not path.is_file():
                raise ExportError(f"Blender's {name.upper()} exporter did not write {path.name}")
            written[name] = FILES[name]
    return written

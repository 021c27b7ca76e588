"""Camera paths as ordinary keyframes on an imported photo's camera, and where a pivot or focus depth comes from.

The path itself is computed by ``motion.paths`` (no bpy); this module reads the photo's camera and depth through
``PhotoScene`` and writes F-curves. A path owns the camera object's ``location`` and ``rotation_euler`` and the
camera data's ``lens`` and ``dof.focus_distance``: applying a path removes whatever F-curves those had
first, so a second preset replaces the first instead of stacking on it. Other animation is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpy
import numpy as np

from ..scene.photo_scene import BASE_LENS_KEY, FRAMES_KEY, PATH_KEY, PhotoScene
from .paths import CameraPose, PathSettings, camera_path, focus_distances, sample_depth

OBJECT_PATHS = {"location": 3, "rotation_euler": 3}
DATA_PATHS = {"lens": 1, "dof.focus_distance": 1}


def pivot_depth_from_layer(photo: PhotoScene, layer_index: int) -> float:
    """Depth of a layer (package index, back to front): its median depth, or an MPI plane's depth."""
    for layer in photo.manifest.layers:
        if layer.index == int(layer_index):
            depth = layer.median_depth or layer.plane_depth
            if depth is None:
                depth = 0.5 * (layer.depth_range[0] + layer.depth_range[1])
            return float(depth)
    raise ValueError(f"{photo.name} has no layer {layer_index}")


def depth_at_pixel(photo: PhotoScene, u: float, v: float) -> float:
    """Depth at source pixel (u, v) (origin top-left, v down) from the package's harmonized depth map.

    For a viewport picker: turn the click into a pixel of the photo's camera frame first.
    """
    return sample_depth(photo.depth_map(), photo.scene_info(), u, v)


# -- F-curves, for Blender 4.2 (legacy actions) and 4.4+ (slotted actions) ----------------------------------
def _fcurve_collection(block: bpy.types.ID) -> Any | None:
    """The F-curves animating ``block``, or None. From 4.4 an action holds several slots (Blender puts a
    camera's object and data in one action) and ``Action.fcurves`` shows only the first slot's, so go
    through the channelbag of the block's own slot."""
    anim = block.animation_data
    if anim is None or anim.action is None:
        return None
    if hasattr(anim, "action_slot"):
        if anim.action_slot is None:
            return None
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        channelbag = action_get_channelbag_for_slot(anim.action, anim.action_slot)
        return None if channelbag is None else channelbag.fcurves
    return anim.action.fcurves


def _remove_fcurves(block: bpy.types.ID, data_paths: Sequence[str]) -> None:
    fcurves = _fcurve_collection(block)
    if fcurves is None:
        return
    for fcurve in [fc for fc in fcurves if fc.data_path in data_paths]:
        fcurves.remove(fcurve)


def _new_fcurve(block: bpy.types.ID, data_path: str, index: int) -> bpy.types.FCurve:
    anim = block.animation_data or block.animation_data_create()
    if anim.action is None:
        anim.action = bpy.data.actions.new(f"{block.name} Action")
    if hasattr(anim.action, "fcurve_ensure_for_datablock"):  # 4.4+: also makes and assigns the slot
        return anim.action.fcurve_ensure_for_datablock(block, data_path, index=index)
    return anim.action.fcurves.new(data_path, index=index)


def _write_fcurve(
    block: bpy.types.ID, data_path: str, index: int, frames: np.ndarray, values: np.ndarray, cyclic: bool
) -> bpy.types.FCurve:
    fcurve = _new_fcurve(block, data_path, index)
    points = fcurve.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    # A key on every frame: linear keeps sub-frame samples (motion blur) on the sampled path, no overshoot.
    for point in points:
        point.interpolation = "LINEAR"
    if cyclic:
        fcurve.modifiers.new("CYCLES")
    fcurve.update()
    return fcurve


def apply_camera_path(
    camera_obj: bpy.types.Object,
    poses: Sequence[CameraPose],
    frame_start: int = 1,
    *,
    preset: str = "",
    loop: bool = False,
    scene: bpy.types.Scene | None = None,
    focus_point: Sequence[float] | None = None,
) -> None:
    """Key ``poses`` (from ``camera_path``) on the camera, one per frame from ``frame_start``, replacing any
    earlier path.

    Location and rotation are the camera's local (camera-rig) transform; lens = base lens * ``lens_scale``.
    With ``loop`` a closing key at ``frame_start + len(poses)`` repeats the first and every F-curve gets a
    Cycles modifier, so the curve is exactly periodic beyond the range too. ``scene``: also set its frame
    range to the path's frames (``frame_start .. frame_start + len(poses) - 1``, seamless when looped).
    ``focus_point`` (camera-rig space, e.g. ``(0, 0, -pivot)``): key the depth-of-field focus distance so
    that point stays sharp while the camera moves (``set_depth_of_field`` turns DoF on).
    """
    if not poses:
        raise ValueError("a camera path needs at least one pose")
    data = camera_obj.data
    if BASE_LENS_KEY not in camera_obj:
        camera_obj[BASE_LENS_KEY] = float(data.lens)
    base_lens = float(camera_obj[BASE_LENS_KEY])

    _remove_fcurves(camera_obj, tuple(OBJECT_PATHS))
    _remove_fcurves(data, tuple(DATA_PATHS))

    keyed = list(poses) + ([poses[0]] if loop else [])
    frames = float(frame_start) + np.arange(len(keyed), dtype=np.float64)
    locations = np.array([pose.location for pose in keyed], dtype=np.float64)
    rotations = np.array([pose.rotation_euler for pose in keyed], dtype=np.float64)
    lenses = base_lens * np.array([pose.lens_scale for pose in keyed], dtype=np.float64)

    camera_obj.rotation_mode = "XYZ"
    for data_path, values in (("location", locations), ("rotation_euler", rotations)):
        for index in range(3):
            _write_fcurve(camera_obj, data_path, index, frames, values[:, index], loop)
    _write_fcurve(data, "lens", 0, frames, lenses, loop)
    if focus_point is not None:
        _write_fcurve(data, "dof.focus_distance", 0, frames, np.array(focus_distances(keyed, focus_point)), loop)

    last = int(frame_start) + len(poses) - 1
    camera_obj[PATH_KEY] = preset
    camera_obj[FRAMES_KEY] = [int(frame_start), last]
    if scene is not None:
        scene.frame_start, scene.frame_end = int(frame_start), last
        scene.frame_set(scene.frame_current)  # show the new keys' pose now, not at the next frame change


def clear_camera_path(camera_obj: bpy.types.Object) -> None:
    """Remove a path's keys and put the camera back where the photo was taken, with the photo's lens."""
    _remove_fcurves(camera_obj, tuple(OBJECT_PATHS))
    _remove_fcurves(camera_obj.data, tuple(DATA_PATHS))
    camera_obj.location = (0.0, 0.0, 0.0)
    camera_obj.rotation_euler = (0.0, 0.0, 0.0)
    if BASE_LENS_KEY in camera_obj:
        camera_obj.data.lens = float(camera_obj[BASE_LENS_KEY])
    for key in (PATH_KEY, FRAMES_KEY):
        if key in camera_obj:
            del camera_obj[key]


def set_depth_of_field(camera_obj: bpy.types.Object, focus_distance: float, fstop: float = 2.8) -> None:
    """Turn depth of field on, focused ``focus_distance`` along the view axis (the rig is 1:1, so a pivot's
    depth is its distance from the photo's camera). A path keyed with ``focus_point`` overrides the distance."""
    dof = camera_obj.data.dof
    dof.use_dof = True
    dof.focus_object = None  # a focus object would override the distance
    dof.focus_distance = float(focus_distance)
    dof.aperture_fstop = float(fstop)


def apply_preset(
    photo: PhotoScene,
    settings: PathSettings,
    scene: bpy.types.Scene | None = None,
    frame_start: int | None = None,
    fstop: float | None = None,
) -> list[CameraPose]:
    """Everything an operator does: the path of ``settings`` for an imported photo, keyed on its camera from
    ``frame_start`` (default: the scene's start), the scene's frame range set to it. With ``fstop``, depth of
    field is turned on and kept focused on the pivot. Returns the poses (e.g. for ``reveal_ratio`` warnings).
    """
    camera = photo.camera
    if camera is None:
        raise ValueError(f"{photo.name} has no camera")
    info = photo.scene_info()
    poses = camera_path(settings, info)
    pivot = settings.pivot_depth if settings.pivot_depth is not None else info.default_pivot
    if frame_start is None:
        frame_start = scene.frame_start if scene is not None else 1
    focus = (0.0, 0.0, -float(pivot)) if fstop is not None else None
    apply_camera_path(
        camera, poses, frame_start, preset=settings.preset, loop=settings.loop, scene=scene, focus_point=focus
    )
    if fstop is not None:
        set_depth_of_field(camera, float(pivot), fstop)
    return poses

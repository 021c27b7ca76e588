"""What Blender knows about an imported photo that a comp export needs: the camera at every frame and where
each layer object is. Read-only: the scene is left at the frame it was on."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ...core.errors import ExportError
from ...core.export.scene import CameraSample, sample_to_spec
from ...core.package import LayerPackage
from ...core.placement import layer_origins
from ..scene.photo_scene import LAYER_KEY, PhotoScene


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """The render's pixel size (resolution percentage applied); non-square pixels are refused."""
    render = scene.render
    if abs(render.pixel_aspect_x - render.pixel_aspect_y) > 1e-6:
        raise ExportError("the render has non-square pixels (Format > Aspect); comp exports need square pixels")
    scale = render.resolution_percentage / 100.0
    return max(1, round(render.resolution_x * scale)), max(1, round(render.resolution_y * scale))


def _moves(obj: bpy.types.Object) -> bool:
    """Whether anything can move ``obj`` or change its lens over time: keys, drivers or constraints on it,
    its camera data or any parent."""
    while obj is not None:
        for block in (obj, obj.data):
            animation = getattr(block, "animation_data", None)
            if animation is not None and (
                animation.action is not None or len(animation.drivers) or len(animation.nla_tracks)
            ):
                return True
        if len(obj.constraints):
            return True
        obj = obj.parent
    return False


def _sample(camera: bpy.types.Object, frame: int, width: int, height: int) -> dict:
    data = camera.data
    if data.type != "PERSP":
        raise ExportError(f"camera {camera.name} is {data.type.lower()}; comp exports need a perspective camera")
    fit = data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
        sensor = data.sensor_width
    else:
        sensor = data.sensor_height if fit == "VERTICAL" else data.sensor_width
    # A camera's scale does not change what it sees: drop it.
    matrix = np.array(camera.matrix_world.normalized(), np.float64)
    sample = CameraSample(
        frame=int(frame),
        matrix_world=matrix,
        lens_mm=float(data.lens),
        sensor_fit=fit,
        sensor_mm=float(sensor),
        shift_x=float(data.shift_x),
        shift_y=float(data.shift_y),
        clip_start=float(data.clip_start),
        clip_end=float(data.clip_end),
    )
    return sample_to_spec(sample)


def camera_samples(scene: bpy.types.Scene, camera: bpy.types.Object, frames: tuple[int, int]) -> list[dict]:
    """The camera at every frame of ``frames`` (inclusive); one sample when nothing moves it."""
    width, height = render_size(scene)
    start, end = frames
    if end < start:
        raise ExportError(f"the frame range {start}-{end} is empty")
    if not _moves(camera):
        return [_sample(camera, start, width, height)]
    current, subframe = scene.frame_current, scene.frame_subframe
    samples = []
    try:
        for frame in range(start, end + 1):
            scene.frame_set(frame)
            samples.append(_sample(camera, frame, width, height))
    finally:
        scene.frame_set(current, subframe=subframe)
    first = samples[0]
    if all(_same(first, sample) for sample in samples[1:]):
        return [first]  # keyed but still: a static camera
    return samples


def _same(a: dict, b: dict) -> bool:
    return all(
        np.allclose(a[key], b[key], rtol=0.0, atol=1e-9) if key != "sensor_fit" else a[key] == b[key]
        for key in a
        if key != "frame"
    )


def layer_matrices(photo: PhotoScene, package: LayerPackage) -> dict[str, list]:
    """For each layer object, the matrix taking the package's camera-space vertices to world space: the
    object's world matrix after the offset the scene builder gave its mesh (``layer_origins``)."""
    origins = dict(zip((layer.index for layer in package.layers), layer_origins(package.layers), strict=True))
    matrices = {}
    for obj in photo.layers:
        index = obj.get(LAYER_KEY)
        if index not in origins:
            continue
        matrix = obj.matrix_world @ Matrix.Translation(-np.asarray(origins[index], np.float64))
        matrices[str(index)] = np.array(matrix, np.float64).tolist()
    return matrices


def comp_spec(photo: PhotoScene, frames: tuple[int, int] | None = None) -> dict:
    """The camera spec ``core.export.scene.scene_from_spec`` takes, for the photo's scene and camera."""
    scene = photo.scene
    camera = scene.camera if scene.camera is not None else photo.camera
    if camera is None or camera.type != "CAMERA":
        raise ExportError("the scene has no camera to export")
    frames = frames or (scene.frame_start, scene.frame_end)
    return {
        "resolution": list(render_size(scene)),
        "fps": scene.render.fps / scene.render.fps_base,
        "camera": camera_samples(scene, camera, frames),
        "layers": layer_matrices(photo, photo.package()),
    }

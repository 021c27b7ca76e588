"""Blender camera settings and layer placement from a package's typed manifest; plain math, no bpy.

The projection itself is ``core.camera``'s; camera space is the package's (and Blender's camera-local)
convention: x right, y up, looking down -z.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.camera import Camera, blender_fit, clip_range

SENSOR_MM = 36.0


@dataclass(frozen=True)
class CameraSettings:
    """What a Blender camera and the render settings need to see exactly what the photo's camera saw."""

    resolution_x: int
    resolution_y: int
    sensor_fit: str
    sensor_width: float
    sensor_height: float
    lens: float
    shift_x: float
    shift_y: float
    clip_start: float
    clip_end: float


def camera_settings(camera: Camera, depth_min: float, depth_max: float) -> CameraSettings:
    """Blender camera data for the package's camera: the lens and shift are ``core.camera.blender_fit``'s."""
    fit = blender_fit(camera, SENSOR_MM)
    clip_start, clip_end = clip_range(depth_min, depth_max)
    return CameraSettings(
        resolution_x=camera.width,
        resolution_y=camera.height,
        sensor_fit=fit.sensor_fit,
        sensor_width=fit.sensor_mm,
        sensor_height=fit.sensor_mm,
        lens=fit.lens_mm,
        shift_x=fit.shift_x,
        shift_y=fit.shift_y,
        clip_start=clip_start,
        clip_end=clip_end,
    )


# EXIF orientation -> (rotation in degrees counter-clockwise, flip x, flip y) that shows the stored pixels upright.
EXIF_DISPLAY = {
    1: (0.0, False, False),
    2: (0.0, True, False),
    3: (180.0, False, False),
    4: (0.0, False, True),
    5: (90.0, True, False),
    6: (-90.0, False, False),
    7: (-90.0, True, False),
    8: (90.0, False, False),
}

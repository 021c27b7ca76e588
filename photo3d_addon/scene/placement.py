"""Blender camera settings and layer placement from a package's typed manifest; plain math, no bpy.

The projection itself is ``core.camera``'s; camera space is the package's (and Blender's camera-local)
convention: x right, y up, looking down -z.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...core.camera import Camera, blender_fit, clip_range
from ...core.package.manifest import LayerInfo

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


def layer_origins(layers: Sequence[LayerInfo]) -> list[tuple[float, float, float]]:
    """Camera-space object origins for the layers (back to front): on the view axis at each layer's depth.

    Eevee draws blended surfaces sorted by their object origin's distance to the camera. Origins at the
    layers' own centroids can sort a farther layer in front of a nearer one (seen with 12+ layers); on the
    axis, strictly nearer for each nearer layer, the draw order is the layer order from the photo's camera
    and stays close to it for camera moves.
    """
    origins = []
    previous = float("inf")
    for layer in layers:
        depth = float(layer.plane_depth or layer.median_depth or 0.0)
        if not depth > 0.0:
            depth = float(layer.depth_range[0])
        depth = min(depth, previous * (1.0 - 1e-4))
        origins.append((0.0, 0.0, -depth))
        previous = depth
    return origins


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

"""Blender camera and plane placement from a package's pinhole camera; plain math, no bpy.

Camera space is the package's (and Blender's camera-local) convention: x right, y up, looking down -z.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def camera_settings(camera: dict[str, Any], depth_min: float, depth_max: float) -> CameraSettings:
    """Blender camera data for the manifest's camera (focal length and principal point in source pixels).

    The sensor is fitted along the photo's longer side, so the lens maps ``focal_px`` onto that side, and
    Blender's lens shift (in units of the longer side) moves the principal point off the image centre.
    """
    width, height = int(camera["width"]), int(camera["height"])
    focal_px, cx, cy = float(camera["focal_px"]), float(camera["cx"]), float(camera["cy"])
    longer = max(width, height)
    return CameraSettings(
        resolution_x=width,
        resolution_y=height,
        sensor_fit="HORIZONTAL" if width >= height else "VERTICAL",
        sensor_width=SENSOR_MM,
        sensor_height=SENSOR_MM,
        lens=focal_px * SENSOR_MM / longer,
        # A positive shift moves the view right/up; the image's y axis points down.
        shift_x=(width / 2.0 - cx) / longer,
        shift_y=(cy - height / 2.0) / longer,
        # Generous clipping: camera moves must not cut the nearest layer or the backdrop.
        clip_start=max(1e-3, 0.05 * float(depth_min)),
        clip_end=max(100.0, 20.0 * float(depth_max)),
    )


def plane_corners(camera: dict[str, Any], depth: float) -> list[tuple[float, float, float]]:
    """Camera-space corners of the photo's frame at ``depth``: top-left, top-right, bottom-right, bottom-left."""
    width, height = float(camera["width"]), float(camera["height"])
    focal_px, cx, cy = float(camera["focal_px"]), float(camera["cx"]), float(camera["cy"])
    corners = []
    for u, v in ((0.0, 0.0), (width, 0.0), (width, height), (0.0, height)):
        corners.append(((u - cx) * depth / focal_px, -(v - cy) * depth / focal_px, -depth))
    return corners


def layer_origins(layers: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """Camera-space object origins for the layers (back to front): on the view axis at each layer's depth.

    Eevee draws blended surfaces sorted by their object origin's distance to the camera. Origins at the
    layers' own centroids can sort a farther layer in front of a nearer one (seen with 12+ layers); on the
    axis, strictly nearer for each nearer layer, the draw order is the layer order from the photo's camera
    and stays close to it for camera moves.
    """
    origins = []
    previous = float("inf")
    for layer in layers:
        depth = float(layer.get("plane_depth") or layer.get("median_depth") or 0.0)
        if not depth > 0.0:
            depth = float(layer["depth_range"][0])
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

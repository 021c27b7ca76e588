"""Pinhole camera of the photo and the camera-space convention of the package.

Camera space follows Blender/OpenGL: x right, y up, the camera at the origin looking down -z.
A pixel (u, v) (origin top-left, v down, pixel centres at +0.5) at depth Z maps to
x = (u - cx) * Z / f, y = -(v - cy) * Z / f, z = -Z.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    focal_px: float
    cx: float
    cy: float
    focal_source: str = "default"
    """Where the focal length came from: ``exif``, ``user`` or ``default``."""

    @property
    def fov_x_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.focal_px)))

    @property
    def fov_y_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.focal_px)))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fov_x_deg"] = self.fov_x_deg
        data["fov_y_deg"] = self.fov_y_deg
        return data

    def scaled(self, width: int, height: int) -> Camera:
        """The same camera for an image resampled to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Camera(width, height, self.focal_px * sx, self.cx * sx, self.cy * sy, self.focal_source)


def camera_from_fov(width: int, height: int, fov_x_deg: float, source: str = "default") -> Camera:
    focal = width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
    return Camera(width, height, focal, width / 2.0, height / 2.0, source)


def camera_from_focal(width: int, height: int, focal_px: float, source: str = "user") -> Camera:
    return Camera(width, height, float(focal_px), width / 2.0, height / 2.0, source)


def unproject(u: np.ndarray, v: np.ndarray, depth: np.ndarray, camera: Camera) -> np.ndarray:
    """Pixel coordinates (source resolution) and depth to float32 camera-space points (N, 3)."""
    z = np.asarray(depth, dtype=np.float64)
    x = (np.asarray(u, dtype=np.float64) - camera.cx) * z / camera.focal_px
    y = -(np.asarray(v, dtype=np.float64) - camera.cy) * z / camera.focal_px
    return np.stack([x, y, -z], axis=-1).astype(np.float32)

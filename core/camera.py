"""The one pinhole camera model: the photo's camera and the camera-space convention of the package.

Camera space follows Blender/OpenGL: x right, y up, the camera at the origin looking down -z.
A pixel (u, v) (origin top-left, v down, pixel centres at +0.5) at depth Z maps to
x = (u - cx) * Z / f, y = -(v - cy) * Z / f, z = -Z.

Projection, unprojection, frustum corners, field of view and the Blender camera fit live here and nowhere
else: the scene builder, the camera paths, the effects and the benchmark derive from them.
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

    @property
    def principal_point(self) -> tuple[float, float]:
        return (float(self.cx), float(self.cy))

    def project(
        self,
        points: np.ndarray,
        location: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
        rotation: np.ndarray | None = None,
        lens_scale: float = 1.0,
    ) -> np.ndarray:
        """Pixel coordinates (u, v) (..., 2) of points (..., 3) given in the photo camera's space.

        ``location``, ``rotation`` (3x3, camera-local to rig axes) and ``lens_scale`` place a moved camera
        with the same intrinsics; the defaults are the photo's own camera.
        """
        local = np.asarray(points, dtype=np.float64) - np.asarray(location, dtype=np.float64)
        if rotation is not None:
            local = local @ np.asarray(rotation, dtype=np.float64)  # R^T (p - c), row-wise
        focal = self.focal_px * float(lens_scale)
        depth = -local[..., 2]
        return np.stack([self.cx + focal * local[..., 0] / depth, self.cy - focal * local[..., 1] / depth], -1)

    def unproject(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixel coordinates and depth (distance along -z) to camera-space points (..., 3), float64."""
        z = np.asarray(depth, dtype=np.float64)
        x = (np.asarray(u, dtype=np.float64) - self.cx) * z / self.focal_px
        y = -(np.asarray(v, dtype=np.float64) - self.cy) * z / self.focal_px
        return np.stack(np.broadcast_arrays(x, y, -z), axis=-1)

    def frustum_corners(self, depth: float) -> list[tuple[float, float, float]]:
        """Camera-space corners of the photo's frame at ``depth``: top-left, top-right, bottom-right,
        bottom-left."""
        u = np.array([0.0, self.width, self.width, 0.0])
        v = np.array([0.0, 0.0, self.height, self.height])
        return [tuple(float(c) for c in point) for point in self.unproject(u, v, np.full(4, float(depth)))]

    def slopes(self) -> tuple[float, float, float, float]:
        """The frustum as x/Z and y/Z extents at unit depth: (left, right, bottom, top)."""
        f = float(self.focal_px)
        return (-self.cx / f, (self.width - self.cx) / f, -(self.height - self.cy) / f, self.cy / f)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fov_x_deg"] = self.fov_x_deg
        data["fov_y_deg"] = self.fov_y_deg
        return data

    def extended(self, border: int) -> Camera:
        """The same camera with its image grown by ``border`` pixels on every side (the same rays: pixel
        (u + border, v + border) of the result is pixel (u, v) of this one)."""
        b = int(border)
        grown = (self.width + 2 * b, self.height + 2 * b)
        return Camera(*grown, self.focal_px, self.cx + b, self.cy + b, self.focal_source)

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
    return camera.unproject(u, v, depth).astype(np.float32)


def euler_matrix(rotation_euler: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """3x3 rotation of Blender's XYZ Euler (X applied first): Rz @ Ry @ Rx."""
    rx, ry, rz = (float(a) for a in rotation_euler)
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return z @ y @ x


@dataclass(frozen=True)
class BlenderFit:
    """A Blender camera that sees exactly what a pinhole camera sees (render resolution = photo size)."""

    sensor_fit: str
    """``HORIZONTAL`` or ``VERTICAL``: the sensor spans the photo's longer side."""
    sensor_mm: float
    lens_mm: float
    shift_x: float
    """Lens shift in units of the longer side; positive moves the view right."""
    shift_y: float
    """Positive moves the view up (the image's v axis points down)."""


STAGE_EULER = (math.pi / 2.0, 0.0, 0.0)
"""Blender XYZ Euler of the rig that carries the photo's camera and layers: camera space looks down -z with y
up, and standing it up makes the photo face +Y, Blender's front view. The scene builder and the comp exports
place the photo with it."""


def clip_range(depth_min: float, depth_max: float) -> tuple[float, float]:
    """The camera's clipping distances for a scene spanning ``depth_min``..``depth_max``: generous, so camera
    moves cut neither the nearest layer nor the backdrop."""
    return max(1e-3, 0.05 * float(depth_min)), max(100.0, 20.0 * float(depth_max))


def blender_fit(camera: Camera, sensor_mm: float = 36.0) -> BlenderFit:
    """Blender's lens, sensor fit and lens shift for ``camera``: the sensor is fitted along the longer side,
    so the lens maps ``focal_px`` onto that side, and the shift moves the principal point off the centre."""
    longer = max(camera.width, camera.height)
    return BlenderFit(
        sensor_fit="HORIZONTAL" if camera.width >= camera.height else "VERTICAL",
        sensor_mm=float(sensor_mm),
        lens_mm=camera.focal_px * sensor_mm / longer,
        shift_x=(camera.width / 2.0 - camera.cx) / longer,
        shift_y=(camera.cy - camera.height / 2.0) / longer,
    )


def camera_from_blender(
    width: int, height: int, lens_mm: float, sensor_fit: str, sensor_mm: float, shift_x: float, shift_y: float
) -> Camera:
    """The pinhole camera a Blender camera is (the inverse of ``blender_fit``), for a ``width`` x ``height``
    render. ``sensor_fit`` is ``HORIZONTAL`` or ``VERTICAL`` (``AUTO`` resolved: the longer side), and
    ``sensor_mm`` the sensor size along that side; the shifts are in units of that side's pixels."""
    fit_px = float(width if sensor_fit == "HORIZONTAL" else height)
    focal = float(lens_mm) * fit_px / float(sensor_mm)
    return Camera(int(width), int(height), focal, width / 2.0 - shift_x * fit_px, height / 2.0 + shift_y * fit_px)

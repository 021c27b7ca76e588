"""Rectified stereo pairs with ground-truth disparity: the loaders, their depth and the right camera."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.camera import Camera

from . import load_script_module

MIDDLEBURY_2003_FOCAL_FACTOR = 1.0
"""Middlebury 2003 has no calibration: focal length = this x the image width (any value works)."""
MIDDLEBURY_2003_BASELINE_M = 0.1
MIDDLEBURY_2003_DISPARITY_SCALE = 4.0
"""disp2.pgm / disp6.pgm store 4 x disparity; 0 is unknown."""


@dataclass
class StereoPair:
    """A rectified stereo pair with ground-truth disparity of the left view (NaN = unknown)."""

    name: str
    left: np.ndarray
    """(h, w, 3) uint8."""
    right: np.ndarray
    """(h, w, 3) uint8."""
    disparity: np.ndarray
    """(h, w) float64 left disparity in pixels: left pixel u shows up at u - d in the right view."""
    focal_px: float
    baseline_m: float
    doffs_px: float
    """Difference of the principal points, cx_right - cx_left, in pixels (Middlebury's ``doffs``)."""
    right_disparity: np.ndarray | None = None
    """(h, w) float64 right disparity (NaN = unknown) when the pair has it: right u shows left u + d."""

    @property
    def depth(self) -> np.ndarray:
        """Metric depth Z = f B / (d + doffs); NaN where the disparity is unknown."""
        return depth_from_disparity(self.disparity, self.focal_px, self.baseline_m, self.doffs_px)


def depth_from_disparity(disparity: np.ndarray, focal_px: float, baseline_m: float, doffs_px: float) -> np.ndarray:
    """Z = f B / (d + doffs), NaN where ``disparity`` is NaN or not positive."""
    d = np.asarray(disparity, np.float64)
    known = np.isfinite(d) & (d > 0)
    depth = np.full(d.shape, np.nan)
    depth[known] = focal_px * baseline_m / (d[known] + doffs_px)
    return depth


@dataclass(frozen=True)
class RightCamera:
    """The right camera of a rectified pair: the core camera model placed in the left camera's space."""

    camera: Camera
    """Intrinsics of the right view: the left camera's f and cy, cx + doffs."""
    location: tuple[float, float, float]
    """(B, 0, 0): moved by the baseline along the left camera's +x (camera space: x right, y up, looking down -z)."""


def right_camera(
    width: int, height: int, focal_px: float, cx: float, cy: float, baseline_m: float, doffs_px: float
) -> RightCamera:
    """Right camera for a left camera (f, cx, cy): same f and cy, moved by B along +x, cx_r = cx + doffs.

    With Z = f B / (d + doffs), a left pixel u_l at depth Z projects to u_r = u_l - d exactly
    (``right.camera.project(points, location=right.location)``).
    """
    camera = Camera(int(width), int(height), float(focal_px), float(cx + doffs_px), float(cy))
    return RightCamera(camera=camera, location=(float(baseline_m), 0.0, 0.0))


def load_motorcycle() -> StereoPair:
    """scikit-image's Motorcycle pair (741x500) with the calibration of scripts/make_example.py."""
    from skimage.data import stereo_motorcycle

    example = load_script_module("make_example")
    left, right, disparity = stereo_motorcycle()
    d = np.asarray(disparity, np.float64)
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return StereoPair("motorcycle", left, right, d, example.FOCAL_PX, example.BASELINE_M, example.DOFFS_PX)


def load_middlebury_2003(folder: str | os.PathLike) -> StereoPair:
    """A Middlebury 2003 folder: im2.png (left), im6.png (right), disp2.pgm and disp6.pgm (4 x disparity)."""
    import cv2

    folder = Path(folder)
    images = {}
    for name in ("im2.png", "im6.png", "disp2.pgm", "disp6.pgm"):
        path = folder / name
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if data is None:
            raise SystemExit(f"{path}: missing or unreadable (a Middlebury 2003 folder needs {name})")
        images[name] = data
    left = cv2.cvtColor(images["im2.png"], cv2.COLOR_BGR2RGB)
    right = cv2.cvtColor(images["im6.png"], cv2.COLOR_BGR2RGB)

    def disparity(raw: np.ndarray) -> np.ndarray:
        d = raw.astype(np.float64) / MIDDLEBURY_2003_DISPARITY_SCALE
        d[raw == 0] = np.nan
        return d

    width = left.shape[1]
    return StereoPair(
        name=folder.name,
        left=left,
        right=right,
        disparity=disparity(images["disp2.pgm"]),
        focal_px=MIDDLEBURY_2003_FOCAL_FACTOR * width,
        baseline_m=MIDDLEBURY_2003_BASELINE_M,
        doffs_px=0.0,
        right_disparity=disparity(images["disp6.pgm"]),
    )


def load_pair(spec: str) -> StereoPair:
    """``motorcycle`` or a Middlebury 2003 folder."""
    if spec == "motorcycle":
        return load_motorcycle()
    return load_middlebury_2003(spec)

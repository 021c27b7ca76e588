"""The camera as a Nuke ``.chan`` file: one line per frame, ``frame tx ty tz rx ry rz vfov``.

Nuke's world is Y-up, Blender's Z-up: a point (x, y, z) in Blender is (x, z, -y) in Nuke, metres in both.
Rotations are degrees in Nuke's default rotation order ZXY (Z applied first, then X, then Y: the rotation
matrix is Ry @ Rx @ Rz), continuous from frame to frame. ``vfov`` is the vertical field of view in degrees
over the whole frame; with Nuke's camera set to the horizontal and vertical apertures the comp manifest
states (``camera.apertures_mm``), importing the file in the camera's File tab reproduces the lens. A lens
shift has no column: it is reported as a warning, and goes in the camera's ``win_translate``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .scene import CameraSample, CompScene

ROTATION_ORDER = "ZXY"

TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Blender world (Z up) to a Y-up world (Nuke's, glTF's): (x, y, z) -> (x, z, -y)."""


def euler_zxy_degrees(rotation: np.ndarray) -> np.ndarray:
    """Angles (rx, ry, rz) in degrees with ``rotation = Ry @ Rx @ Rz``."""
    r = np.asarray(rotation, np.float64)
    rx = math.asin(max(-1.0, min(1.0, -r[1, 2])))
    if abs(r[1, 2]) < 1.0 - 1e-12:
        ry = math.atan2(r[0, 2], r[2, 2])
        rz = math.atan2(r[1, 0], r[1, 1])
    else:  # gimbal lock: looking straight up or down; put the whole turn into Y
        ry = math.atan2(-r[2, 0], r[0, 0])
        rz = 0.0
    return np.degrees([rx, ry, rz])


def vertical_fov_degrees(sample: CameraSample, width: int, height: int) -> float:
    """The vertical field of view over the whole ``width`` x ``height`` frame."""
    _, vertical = sample.apertures_mm(width, height)
    return math.degrees(2.0 * math.atan(vertical / (2.0 * sample.lens_mm)))


def chan_rows(scene: CompScene) -> np.ndarray:
    """(frames, 8) rows ``frame tx ty tz rx ry rz vfov`` in Nuke's axes, the angles unwrapped over time."""
    rows = []
    for sample in scene.camera:
        matrix = np.asarray(sample.matrix_world, np.float64)
        translation = TO_Y_UP @ matrix[:3, 3]
        angles = euler_zxy_degrees(TO_Y_UP @ matrix[:3, :3])
        rows.append([sample.frame, *translation, *angles, vertical_fov_degrees(sample, scene.width, scene.height)])
    table = np.array(rows, np.float64)
    # A turn through +-180 degrees stays continuous: Nuke interpolates between the lines.
    table[:, 4:7] = np.degrees(np.unwrap(np.radians(table[:, 4:7]), axis=0))
    return table


def write_chan(scene: CompScene, path: Path) -> list[str]:
    """Write ``path``; returns warnings (a lens shift the file cannot carry)."""
    lines = []
    for row in chan_rows(scene):
        lines.append(" ".join([str(int(row[0]))] + [f"{value:.9g}" for value in row[1:]]))
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    shifted = [s.frame for s in scene.camera if abs(s.shift_x) > 1e-9 or abs(s.shift_y) > 1e-9]
    if shifted:
        first = scene.camera[0]
        return [
            f"camera.chan: the lens is shifted ({first.shift_x:.4g}, {first.shift_y:.4g}) and .chan has no column "
            "for it; set the Nuke camera's win_translate to twice those values"
        ]
    return []

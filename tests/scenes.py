"""Synthetic scenes with known answers, shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class SquareScene:
    """A textured square at depth ``near`` in front of a textured wall at depth ``far``."""

    rgb: np.ndarray  # (h, w, 3) uint8
    depth: np.ndarray  # (h, w) float32
    square: np.ndarray  # (h, w) bool
    near: float
    far: float

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        image, depth = folder / "square.png", folder / "square_depth.npy"
        Image.fromarray(self.rgb).save(image)
        np.save(depth, self.depth)
        return image, depth


def square_scene(h: int = 96, w: int = 128, near: float = 2.0, far: float = 5.0) -> SquareScene:
    yy, xx = np.mgrid[0:h, 0:w]
    # Wall: smooth blue-green stripes; square: warm checkerboard. Distinct colours, both textured.
    wall = np.stack(
        [40 + 20 * np.sin(xx / 5.0), 120 + 40 * np.sin(yy / 7.0), 170 + 30 * np.cos((xx + yy) / 9.0)], axis=-1
    )
    checker = ((yy // 6 + xx // 6) % 2).astype(np.float64)
    block = np.stack([200 + 40 * checker, 80 + 60 * checker, 40 + 0 * checker], axis=-1)
    square = (yy >= h // 4) & (yy < 3 * h // 4) & (xx >= w // 3) & (xx < 2 * w // 3)
    rgb = np.where(square[..., None], block, wall).clip(0, 255).astype(np.uint8)
    depth = np.where(square, near, far).astype(np.float32)
    return SquareScene(rgb, depth, square, near, far)


def write_motorcycle(image: Path, depth: Path) -> tuple[Path, Path]:
    """The Middlebury Motorcycle left photo (scikit-image) as ``image`` and its ground-truth depth as the NPY
    ``depth`` (``scripts/make_example.py``'s conversion); returns both paths."""
    from skimage.data import stereo_motorcycle

    from scripts.make_example import motorcycle_depth

    left, _, disparity = stereo_motorcycle()
    Image.fromarray(left).save(image)
    np.save(depth, motorcycle_depth(disparity))
    return image, depth


def square_package(folder: Path):
    """``square_scene`` converted into a layer package in ``folder`` (its given depth, superpixels, no
    network; about 2 s), read back."""
    from core.options import PipelineOptions
    from core.package import read_package
    from core.pipeline import convert_image

    image, depth = square_scene().write(folder / "in")
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    return read_package(convert_image(image, folder / "pkg", options).package_path)


def rotation_matrix(axis: str, degrees: float) -> np.ndarray:
    """A 4x4 rotation about the world ``axis`` ("x", "y" or "z") by ``degrees`` (column vectors)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    matrix = np.eye(4)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix

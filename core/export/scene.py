"""The scene a comp export writes: the layer cards in Blender's world and the camera at every frame.

Every writer (USD, glTF, the Nuke ``.chan``) takes a ``CompScene`` and nothing else, so they all describe
the same scene. It is made either from a package alone (``scene_from_package``: the photo's own, static
camera, placed as the scene builder places it) or from a package plus what Blender says about the scene
(``scene_from_spec``: the animated camera and each layer object's world matrix, gathered by the add-on).

World space is Blender's: Z up, metres. Camera-local space is Blender's and USD's and glTF's: x right, y up,
looking down -z. Matrices are 4x4 column-vector matrices (``world = M @ local``), as Blender's are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..camera import STAGE_EULER, Camera, blender_fit, camera_from_blender, clip_range, euler_matrix
from ..errors import ExportError
from ..package import LayerPackage
from ..placement import layer_origins

SENSOR_MM = 36.0
"""The sensor size (along the photo's longer side) the exports give the photo's camera, as the add-on does."""

MAX_FRAMES = 100_000
"""The most camera samples an export takes (over an hour at 24 fps)."""


@dataclass(frozen=True)
class CameraSample:
    """The camera at one frame: its world matrix and its Blender lens."""

    frame: int
    matrix_world: np.ndarray
    """4x4 float64, camera-local to world (no scale)."""
    lens_mm: float
    sensor_fit: str
    """``HORIZONTAL`` or ``VERTICAL``: the side the sensor size spans."""
    sensor_mm: float
    shift_x: float
    """Lens shift in units of the fitted side, as Blender's."""
    shift_y: float
    clip_start: float
    clip_end: float

    def intrinsics(self, width: int, height: int) -> Camera:
        """The pinhole camera this sample is for a ``width`` x ``height`` image."""
        return camera_from_blender(
            width, height, self.lens_mm, self.sensor_fit, self.sensor_mm, self.shift_x, self.shift_y
        )

    def apertures_mm(self, width: int, height: int) -> tuple[float, float]:
        """(horizontal, vertical) film size in millimetres for a ``width`` x ``height`` image."""
        if self.sensor_fit == "HORIZONTAL":
            return self.sensor_mm, self.sensor_mm * height / width
        return self.sensor_mm * width / height, self.sensor_mm

    def offsets_mm(self) -> tuple[float, float]:
        """(horizontal, vertical) film offset in millimetres: the lens shift."""
        return self.shift_x * self.sensor_mm, self.shift_y * self.sensor_mm

    def project(self, points_world: np.ndarray, width: int, height: int) -> np.ndarray:
        """Pixel coordinates (u, v) (origin top-left) of world points (..., 3) in a ``width`` x ``height`` image."""
        inverse = np.linalg.inv(self.matrix_world)
        local = np.asarray(points_world, np.float64) @ inverse[:3, :3].T + inverse[:3, 3]
        return self.intrinsics(width, height).project(local)


@dataclass(frozen=True)
class Card:
    """One layer: a textured triangle mesh in world space."""

    index: int
    name: str
    texture: Path
    """The layer's straight-alpha RGBA PNG (in the package)."""
    vertices: np.ndarray
    """(N, 3) float64, world space."""
    uvs: np.ndarray
    """(N, 2) float32, Blender's convention: origin at the texture's bottom-left."""
    faces: np.ndarray
    """(M, 3) int32, counter-clockwise seen from the photo's camera."""
    depth_range: tuple[float, float]
    opaque: bool
    """The backdrop of a mesh package: opaque everywhere."""
    origin: np.ndarray
    """World point the card's object sits at (``core.placement.layer_origins``: on the photo camera's axis at
    the layer's depth). Writers give the card this translation and its vertices relative to it, because
    renderers that sort transparent objects by their origin (Eevee, real-time engines) then draw the layers
    in order."""

    @property
    def local_vertices(self) -> np.ndarray:
        """The vertices relative to ``origin``."""
        return np.asarray(self.vertices, np.float64) - np.asarray(self.origin, np.float64)


@dataclass(frozen=True)
class CompScene:
    name: str
    width: int
    height: int
    fps: float
    cards: tuple[Card, ...]
    """Back to front, as in the package."""
    camera: tuple[CameraSample, ...]
    """One sample per frame, frames consecutive."""
    source: str
    """The photo the package was made from."""

    @property
    def frame_start(self) -> int:
        return self.camera[0].frame

    @property
    def frame_end(self) -> int:
        return self.camera[-1].frame

    @property
    def animated(self) -> bool:
        return len(self.camera) > 1


def stage_matrix() -> np.ndarray:
    """The world matrix of the rig carrying the photo's camera and layers (``core.camera.STAGE_EULER``)."""
    matrix = np.eye(4)
    matrix[:3, :3] = euler_matrix(STAGE_EULER)
    return matrix


def _transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def _cards(package: LayerPackage, matrices: Mapping[int, np.ndarray]) -> tuple[Card, ...]:
    cards = []
    backdrop = package.representation == "mesh"
    origins = layer_origins(package.layers)
    for position, layer in enumerate(package.layers):
        matrix = matrices.get(layer.index, stage_matrix())
        if layer.plane_depth is not None:
            vertices = np.asarray(package.manifest.camera.frustum_corners(layer.plane_depth), np.float64)
            uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
            faces = np.array([[0, 3, 2], [0, 2, 1]], np.int32)
        else:
            arrays = package.load_mesh(layer)
            vertices, uvs, faces = arrays["vertices"].astype(np.float64), arrays["uvs"], arrays["faces"]
        cards.append(
            Card(
                index=layer.index,
                name=layer.name,
                texture=package.path_of(layer.texture),
                vertices=_transform(matrix, vertices),
                uvs=np.asarray(uvs, np.float32),
                faces=np.asarray(faces, np.int32),
                depth_range=(float(layer.depth_range[0]), float(layer.depth_range[1])),
                opaque=backdrop and position == 0,
                origin=_transform(matrix, np.asarray(origins[position], np.float64)),
            )
        )
    if not cards:
        raise ExportError(f"{package.root}: the package has no layers, nothing to export")
    return tuple(cards)


def _still_camera(package: LayerPackage, frame: int = 1) -> CameraSample:
    manifest = package.manifest
    fit = blender_fit(manifest.camera, SENSOR_MM)
    start, end = clip_range(manifest.depth.min, manifest.depth.max)
    return CameraSample(
        frame, stage_matrix(), fit.lens_mm, fit.sensor_fit, fit.sensor_mm, fit.shift_x, fit.shift_y, start, end
    )


def scene_name(package: LayerPackage) -> str:
    return Path(package.manifest.source.path).stem or "photo"


def scene_from_package(package: LayerPackage, fps: float = 24.0) -> CompScene:
    """The package as the scene builder places it, seen by the photo's own camera (one frame, static)."""
    camera = package.manifest.camera
    return CompScene(
        name=scene_name(package),
        width=camera.width,
        height=camera.height,
        fps=float(fps),
        cards=_cards(package, {}),
        camera=(_still_camera(package),),
        source=package.manifest.source.path,
    )


def _number(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExportError(f"camera spec: {where} must be a finite number, not {value!r}")
    if not lo <= value <= hi:
        raise ExportError(f"camera spec: {where} must be in [{lo}, {hi}], not {value!r}")
    return float(value)


def _matrix(value: Any, where: str) -> np.ndarray:
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise ExportError(f"camera spec: {where} must be a 4x4 matrix of finite numbers")
    if not np.allclose(matrix[3], (0, 0, 0, 1)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-9:
        raise ExportError(f"camera spec: {where} is not an invertible affine transform")
    return matrix


def _sample(entry: Any, where: str) -> CameraSample:
    if not isinstance(entry, dict):
        raise ExportError(f"camera spec: {where} must be an object")
    try:
        frame = entry["frame"]
        fit = entry["sensor_fit"]
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise ExportError(f"camera spec: {where}.frame must be an integer")
        if fit not in ("HORIZONTAL", "VERTICAL"):
            raise ExportError(f"camera spec: {where}.sensor_fit must be HORIZONTAL or VERTICAL, not {fit!r}")
        matrix = _matrix(entry["matrix_world"], f"{where}.matrix_world")
        scale = np.linalg.norm(matrix[:3, :3], axis=0)
        if not np.allclose(scale, 1.0, atol=1e-4):
            raise ExportError(
                f"camera spec: {where}.matrix_world is scaled ({scale.round(4).tolist()}); unscale the camera"
            )
        clip_start = _number(entry["clip_start"], f"{where}.clip_start", 1e-6, 1e12)
        return CameraSample(
            frame=frame,
            matrix_world=matrix,
            lens_mm=_number(entry["lens_mm"], f"{where}.lens_mm", 1e-3, 1e6),
            sensor_fit=fit,
            sensor_mm=_number(entry["sensor_mm"], f"{where}.sensor_mm", 1e-3, 1e6),
            shift_x=_number(entry["shift_x"], f"{where}.shift_x", -100, 100),
            shift_y=_number(entry["shift_y"], f"{where}.shift_y", -100, 100),
            clip_start=clip_start,
            clip_end=_number(entry["clip_end"], f"{where}.clip_end", clip_start, 1e12),
        )
    except KeyError as exc:
        raise ExportError(f"camera spec: {where} has no {exc.args[0]!r}") from None


def scene_from_spec(package: LayerPackage, spec: Mapping[str, Any]) -> CompScene:
    """The package placed and seen as a Blender scene describes it.

    ``spec``: ``{"resolution": [w, h], "fps": f, "camera": [sample, ...], "layers": {"<index>": matrix}}``,
    each sample ``{"frame", "matrix_world", "lens_mm", "sensor_fit", "sensor_mm", "shift_x", "shift_y",
    "clip_start", "clip_end"}``; a layer without a matrix sits where the scene builder puts it.
    """
    if not isinstance(spec, Mapping):
        raise ExportError("camera spec: must be a JSON object")
    resolution = spec.get("resolution")
    if (
        not isinstance(resolution, list)
        or len(resolution) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536 for v in resolution)
    ):
        raise ExportError(f"camera spec: resolution must be [width, height] in pixels, not {resolution!r}")
    fps = _number(spec.get("fps"), "fps", 1e-3, 1000.0)
    samples = spec.get("camera")
    if not isinstance(samples, Sequence) or isinstance(samples, (str, bytes)) or not samples:
        raise ExportError("camera spec: camera must be a non-empty list of per-frame samples")
    if len(samples) > MAX_FRAMES:
        raise ExportError(f"camera spec: {len(samples)} camera samples; at most {MAX_FRAMES}")
    camera = tuple(_sample(entry, f"camera[{i}]") for i, entry in enumerate(samples))
    frames = [sample.frame for sample in camera]
    if frames != list(range(frames[0], frames[0] + len(frames))):
        raise ExportError("camera spec: the camera samples' frames must be consecutive and increasing")
    layers = spec.get("layers", {})
    if not isinstance(layers, Mapping):
        raise ExportError("camera spec: layers must map a layer index to its world matrix")
    known = {layer.index for layer in package.layers}
    matrices = {}
    for key, value in layers.items():
        if not str(key).isdigit() or int(key) not in known:
            raise ExportError(f"camera spec: layers names layer {key!r}, which the package does not have")
        matrices[int(key)] = _matrix(value, f"layers[{key}]")
    return CompScene(
        name=scene_name(package),
        width=resolution[0],
        height=resolution[1],
        fps=fps,
        cards=_cards(package, matrices),
        camera=camera,
        source=package.manifest.source.path,
    )


def sample_to_spec(sample: CameraSample) -> dict[str, Any]:
    """One camera sample as the spec's JSON (the add-on writes these)."""
    return {
        "frame": sample.frame,
        "matrix_world": np.asarray(sample.matrix_world, np.float64).tolist(),
        "lens_mm": sample.lens_mm,
        "sensor_fit": sample.sensor_fit,
        "sensor_mm": sample.sensor_mm,
        "shift_x": sample.shift_x,
        "shift_y": sample.shift_y,
        "clip_start": sample.clip_start,
        "clip_end": sample.clip_end,
    }

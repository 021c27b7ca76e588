"""The scene as a self-contained binary glTF 2.0 (``.glb``): unlit textured cards and the camera.

glTF's world is Y-up, Blender's Z-up: a point (x, y, z) in Blender is (x, z, -y) in glTF, metres in both
(Blender's glTF importer undoes this). Camera-local space is the same in both (x right, y up, looking down
-z), so the camera node's world matrix is the axis change applied to Blender's: ``C @ M``.

Each card is one node with one mesh (the node translated to the layer's origin, ``Card.origin``, so
viewers that sort transparent objects by their origin draw the layers in order) and one
``KHR_materials_unlit`` material whose base colour texture is the layer's PNG, embedded as it is in the
package. The camera is a perspective camera on a node ``Camera``; an animated camera gets an animation
``Camera`` with linear translation and rotation samplers, one key per frame. glTF has no lens shift and
cannot animate the field of view: either is reported as a warning (the first frame's field of view is
written). Written by this module alone (``json`` + ``struct`` + numpy), atomically.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError
from .scene import CameraSample, Card, CompScene

TO_Y_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], np.float64
)
"""Blender world (Z up) to glTF's (Y up): (x, y, z) -> (x, z, -y), as a 4x4 matrix."""

GENERATOR = "Photo3D"
UNLIT = "KHR_materials_unlit"

GLB_MAGIC = 0x46546C67  # "glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
MAX_GLB_BYTES = 2**32 - 1

ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT = 5126
UNSIGNED_SHORT = 5123
UNSIGNED_INT = 5125
LINEAR = 9729
CLAMP_TO_EDGE = 33071
TRIANGLES = 4

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHIFT_TOLERANCE = 1e-9
FOV_TOLERANCE = 1e-9


def vertical_fov(sample: CameraSample, width: int, height: int) -> float:
    """glTF's ``yfov`` in radians: the vertical field of view over the whole ``width`` x ``height`` frame."""
    _, vertical = sample.apertures_mm(width, height)
    return 2.0 * math.atan(vertical / (2.0 * sample.lens_mm))


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """The unit quaternion (x, y, z, w) of a 3x3 rotation matrix (column-vector convention)."""
    r = np.asarray(rotation, np.float64)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0.0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    quat = np.array(q, np.float64)
    return quat / np.linalg.norm(quat)


def camera_trs(sample: CameraSample) -> tuple[np.ndarray, np.ndarray]:
    """(translation, rotation xyzw) of the camera node in glTF's world for one sample."""
    matrix = TO_Y_UP @ np.asarray(sample.matrix_world, np.float64)
    if not np.isfinite(matrix).all():
        raise ExportError(f"frame {sample.frame}: the camera's world matrix is not finite")
    # Take the nearest rotation (polar decomposition): the matrix may carry a little scale or shear.
    u, _, vt = np.linalg.svd(matrix[:3, :3])
    if np.linalg.det(u @ vt) < 0.0:
        raise ExportError(f"frame {sample.frame}: the camera's world matrix is mirrored; glTF cannot carry that")
    return matrix[:3, 3].copy(), quaternion_xyzw(u @ vt)


class _Builder:
    """The JSON document and the binary chunk, grown together."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.doc: dict[str, Any] = {
            "asset": {"version": "2.0", "generator": GENERATOR},
            "extensionsUsed": [UNLIT],
            "scene": 0,
            "scenes": [],
            "nodes": [],
            "meshes": [],
            "materials": [],
            "textures": [],
            "images": [],
            "samplers": [],
            "accessors": [],
            "bufferViews": [],
            "buffers": [],
        }

    def _add(self, key: str, item: dict[str, Any]) -> int:
        self.doc.setdefault(key, []).append(item)
        return len(self.doc[key]) - 1

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        return self._add("bufferViews", view)

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {
            np.dtype(np.float32): FLOAT,
            np.dtype(np.uint16): UNSIGNED_SHORT,
            np.dtype(np.uint32): UNSIGNED_INT,
        }
        accessor: dict[str, Any] = {
            "bufferView": self.view(array.astype(array.dtype.newbyteorder("<")).tobytes(), target),
            "componentType": component[array.dtype],
            "count": int(array.shape[0]),
            "type": kind,
        }
        if bounds:
            flat = array.reshape(array.shape[0], -1)
            # Python floats of float32 values are exact, and their repr reads back as the same float32.
            accessor["min"] = [float(v) for v in flat.min(axis=0)]
            accessor["max"] = [float(v) for v in flat.max(axis=0)]
        return self._add("accessors", accessor)

    def glb(self) -> bytes:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self.doc["buffers"] = [{"byteLength": len(self.blob)}]
        doc = {key: value for key, value in self.doc.items() if value != []}
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        text += b" " * (-len(text) % 4)
        total = 12 + 8 + len(text) + 8 + len(self.blob)
        if total > MAX_GLB_BYTES:
            raise ExportError(f"the glTF binary would be {total} bytes; a .glb holds at most 4 GiB")
        return b"".join(
            [
                struct.pack("<III", GLB_MAGIC, GLB_VERSION, total),
                struct.pack("<II", len(text), CHUNK_JSON),
                text,
                struct.pack("<II", len(self.blob), CHUNK_BIN),
                bytes(self.blob),
            ]
        )


def _texture_bytes(card: Card) -> bytes:
    try:
        data = Path(card.texture).read_bytes()
    except OSError as exc:
        raise ExportError(f"{card.name}: cannot read its texture {card.texture}: {exc.strerror or exc}") from None
    if not data.startswith(PNG_SIGNATURE):
        raise ExportError(f"{card.name}: its texture {card.texture} is not a PNG file")
    return data


def _card_arrays(card: Card) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vertices = card.local_vertices
    uvs = np.asarray(card.uvs, np.float64)
    faces = np.asarray(card.faces)
    count = vertices.shape[0] if vertices.ndim == 2 else 0
    if vertices.ndim != 2 or vertices.shape[1] != 3 or count == 0 or not np.isfinite(vertices).all():
        raise ExportError(f"{card.name}: its vertices must be a non-empty (N, 3) array of finite numbers")
    if uvs.shape != (count, 2) or not np.isfinite(uvs).all():
        raise ExportError(f"{card.name}: its uvs must be an ({count}, 2) array of finite numbers")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0 or not np.issubdtype(faces.dtype, np.integer):
        raise ExportError(f"{card.name}: its faces must be a non-empty (M, 3) array of vertex indices")
    if faces.min() < 0 or faces.max() >= count:
        raise ExportError(f"{card.name}: a face refers to a vertex it does not have")
    positions = (vertices @ TO_Y_UP[:3, :3].T).astype(np.float32)
    texcoords = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=-1).astype(np.float32)
    # 65535 is reserved (primitive restart) in an unsigned short index buffer.
    indices = faces.reshape(-1).astype(np.uint16 if count <= 65535 else np.uint32)
    return positions, texcoords, indices


def card_name(card: Card) -> str:
    """The name of a card's node, mesh, material and image: ``L00 layer_00``, as the USD prims' ``L00_layer_00``."""
    return f"L{card.index:02d} {card.name}"


def _add_card(builder: _Builder, card: Card, sampler: int) -> int:
    positions, texcoords, indices = _card_arrays(card)
    name = card_name(card)
    image = builder._add(
        "images", {"name": name, "mimeType": "image/png", "bufferView": builder.view(_texture_bytes(card))}
    )
    texture = builder._add("textures", {"sampler": sampler, "source": image})
    material = builder._add(
        "materials",
        {
            "name": name,
            "pbrMetallicRoughness": {
                "baseColorTexture": {"index": texture},
                "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                "metallicFactor": 0.0,
                "roughnessFactor": 1.0,
            },
            "alphaMode": "OPAQUE" if card.opaque else "BLEND",
            "doubleSided": True,
            "extensions": {UNLIT: {}},
        },
    )
    primitive = {
        "attributes": {
            "POSITION": builder.accessor(positions, "VEC3", ARRAY_BUFFER, bounds=True),
            "TEXCOORD_0": builder.accessor(texcoords, "VEC2", ARRAY_BUFFER),
        },
        "indices": builder.accessor(indices, "SCALAR", ELEMENT_ARRAY_BUFFER),
        "material": material,
        "mode": TRIANGLES,
    }
    mesh = builder._add("meshes", {"name": name, "primitives": [primitive]})
    extras = {"photo3d_layer_index": int(card.index), "photo3d_depth_range": [float(v) for v in card.depth_range]}
    translation = [float(v) for v in TO_Y_UP[:3, :3] @ np.asarray(card.origin, np.float64)]
    return builder._add("nodes", {"name": name, "mesh": mesh, "translation": translation, "extras": extras})


def _add_camera(builder: _Builder, scene: CompScene) -> int:
    first = scene.camera[0]
    if not (0.0 < first.clip_start < first.clip_end and math.isfinite(first.clip_end)):
        raise ExportError(f"the camera's clipping range {first.clip_start}..{first.clip_end} is not usable")
    perspective = {
        "yfov": vertical_fov(first, scene.width, scene.height),
        "aspectRatio": scene.width / scene.height,
        "znear": float(first.clip_start),
        "zfar": float(first.clip_end),
    }
    camera = builder._add("cameras", {"name": "Camera", "type": "perspective", "perspective": perspective})
    trs = [camera_trs(sample) for sample in scene.camera]
    translations = np.array([t for t, _ in trs], np.float64)
    rotations = np.array([q for _, q in trs], np.float64)
    # q and -q are the same rotation: keep neighbours in one hemisphere so each key interpolates the short way.
    for i in range(1, len(rotations)):
        if np.dot(rotations[i - 1], rotations[i]) < 0.0:
            rotations[i] = -rotations[i]
    node = builder._add(
        "nodes",
        {
            "name": "Camera",
            "camera": camera,
            "translation": [float(v) for v in translations[0]],
            "rotation": [float(v) for v in rotations[0]],
        },
    )
    if scene.animated:
        times = np.array([(s.frame - scene.frame_start) / scene.fps for s in scene.camera], np.float32)
        if not (np.diff(times) > 0).all():
            raise ExportError("the camera's frames must be consecutive and increasing")
        time = builder.accessor(times, "SCALAR", bounds=True)
        samplers = [
            {
                "input": time,
                "interpolation": "LINEAR",
                "output": builder.accessor(translations.astype(np.float32), "VEC3"),
            },
            {
                "input": time,
                "interpolation": "LINEAR",
                "output": builder.accessor(rotations.astype(np.float32), "VEC4"),
            },
        ]
        channels = [
            {"sampler": 0, "target": {"node": node, "path": "translation"}},
            {"sampler": 1, "target": {"node": node, "path": "rotation"}},
        ]
        builder._add("animations", {"name": "Camera", "samplers": samplers, "channels": channels})
    return node


def _warnings(scene: CompScene, name: str) -> list[str]:
    warnings = []
    fovs = [vertical_fov(sample, scene.width, scene.height) for sample in scene.camera]
    if max(fovs) - min(fovs) > FOV_TOLERANCE:
        warnings.append(
            f"{name}: the lens changes during the shot (vertical field of view "
            f"{math.degrees(min(fovs)):.4g} to {math.degrees(max(fovs)):.4g} degrees) and glTF cannot animate it; "
            f"the camera keeps frame {scene.frame_start}'s"
        )
    shifted = [s for s in scene.camera if abs(s.shift_x) > SHIFT_TOLERANCE or abs(s.shift_y) > SHIFT_TOLERANCE]
    if shifted:
        warnings.append(
            f"{name}: the lens is shifted ({shifted[0].shift_x:.4g}, {shifted[0].shift_y:.4g} at frame "
            f"{shifted[0].frame}) and a glTF camera has no lens shift; the glTF camera looks through the frame's "
            "centre, so the cards will not line up with the photo"
        )
    return warnings


def glb_bytes(scene: CompScene) -> bytes:
    """The whole ``.glb`` file for ``scene``."""
    if not scene.cards:
        raise ExportError("the scene has no cards, nothing to export")
    if not scene.camera:
        raise ExportError("the scene has no camera")
    if not (scene.width > 0 and scene.height > 0 and scene.fps > 0):
        raise ExportError(f"the scene's size {scene.width}x{scene.height} at {scene.fps} fps is not usable")
    builder = _Builder()
    sampler = builder._add(
        "samplers", {"magFilter": LINEAR, "minFilter": LINEAR, "wrapS": CLAMP_TO_EDGE, "wrapT": CLAMP_TO_EDGE}
    )
    nodes = [_add_card(builder, card, sampler) for card in scene.cards]
    nodes.append(_add_camera(builder, scene))
    builder.doc["scenes"] = [{"name": scene.name, "nodes": nodes}]
    return builder.glb()


def write_glb(scene: CompScene, path: Path) -> list[str]:
    """Write ``scene`` to ``path`` as a ``.glb``; returns warnings (a lens shift or change glTF cannot carry).

    A missing or unreadable texture is an ``ExportError`` naming it; the file is written atomically (a
    temporary file next to it, then renamed), so a failure leaves no file and an earlier one untouched.
    """
    path = Path(path)
    data = glb_bytes(scene)
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # a temporary file is private; the export is an ordinary file
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return _warnings(scene, path.name)

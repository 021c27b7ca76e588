"""The layer package: the versioned on-disk contract between the worker and Blender.

A package is a directory holding ``manifest.json``, one RGBA PNG texture per layer (straight alpha, source
resolution) and, for the mesh representation, one NPZ per layer (float32 camera-space vertices, float32
UVs, int32 faces). It is written into a temporary sibling and renamed into place, so a failed or
cancelled job never leaves a half-written package. This module imports only numpy, so Blender can read
packages with it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError, PackageError

FORMAT_NAME = "photo3d.layers"
FORMAT_VERSION = "1.0"
MANIFEST_NAME = "manifest.json"
MESH_ARRAYS = {"vertices": (np.float32, 3), "uvs": (np.float32, 2), "faces": (np.int32, 3)}


@dataclass
class LayerPackage:
    """A package read from disk and validated; paths in the manifest resolve through ``path_of``."""

    root: Path
    manifest: dict[str, Any]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return self.manifest["layers"]

    @property
    def representation(self) -> str:
        return self.manifest["representation"]

    def path_of(self, relative: str) -> Path:
        return _inside(self.root, relative)

    def load_mesh(self, layer: dict[str, Any]) -> dict[str, np.ndarray]:
        """The layer's mesh arrays, checked for shape, dtype and face indices."""
        return load_mesh_file(self.path_of(layer["mesh"]))


def _inside(root: Path, relative: str) -> Path:
    """Resolve a manifest path, refusing absolute paths and anything that leaves the package."""
    if not isinstance(relative, str) or not relative:
        raise PackageError(f"invalid path in manifest: {relative!r}")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")) or ":" in relative:
        raise PackageError(f"path in manifest must be relative to the package: {relative!r}")
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise PackageError(f"path in manifest leaves the package: {relative!r}")
    return resolved


def load_mesh_file(path: Path) -> dict[str, np.ndarray]:
    """Read a layer mesh NPZ and check every array's dtype and shape."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in MESH_ARRAYS if name in data.files}
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read mesh {path.name}: {exc}") from exc
    for name, (dtype, columns) in MESH_ARRAYS.items():
        if name not in arrays:
            raise PackageError(f"mesh {path.name} has no '{name}' array")
        array = arrays[name]
        if array.dtype != dtype or array.ndim != 2 or array.shape[1] != columns:
            raise PackageError(
                f"mesh {path.name}: '{name}' must be {np.dtype(dtype).name} (N, {columns}), "
                f"got {array.dtype} {array.shape}"
            )
    vertices, uvs, faces = arrays["vertices"], arrays["uvs"], arrays["faces"]
    if len(uvs) != len(vertices):
        raise PackageError(f"mesh {path.name}: {len(uvs)} UVs for {len(vertices)} vertices")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise PackageError(f"mesh {path.name}: face indices outside 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all() or not np.isfinite(uvs).all():
        raise PackageError(f"mesh {path.name}: non-finite vertex or UV values")
    return arrays


def _check_manifest(manifest: Any) -> None:
    if not isinstance(manifest, dict):
        raise PackageError("manifest.json must hold a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise PackageError(f"not a Photo3D layer package (format {manifest.get('format')!r})")
    version = str(manifest.get("version", ""))
    major = version.split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        raise PackageError(
            f"package format version {version!r} is not supported (this reader reads {FORMAT_VERSION}); "
            "update Photo3D or re-create the package"
        )
    for key in ("source", "camera", "depth", "representation", "layers"):
        if key not in manifest:
            raise PackageError(f"manifest.json has no '{key}'")
    if manifest["representation"] not in ("mesh", "mpi"):
        raise PackageError(f"unknown representation {manifest['representation']!r}")
    if not isinstance(manifest["layers"], list) or not manifest["layers"]:
        raise PackageError("manifest.json lists no layers")
    camera = manifest["camera"]
    for key in ("width", "height", "focal_px", "cx", "cy"):
        if not isinstance(camera.get(key), int | float) or camera[key] <= 0 and key in ("width", "height"):
            raise PackageError(f"camera '{key}' is missing or invalid")


def read_package(path: str | os.PathLike, check_meshes: bool = True) -> LayerPackage:
    """Open and validate a package directory; raises ``PackageError`` naming what is wrong."""
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise PackageError(f"no {MANIFEST_NAME} in {root}: not a Photo3D layer package")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"cannot read {manifest_path}: {exc}") from exc
    _check_manifest(manifest)
    package = LayerPackage(root=root, manifest=manifest)
    for index, layer in enumerate(manifest["layers"]):
        if not isinstance(layer, dict):
            raise PackageError(f"layer {index} is not an object")
        texture = package.path_of(layer.get("texture"))
        if not texture.is_file():
            raise PackageError(f"layer {index}: texture {layer.get('texture')} is missing")
        if manifest["representation"] == "mesh":
            mesh = package.path_of(layer.get("mesh"))
            if not mesh.is_file():
                raise PackageError(f"layer {index}: mesh {layer.get('mesh')} is missing")
            if check_meshes:
                load_mesh_file(mesh)
        elif not isinstance(layer.get("plane_depth"), int | float) or layer["plane_depth"] <= 0:
            raise PackageError(f"layer {index}: MPI plane needs a positive 'plane_depth'")
    return package


def save_mesh_file(path: Path, vertices: np.ndarray, uvs: np.ndarray, faces: np.ndarray) -> None:
    np.savez(
        path,
        vertices=np.ascontiguousarray(vertices, dtype=np.float32),
        uvs=np.ascontiguousarray(uvs, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int32),
    )


def write_package_atomically(out_dir: str | os.PathLike, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Call ``fill(tmp_dir)`` to write files and return the manifest; then move the result into place.

    An existing package at ``out_dir`` is replaced; an existing directory that is not a package and not
    empty is refused, so user files are never deleted. Any exception (including cancellation) removes
    the temporary directory and leaves ``out_dir`` as it was.
    """
    out = Path(out_dir).absolute()
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"output {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
            raise OutputError(f"output folder {out} is not empty and holds no Photo3D package; choose another")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from exc
    try:
        manifest = fill(tmp)
        manifest_text = json.dumps(manifest, indent=2, allow_nan=False)
        (tmp / MANIFEST_NAME).write_text(manifest_text, encoding="utf-8")
        read_package(tmp)  # never publish a package our own reader would reject
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write package {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def update_manifest(package_dir: str | os.PathLike, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge top-level keys into a written package's manifest, replacing the file atomically."""
    path = Path(package_dir) / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(updates)
    tmp = path.with_name(MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)
    return manifest

"""Reading a layer package: total, typed and checked.

``read_package`` returns a package whose manifest is typed (``core.package.manifest``) and consistent and
whose every file is a regular file inside the folder, of bounded size, in the promised format, or it raises
``PackageError`` naming what is wrong, never another exception. Imports only numpy and the standard library,
so Blender reads packages with it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PackageError
from ..png_check import PngProblem, read_header
from ..safe_json import JSONRejected, parse_json
from .files import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    check_texture,
    inside_package,
    load_depth_map,
    load_mesh_file,
    npy_header,
    npz_members,
)
from .manifest import LayerInfo, Manifest, parse_manifest


@dataclass
class LayerPackage:
    """A package read from disk and validated: its typed manifest, and its files through ``path_of``."""

    root: Path
    manifest: Manifest

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        return self.manifest.layers

    @property
    def representation(self) -> str:
        return self.manifest.representation

    def path_of(self, relative: str) -> Path:
        """A file the manifest names, checked to be a regular file inside the package."""
        return inside_package(self.root, relative)

    def depth_map_path(self) -> Path:
        return self.path_of(self.manifest.depth.map)

    def load_mesh(self, layer: LayerInfo) -> dict[str, np.ndarray]:
        """The layer's mesh arrays, checked for shape, dtype and face indices."""
        if layer.mesh is None:
            raise PackageError(f"layer {layer.index} has no mesh: this is an MPI package")
        return load_mesh_file(self.path_of(layer.mesh))

    def in_frame(self, layer: LayerInfo, texture: np.ndarray) -> np.ndarray:
        """The part of ``layer``'s texture pixels (h, w, ...) inside the photo's frame: a layer with a
        ``border`` reaches that far past each edge, and its pixel (border, border) is the photo's first."""
        b = layer.border or 0
        return texture[b : texture.shape[0] - b, b : texture.shape[1] - b] if b else texture

    def load_depth_map(self) -> np.ndarray:
        """The harmonized depth map (float32, working resolution), checked."""
        return load_depth_map(self.depth_map_path(), self.manifest.work_size)


def _read_manifest(root: Path) -> tuple[dict[str, Any], Manifest]:
    manifest_path = root / MANIFEST_NAME
    try:
        info = os.lstat(manifest_path)
    except FileNotFoundError:
        raise PackageError(f"no {MANIFEST_NAME} in {root}: not a Photo3D layer package") from None
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read {manifest_path}: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PackageError(f"{manifest_path} is not a regular file: not a Photo3D layer package")
    try:
        with open(manifest_path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        raw = parse_json(data, MAX_MANIFEST_BYTES)
    except (OSError, JSONRejected) as exc:
        raise PackageError(f"cannot read {manifest_path}: {exc}") from None
    return raw, parse_manifest(raw)


def read_package(path: str | os.PathLike, check_meshes: bool = True, check_data: bool = True) -> LayerPackage:
    """Open and validate a package directory; raises ``PackageError`` naming what is wrong.

    ``check_meshes`` reads every mesh; ``check_data`` also inflates every texture and reads the depth map.
    Without them only the manifest, the files' presence and kinds, and the textures' headers are checked.
    """
    root = Path(path)
    try:
        if not root.is_dir():
            raise PackageError(f"{root} is not a folder: not a Photo3D layer package")
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot open {root}: {exc}") from None
    raw, typed = _read_manifest(root)
    package = LayerPackage(root=root, manifest=typed)
    _check_distinct_files(package)
    for layer in typed.layers:
        check_texture(package.path_of(layer.texture), layer.texture, typed.texture_size(layer), check_data)
        if layer.mesh is not None:
            mesh_path = package.path_of(layer.mesh)
            if check_meshes:
                arrays = load_mesh_file(mesh_path)
                _check_counts(layer.index, layer.vertices, layer.triangles, arrays)
            else:
                npz_members(mesh_path)
    depth_map = package.depth_map_path()
    if check_data:
        load_depth_map(depth_map, typed.work_size)
    else:
        npy_header(depth_map)
    if typed.contact_sheet is not None:
        try:
            read_header(package.path_of(typed.contact_sheet))
        except (PngProblem, OSError) as exc:
            raise PackageError(f"contact sheet {typed.contact_sheet}: {exc}") from None
    return package


def _check_distinct_files(package: LayerPackage) -> None:
    """No two entries may be one file, by name or through a symbolic link inside the package."""
    seen: dict[Path, str] = {}
    for relative in sorted(package_files(package)):
        resolved = package.path_of(relative) if relative != MANIFEST_NAME else (package.root / relative).resolve()
        if resolved in seen:
            raise PackageError(f"{relative} is the same file as {seen[resolved]}; each entry needs its own file")
        seen[resolved] = relative


def _check_counts(index: int, vertices: int | None, triangles: int | None, arrays: dict[str, np.ndarray]) -> None:
    counts = (("vertices", vertices, len(arrays["vertices"])), ("triangles", triangles, len(arrays["faces"])))
    for what, stated, actual in counts:
        if stated is not None and stated != actual:
            raise PackageError(f"layer {index}: manifest says {stated} {what}, the mesh has {actual}")


def package_files(package: LayerPackage) -> set[str]:
    """Every file a package consists of, relative to its root, in the manifest's spelling."""
    typed = package.manifest
    files = {MANIFEST_NAME, typed.depth.map}
    if typed.contact_sheet is not None:
        files.add(typed.contact_sheet)
    for layer in typed.layers:
        files.add(layer.texture)
        if layer.mesh is not None:
            files.add(layer.mesh)
    return files

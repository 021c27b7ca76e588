"""The package's files: the path check every file reference passes, and the bounded readers of meshes (NPZ),
the depth map (NPY) and textures (PNG). Imports only numpy and the standard library."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..errors import PackageError
from ..png_check import PngProblem, check_complete, read_header

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 4 << 20
"""A manifest with 256 layers is about 100 KB; anything near this is not ours."""
MESH_ARRAYS = {"vertices": (np.float32, 3), "uvs": (np.float32, 2), "faces": (np.int32, 3)}
MAX_MESH_ROWS = 4_000_000
"""Most vertices or faces in one layer mesh (the pipeline's triangle budget is far below)."""
_NPY_HEADER_ROOM = 4096


def inside_package(root: Path, relative: str) -> Path:
    """Resolve a manifest path to a regular file inside ``root``: no absolute paths, no ``..``, no symlink
    or hard link that leads outside, no device or folder in a file's place."""
    from .manifest import check_relative_path

    check_relative_path(relative, "path")
    resolved_root = root.resolve()
    try:
        resolved = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, unencodable names
        raise PackageError(f"path in manifest cannot be resolved: {relative!r} ({exc})") from None
    if not resolved.is_relative_to(resolved_root):
        raise PackageError(f"path in manifest leaves the package: {relative!r}")
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        raise PackageError(f"file {relative} is missing") from None
    except (OSError, ValueError) as exc:
        raise PackageError(f"file {relative} cannot be read ({exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise PackageError(f"{relative} is not a regular file")
    if info.st_nlink > 1:
        # A hard link may point at any file of the user's; the writer never makes them.
        raise PackageError(f"{relative} is a hard link; a package holds only its own files")
    return resolved


def npz_members(path: Path) -> dict[str, zipfile.ZipInfo]:
    """The members of an NPZ, checked to be bounded .npy arrays before anything is decompressed."""
    if not zipfile.is_zipfile(path):
        raise PackageError(f"mesh {path.name} is not an NPZ archive")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except MemoryError:
        raise
    except Exception as exc:  # zipfile raises many types for damaged directories (versions, encryption, ...)
        raise PackageError(f"mesh {path.name} is not a readable NPZ ({type(exc).__name__}: {exc})") from None
    limit = MAX_MESH_ROWS * 3 * 4 + _NPY_HEADER_ROOM
    members = {}
    for info in infos:
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if name not in MESH_ARRAYS:
            raise PackageError(f"mesh {path.name} holds an unexpected member {info.filename[:80]!r}")
        if info.file_size > limit:
            raise PackageError(f"mesh {path.name}: '{name}' unpacks to {info.file_size} bytes; at most {limit}")
        if name in members:
            raise PackageError(f"mesh {path.name} holds '{name}' twice")
        members[name] = info
    return members


def load_mesh_file(path: Path) -> dict[str, np.ndarray]:
    """Read a layer mesh NPZ and check every array's dtype and shape, and the faces' indices."""
    members = npz_members(path)
    for name in MESH_ARRAYS:
        if name not in members:
            raise PackageError(f"mesh {path.name} has no '{name}' array")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in MESH_ARRAYS}
    except MemoryError:
        raise
    except Exception as exc:  # numpy and zipfile raise many types for damaged archives (CRC, truncation)
        raise PackageError(f"cannot read mesh {path.name}: {type(exc).__name__}: {exc}") from None
    for name, (dtype, columns) in MESH_ARRAYS.items():
        array = arrays[name]
        if not isinstance(array, np.ndarray):  # numpy hands back a member that is no .npy as raw bytes
            raise PackageError(f"mesh {path.name}: '{name}' is not a numpy array")
        if array.dtype != dtype or array.ndim != 2 or array.shape[1] != columns:
            raise PackageError(
                f"mesh {path.name}: '{name}' must be {np.dtype(dtype).name} (N, {columns}), "
                f"got {array.dtype} {array.shape}"
            )
    vertices, uvs, faces = arrays["vertices"], arrays["uvs"], arrays["faces"]
    if len(uvs) != len(vertices):
        raise PackageError(f"mesh {path.name}: {len(uvs)} UVs for {len(vertices)} vertices")
    if not len(faces) or len(vertices) < 3:
        raise PackageError(f"mesh {path.name} has no faces")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise PackageError(f"mesh {path.name}: face indices outside 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all() or not np.isfinite(uvs).all():
        raise PackageError(f"mesh {path.name}: non-finite vertex or UV values")
    if (vertices[:, 2] >= 0).any():
        raise PackageError(f"mesh {path.name}: vertices behind the camera (camera space looks down -z)")
    return arrays


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"npy version {version}")
    except MemoryError:
        raise
    except Exception as exc:  # the header is a Python literal: anything malformed raises something
        raise PackageError(f"depth map {path.name} is not a readable .npy file ({exc})") from None
    if dtype.hasobject:
        raise PackageError(f"depth map {path.name} holds Python objects")
    return shape, dtype


def load_depth_map(path: Path, work_size: tuple[int, int], check_values: bool = True) -> np.ndarray:
    """The depth map: float32 (h, w) at the working resolution, finite and positive."""
    shape, dtype = npy_header(path)
    if tuple(shape) != tuple(work_size) or dtype != np.float32:
        raise PackageError(
            f"depth map {path.name} is {dtype} {tuple(shape)}; the package needs float32 {tuple(work_size)}"
        )
    try:
        depth = np.load(path, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise PackageError(f"depth map {path.name} cannot be read ({exc})") from None
    if check_values and not (np.isfinite(depth).all() and (depth > 0).all()):
        raise PackageError(f"depth map {path.name} holds values that are not finite positive depths")
    return depth


def check_texture(path: Path, relative: str, size: tuple[int, int], full: bool) -> None:
    try:
        header = read_header(path)
        if (header.width, header.height) != size or header.colour_type != 6 or header.bit_depth != 8:
            raise PngProblem(
                f"is a {header.width}x{header.height} {header.bit_depth}-bit {header.colour} PNG; "
                f"the package needs an 8-bit RGBA PNG of {size[0]}x{size[1]}"
            )
        if full:
            check_complete(path, header)
    except PngProblem as exc:
        raise PackageError(f"texture {relative}: {exc}") from None
    except OSError as exc:
        raise PackageError(f"texture {relative} cannot be read ({exc.strerror or exc})") from None


def save_mesh_file(path: Path, vertices: np.ndarray, uvs: np.ndarray, faces: np.ndarray) -> None:
    np.savez(
        path,
        vertices=np.ascontiguousarray(vertices, dtype=np.float32),
        uvs=np.ascontiguousarray(uvs, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int32),
    )

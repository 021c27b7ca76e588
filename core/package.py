"""The layer package: the versioned on-disk contract between the worker and Blender.

A package is a directory holding ``manifest.json`` (its fields are defined and checked in ``core.manifest``),
one RGBA PNG texture per layer (straight alpha, source resolution) and, for the mesh representation, one NPZ
per layer (float32 camera-space vertices, float32 UVs, int32 faces), plus the depth map and a contact sheet.

Reading is total: ``read_package`` returns a package whose manifest is typed and consistent and whose every
file is a regular file inside the folder, of bounded size, in the promised format, or it raises
``PackageError`` naming what is wrong, never another exception. Writing is atomic (``core.staging``): a
failed, cancelled or killed job never leaves a half-written package, and an existing folder is replaced only
when it provably is a Photo3D package holding nothing else. Imports only numpy and the standard library, so
Blender can read packages with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError, PackageError
from .manifest import FORMAT_NAME, FORMAT_VERSION, Manifest, parse_manifest
from .png_check import PngProblem, check_complete, read_header
from .safe_json import JSONRejected, parse_json
from .staging import Staging, clean_stale

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "LayerPackage", "read_package", "write_package_atomically"]

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 4 << 20
"""A manifest with 256 layers is about 100 KB; anything near this is not ours."""
MESH_ARRAYS = {"vertices": (np.float32, 3), "uvs": (np.float32, 2), "faces": (np.int32, 3)}
MAX_MESH_ROWS = 4_000_000
"""Most vertices or faces in one layer mesh (the pipeline's triangle budget is far below)."""
_NPY_HEADER_ROOM = 4096


@dataclass
class LayerPackage:
    """A package read from disk and validated; paths in the manifest resolve through ``path_of``.

    ``typed`` is the checked manifest; ``manifest`` the same content as parsed JSON, for code that still
    reads it by key (every key it reads has been checked).
    """

    root: Path
    manifest: dict[str, Any]
    typed: Manifest

    @property
    def layers(self) -> list[dict[str, Any]]:
        return self.manifest["layers"]

    @property
    def representation(self) -> str:
        return self.typed.representation

    def path_of(self, relative: str) -> Path:
        """A file the manifest names, checked to be a regular file inside the package."""
        return inside_package(self.root, relative)

    def depth_map_path(self) -> Path:
        return self.path_of(self.typed.depth.map)

    def load_mesh(self, layer: dict[str, Any]) -> dict[str, np.ndarray]:
        """The layer's mesh arrays, checked for shape, dtype and face indices."""
        return load_mesh_file(self.path_of(layer["mesh"]))

    def load_depth_map(self) -> np.ndarray:
        """The harmonized depth map (float32, working resolution), checked."""
        return load_depth_map(self.depth_map_path(), self.typed.work_size)


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


def _npz_members(path: Path) -> dict[str, zipfile.ZipInfo]:
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
    members = _npz_members(path)
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


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
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
    shape, dtype = _npy_header(path)
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


def _check_texture(path: Path, relative: str, size: tuple[int, int], full: bool) -> None:
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
    package = LayerPackage(root=root, manifest=normalized_manifest(raw, typed), typed=typed)
    _check_distinct_files(package)
    size = typed.texture_size()
    for layer in typed.layers:
        _check_texture(package.path_of(layer.texture), layer.texture, size, check_data)
        if layer.mesh is not None:
            mesh_path = package.path_of(layer.mesh)
            if check_meshes:
                arrays = load_mesh_file(mesh_path)
                _check_counts(layer.index, layer.vertices, layer.triangles, arrays)
            else:
                _npz_members(mesh_path)
    depth_map = package.depth_map_path()
    if check_data:
        load_depth_map(depth_map, typed.work_size)
    else:
        _npy_header(depth_map)
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


def normalized_manifest(raw: dict[str, Any], typed: Manifest) -> dict[str, Any]:
    """The manifest as a dict for code that reads it by key, rebuilt from the checked values: every field a
    reader uses has its checked type, and an optional field that is null or absent is absent."""
    manifest = dict(raw)
    manifest["version"] = typed.version
    manifest["source"] = dataclasses.asdict(typed.source)
    manifest["camera"] = typed.camera.to_dict()
    manifest["work_size"] = list(typed.work_size)
    manifest["depth"] = dataclasses.asdict(typed.depth)
    manifest["representation"] = typed.representation
    layers = []
    for layer in typed.layers:
        entry = {key: value for key, value in dataclasses.asdict(layer).items() if value is not None}
        entry["depth_range"] = list(layer.depth_range)
        if typed.representation == "mpi":
            entry.setdefault("inpainted_fraction", None)  # MPI planes have none, and say so
        layers.append(entry)
    manifest["layers"] = layers
    manifest.pop("contact_sheet", None)
    if typed.contact_sheet is not None:
        manifest["contact_sheet"] = typed.contact_sheet
    manifest["models"] = dict(typed.models)
    manifest["timings"] = dict(typed.timings)
    return manifest


def _check_counts(index: int, vertices: int | None, triangles: int | None, arrays: dict[str, np.ndarray]) -> None:
    counts = (("vertices", vertices, len(arrays["vertices"])), ("triangles", triangles, len(arrays["faces"])))
    for what, stated, actual in counts:
        if stated is not None and stated != actual:
            raise PackageError(f"layer {index}: manifest says {stated} {what}, the mesh has {actual}")


def package_files(package: LayerPackage) -> set[str]:
    """Every file a package consists of, relative to its root, in the manifest's spelling."""
    typed = package.typed
    files = {MANIFEST_NAME, typed.depth.map}
    if typed.contact_sheet is not None:
        files.add(typed.contact_sheet)
    for layer in typed.layers:
        files.add(layer.texture)
        if layer.mesh is not None:
            files.add(layer.mesh)
    return files


def save_mesh_file(path: Path, vertices: np.ndarray, uvs: np.ndarray, faces: np.ndarray) -> None:
    np.savez(
        path,
        vertices=np.ascontiguousarray(vertices, dtype=np.float32),
        uvs=np.ascontiguousarray(uvs, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int32),
    )


def _foreign_entries(out: Path) -> list[str]:
    """What in ``out`` would be lost by replacing it: everything, unless it is a package holding only itself."""
    try:
        package = read_package(out, check_meshes=False, check_data=False)
    except PackageError as exc:
        return [f"(it is not a Photo3D package: {exc})"]
    expected = package_files(package)
    folders = {str(Path(name).parent).replace(os.sep, "/") for name in expected} - {"."}
    extra: list[str] = []
    for folder, dirnames, filenames in os.walk(out):
        relative_folder = os.path.relpath(folder, out).replace(os.sep, "/")
        prefix = "" if relative_folder == "." else relative_folder + "/"
        for name in dirnames:
            if prefix + name not in folders or os.path.islink(os.path.join(folder, name)):
                extra.append(prefix + name + "/")
        dirnames[:] = [name for name in dirnames if prefix + name in folders]
        extra.extend(prefix + name for name in filenames if prefix + name not in expected)
        if len(extra) > 5:
            break
    return extra


def check_replaceable(out: Path) -> None:
    """Raise ``OutputError`` unless ``out`` is absent, an empty folder, or a Photo3D package and nothing more."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise OutputError(f"output {out} exists and is not a directory")
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise OutputError(f"cannot read output folder {out}: {exc.strerror or exc}") from None
    if empty:
        return
    foreign = _foreign_entries(out)
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"output folder {out} is not empty and is not only a Photo3D package; nothing was changed. "
            f"Photo3D replaces only its own packages and never deletes files it did not write: {listed}"
        )


def _swap_in(staging: Staging, out: Path) -> None:
    """Move the new package to ``out``, and the package it replaces out of the way (then deleted)."""
    for _ in range(5):
        check_replaceable(out)  # again, right before the swap: the folder may have changed meanwhile
        if os.path.lexists(out):
            # Another writer may have taken it away first: then publish into the free name.
            with contextlib.suppress(FileNotFoundError):
                os.replace(out, staging.old)
        try:
            os.replace(staging.new, out)
            return
        except OSError:
            if not os.path.lexists(out):
                raise
            # Another writer published between our two renames: replace its package like any other.
            shutil.rmtree(staging.old, ignore_errors=True)
    raise OutputError(f"output {out} keeps changing while Photo3D writes it (another writer?); try again")


def write_package_atomically(out_dir: str | os.PathLike, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Call ``fill(folder)`` to write files and return the manifest; then move the result into place.

    An existing package at ``out_dir`` is replaced; any other non-empty folder is refused with
    ``OutputError`` (exit 4) and left untouched. An output that is a symbolic link is written where it
    points. Any exception (cancellation and signals included) removes the staging folder and leaves
    ``out_dir`` as it was; staging folders of earlier runs that were killed are cleaned up first.
    """
    out = Path(out_dir).absolute()
    try:
        if out.is_symlink():
            out = out.resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out)
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write to {out.parent}: {getattr(exc, 'strerror', None) or exc}") from None
    check_replaceable(out)
    try:
        staging = Staging(out)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None
    with staging:
        try:
            manifest = fill(staging.new)
            text = json.dumps(manifest, indent=2, allow_nan=False)
            (staging.new / MANIFEST_NAME).write_text(text, encoding="utf-8")
            read_package(staging.new)  # never publish a package our own reader would reject
            _swap_in(staging, out)
        except OSError as exc:
            raise OutputError(f"cannot write package {out}: {exc.strerror or exc}") from None
    return out

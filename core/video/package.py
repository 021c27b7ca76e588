"""The layered video package: one folder per video, read totally and written atomically.

A package holds ``video.json`` (``core.video.manifest``) and, for every shot and every layer of the shot, an
RGBA PNG per frame (``shots/000/layer_00/%06d.png``, numbered by package frame index, at the working size),
the shot's stable topology (``shots/000/layer_00_mesh.npz``, the still package's mesh format: the shot's
first frame's vertices, UVs, faces) and the vertex positions of every frame as a PC2 point cache
(``shots/000/layer_00.pc2``, ``core.video.pc2``), which Blender's Mesh Cache modifier plays.

- ``read_video_package``: total; every failure is a ``PackageError`` naming what is wrong.
- ``VideoPackageWriter``: fills a locked staging folder next to the output while frames arrive (textures
  from helper threads too), and ``publish`` checks it as the reader would and moves it into place; a
  failure, cancel or signal before that leaves the output as it was (``core.package.staging``).

Reading imports only numpy and the standard library, so Blender reads packages with it; writing textures
imports ``core.textures`` (OpenCV) when the first one is written.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..camera import Camera
from ..errors import OutputError, PackageError
from ..package.files import check_texture, inside_package, load_mesh_file, save_mesh_file
from ..package.writer import check_folder_replaceable, entries_beyond, open_staging, output_errors, swap_in
from ..safe_json import JSONRejected, read_json_file
from .manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Shot,
    ShotLayer,
    VideoManifest,
    parse_video_manifest,
    pattern_folder,
)
from .pc2 import PC2Problem, PC2Writer, check_pc2, read_pc2, read_pc2_header, read_pc2_sample

MAX_POINTS_READ = 8 << 30
"""Most bytes of positions ``VideoPackage.points`` reads into memory (``mmap=True`` maps them instead)."""


def texture_pattern_for(shot: int, layer: int) -> str:
    """Where the writer puts a layer's textures."""
    return f"shots/{shot:03d}/layer_{layer:02d}/%06d.png"


def mesh_path_for(shot: int, layer: int) -> str:
    return f"shots/{shot:03d}/layer_{layer:02d}_mesh.npz"


def points_path_for(shot: int, layer: int) -> str:
    return f"shots/{shot:03d}/layer_{layer:02d}.pc2"


@dataclass
class VideoPackage:
    """A video package read from disk and validated: its typed manifest, and its files by shot and layer."""

    root: Path
    manifest: VideoManifest

    @property
    def shots(self) -> tuple[Shot, ...]:
        return self.manifest.shots

    @property
    def frame_count(self) -> int:
        return len(self.manifest.frames)

    def path_of(self, relative: str) -> Path:
        """A file the manifest names, checked to be a regular file inside the package."""
        return inside_package(self.root, relative)

    def layer(self, shot: int, layer: int) -> ShotLayer:
        if not 0 <= shot < len(self.shots):
            raise ValueError(f"shot {shot} is not in the package (0..{len(self.shots) - 1})")
        layers = self.shots[shot].layers
        if not 0 <= layer < len(layers):
            raise ValueError(f"shot {shot} has no layer {layer} (0..{len(layers) - 1})")
        return layers[layer]

    def texture_path(self, shot: int, layer: int, frame: int) -> Path:
        """The texture of ``layer`` of ``shot`` at package frame ``frame`` (a frame of that shot)."""
        entry = self.layer(shot, layer)
        if frame not in self.shots[shot].frame_range:
            first, last = self.shots[shot].first, self.shots[shot].last
            raise ValueError(f"frame {frame} is not in shot {shot} (frames {first}..{last})")
        return self.path_of(entry.texture(frame))

    def load_mesh(self, shot: int, layer: int) -> dict[str, np.ndarray]:
        """The layer's topology (``vertices`` of the shot's first frame, ``uvs``, ``faces``), checked."""
        entry = self.layer(shot, layer)
        return _load_mesh(self.path_of(entry.mesh), f"shots[{shot}].layers[{layer}]")

    def points(self, shot: int, layer: int, mmap: bool = False, max_bytes: int = MAX_POINTS_READ) -> np.ndarray:
        """The layer's vertex positions (F, V, 3) float32, one row per frame of the shot, checked finite.

        ``mmap`` maps the point cache read-only instead of reading it into memory."""
        entry = self.layer(shot, layer)
        relative = entry.points
        try:
            points, _, _ = read_pc2(self.path_of(relative), max_bytes, mmap=mmap)
        except PC2Problem as exc:
            raise PackageError(f"point cache {relative} {exc}") from None
        except OSError as exc:
            raise PackageError(f"point cache {relative} cannot be read ({exc.strerror or exc})") from None
        if len(points) != self.shots[shot].frame_count:
            raise PackageError(f"point cache {relative} changed since the package was read")
        return points

    def points_path(self, shot: int, layer: int) -> Path:
        return self.path_of(self.layer(shot, layer).points)


def _load_mesh(path: Path, where: str) -> dict[str, np.ndarray]:
    try:
        arrays = load_mesh_file(path)
    except PackageError as exc:
        raise PackageError(f"{where}: {exc}") from None
    uvs = arrays["uvs"]
    if uvs.size and (uvs.min() < 0.0 or uvs.max() > 1.0):
        raise PackageError(f"{where}: mesh {path.name} has UVs outside 0..1")
    return arrays


def _read_manifest(root: Path) -> VideoManifest:
    path = root / MANIFEST_NAME
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise PackageError(f"no {MANIFEST_NAME} in {root}: not a Photo3D video package") from None
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read {path}: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PackageError(f"{path} is not a regular file: not a Photo3D video package")
    try:
        raw = read_json_file(str(path), MAX_MANIFEST_BYTES)
    except (OSError, JSONRejected) as exc:
        raise PackageError(f"cannot read {path}: {exc}") from None
    return parse_video_manifest(raw)


def _check_points(path: Path, relative: str, vertices: np.ndarray, shot: Shot, check_values: bool) -> None:
    """The point cache agrees with the mesh and the shot; with ``check_values`` every value is finite and the
    first sample is the mesh's vertices."""
    try:
        header = check_pc2(path) if check_values else read_pc2_header(path)
        if header.vertex_count != len(vertices):
            raise PC2Problem(f"has {header.vertex_count} points but the layer's mesh has {len(vertices)} vertices")
        if header.sample_count != shot.frame_count:
            raise PC2Problem(
                f"has {header.sample_count} samples but shot {shot.index} has {shot.frame_count} frames "
                f"({shot.first}..{shot.last})"
            )
        if header.start_frame != shot.first or header.sample_rate != 1.0:
            raise PC2Problem(
                f"starts at frame {header.start_frame:g} with sample rate {header.sample_rate:g}; the shot's "
                f"cache starts at its first frame {shot.first} with one sample a frame"
            )
        if check_values and not np.array_equal(read_pc2_sample(path, header, 0), vertices):
            raise PC2Problem("sample 0 is not the mesh's vertices (the shot's first frame)")
    except PC2Problem as exc:
        raise PackageError(f"point cache {relative} {exc}") from None
    except OSError as exc:
        raise PackageError(f"point cache {relative} cannot be read ({exc.strerror or exc})") from None


def read_video_package(path: str | os.PathLike, check_textures: bool = True, check_points: bool = True) -> VideoPackage:
    """Open and validate a video package folder; raises ``PackageError`` naming what is wrong.

    Always checked: the manifest, every mesh (arrays, faces in range), every point cache's header and size.
    ``check_textures`` also checks every frame's texture (present, an RGBA PNG of the working size, by its
    header); ``check_points`` reads every point cache's values (finite, its first sample the mesh).
    """
    root = Path(path)
    try:
        if not root.is_dir():
            raise PackageError(f"{root} is not a folder: not a Photo3D video package")
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot open {root}: {exc}") from None
    package = VideoPackage(root=root, manifest=_read_manifest(root))
    height, width = package.manifest.work_size
    seen: dict[Path, str] = {(root / MANIFEST_NAME).resolve(): MANIFEST_NAME}

    def distinct(resolved: Path, relative: str) -> None:
        # Names differ (the manifest checks that); a symbolic link inside the package could still make two one.
        if resolved in seen:
            raise PackageError(f"{relative} is the same file as {seen[resolved]}; each entry needs its own file")
        seen[resolved] = relative

    for shot in package.shots:
        for layer in shot.layers:
            where = f"shots[{shot.index}].layers[{layer.index}]"
            mesh_path = package.path_of(layer.mesh)
            distinct(mesh_path, layer.mesh)
            vertices = _load_mesh(mesh_path, where)["vertices"]
            points_path = package.path_of(layer.points)
            distinct(points_path, layer.points)
            _check_points(points_path, layer.points, vertices, shot, check_points)
            if check_textures:
                for frame in shot.frame_range:
                    relative = layer.texture(frame)
                    texture = package.path_of(relative)
                    if frame == shot.first:
                        distinct(texture.parent, pattern_folder(layer.texture_pattern) + "/")
                    check_texture(texture, relative, (width, height), full=False)
    return package


def package_files(package: VideoPackage) -> set[str]:
    """Every file a video package consists of, relative to its root, in the manifest's spelling."""
    files = {MANIFEST_NAME}
    for shot in package.shots:
        for layer in shot.layers:
            files.update((layer.mesh, layer.points))
            files.update(layer.texture(frame) for frame in shot.frame_range)
    return files


def _foreign_entries(out: Path) -> list[str]:
    """What in ``out`` would be lost by replacing it: everything, unless it is a video package holding only
    itself."""
    try:
        package = read_video_package(out, check_textures=False, check_points=False)
    except PackageError as exc:
        return [f"(it is not a Photo3D video package: {exc})"]
    return entries_beyond(out, package_files(package))


def check_video_replaceable(out: Path) -> None:
    """Raise ``OutputError`` unless ``out`` is absent, an empty folder, or a video package and nothing more."""
    check_folder_replaceable(out, _foreign_entries, "a Photo3D video package")


@dataclass
class _Layer:
    entry: dict[str, Any] | None = None
    """The manifest entry, once ``set_layer`` wrote the mesh."""
    vertex_count: int | None = None
    points: PC2Writer | None = None


@dataclass
class _Shot:
    index: int
    first: int
    last: int | None = None
    layers: dict[int, _Layer] = field(default_factory=dict)


_WRITER_FIELDS = ("format", "version", "frames", "shots", "frame_timings")


class VideoPackageWriter:
    """A video package written frame by frame into a locked staging folder, then ``publish``-ed atomically.

    Use it as a context manager: leaving the block without ``publish`` (an error, a cancel, a signal) removes
    the staging folder and leaves the output as it was. The output is checked when the writer is made: an
    existing video package holding nothing else may be replaced; a file, or a folder holding anything else,
    is refused with ``OutputError`` and never touched.

    Call order: ``begin_shot``, then for each frame of the shot ``add_frame``, ``write_texture`` per layer
    (from any thread) and ``add_layer_points`` per layer (after ``begin_layer_points``, frames in order),
    ``set_layer`` once per layer (any time before ``publish``), ``end_shot``; after the last shot, ``publish``.
    Misuse (a frame out of order, a texture twice, a shot that does not follow the last) is a ``ValueError``;
    a file that cannot be written is an ``OutputError``.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out, self._staging = open_staging(out_dir, check_video_replaceable)
        self.folder = self._staging.new
        self._cond = threading.Condition()
        self._active = 0
        """Texture writes in flight: ``close`` waits for them, so none writes into a removed folder."""
        self._closed = False
        self.published = False
        self._shots: list[_Shot] = []
        self._frames: dict[int, tuple[dict[str, Any], float]] = {}
        self._textures: dict[str, int] = {}
        """Each texture written (relative path) and the bytes ``write_png`` wrote."""
        self._claimed: set[tuple[int, int, int]] = set()
        self._texture_size: tuple[int, int] | None = None

    def __enter__(self) -> VideoPackageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop writing; without ``publish`` before, the staging folder and all written so far are removed."""
        with self._cond:
            self._closed = True
            while self._active:
                self._cond.wait()
            writers = [layer.points for shot in self._shots for layer in shot.layers.values() if layer.points]
        for writer in writers:
            with contextlib.suppress(OSError):  # the folder goes away below
                writer.abandon()
        self._staging.close()

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return output_errors(f"video package {self.out}")

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the video package writer is closed")

    def _shot(self, shot: int, open_only: bool = False) -> _Shot:
        if not 0 <= shot < len(self._shots):
            raise ValueError(f"shot {shot} was not begun")
        state = self._shots[shot]
        if open_only and state.last is not None:
            raise ValueError(f"shot {shot} is already ended")
        return state

    @staticmethod
    def _layer_index(layer: int) -> None:
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not 0 <= layer < 256:
            raise ValueError(f"a layer index must be 0..255, not {layer!r}")

    def _check_frame_in(self, state: _Shot, frame: int) -> None:
        if frame < state.first or (state.last is not None and frame > state.last):
            last = "..." if state.last is None else str(state.last)
            raise ValueError(f"frame {frame} is not in shot {state.index} (frames {state.first}..{last})")

    def begin_shot(self, first_frame: int) -> int:
        """Start a shot at package frame ``first_frame`` (0, or right after the last shot); returns its index."""
        with self._cond:
            self._check_open()
            if self._shots and self._shots[-1].last is None:
                raise ValueError(f"shot {len(self._shots) - 1} is not ended")
            expected = self._shots[-1].last + 1 if self._shots else 0
            if first_frame != expected:
                raise ValueError(f"the next shot must start at frame {expected}, not {first_frame}")
            self._shots.append(_Shot(index=len(self._shots), first=int(first_frame)))
            return len(self._shots) - 1

    def write_texture(self, shot: int, layer: int, frame: int, rgba: np.ndarray) -> str:
        """Write the layer's RGBA texture (h, w, 4) uint8 of package frame ``frame``; returns its relative path.

        Safe to call from helper threads; every texture of the package must have the same size."""
        self._layer_index(layer)
        image = np.asarray(rgba)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
            raise ValueError(f"a texture must be (h, w, 4) uint8 RGBA, not {image.dtype} {image.shape}")
        with self._cond:
            self._check_open()
            state = self._shot(shot)
            self._check_frame_in(state, frame)
            key = (shot, int(layer), int(frame))
            if key in self._claimed:
                raise ValueError(f"texture of shot {shot}, layer {layer}, frame {frame} is written twice")
            size = image.shape[:2]
            if self._texture_size is None:
                self._texture_size = size
            elif size != self._texture_size:
                raise ValueError(
                    f"texture is {size[1]}x{size[0]}; the package's are {self._texture_size[1]}x{self._texture_size[0]}"
                )
            self._claimed.add(key)
            self._active += 1
        try:
            from ..textures import write_png  # OpenCV: only the writer needs it

            relative = texture_pattern_for(shot, layer) % frame
            path = self.folder / relative
            with self._writing():
                path.parent.mkdir(parents=True, exist_ok=True)
                written = write_png(path, image)
            with self._cond:
                self._textures[relative] = written
            return relative
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def begin_layer_points(self, shot: int, layer: int, vertex_count: int) -> None:
        """Open the layer's point cache for ``vertex_count`` vertices; frames follow with ``add_layer_points``."""
        self._layer_index(layer)
        with self._cond:
            self._check_open()
            state = self._shot(shot, open_only=True)
            entry = state.layers.setdefault(int(layer), _Layer())
            if entry.points is not None:
                raise ValueError(f"points of shot {shot}, layer {layer} are begun twice")
            if entry.vertex_count is not None and entry.vertex_count != vertex_count:
                raise ValueError(f"the layer's mesh has {entry.vertex_count} vertices, not {vertex_count}")
            path = self.folder / points_path_for(shot, layer)
            with self._writing():
                path.parent.mkdir(parents=True, exist_ok=True)
                entry.points = PC2Writer(path, vertex_count, start_frame=float(state.first), sample_rate=1.0)
            entry.vertex_count = int(vertex_count)

    def add_layer_points(self, shot: int, layer: int, frame: int, points: np.ndarray) -> None:
        """Append the layer's vertex positions (V, 3) at package frame ``frame``: the shot's frames in order."""
        with self._cond:
            self._check_open()
            state = self._shot(shot, open_only=True)
            entry = state.layers.get(layer)
            if entry is None or entry.points is None:
                raise ValueError(f"points of shot {shot}, layer {layer} were not begun")
            expected = state.first + entry.points.sample_count
            if frame != expected:
                raise ValueError(f"points of shot {shot}, layer {layer}: frame {frame} given, {expected} expected")
            with self._writing():
                entry.points.add(points)

    def set_layer(
        self,
        shot: int,
        layer: int,
        name: str,
        uvs: np.ndarray,
        faces: np.ndarray,
        first_vertices: np.ndarray,
        depth_range: tuple[float, float],
        median_depth: float | None,
        pixel_count: int,
    ) -> None:
        """Write the layer's topology (the still package's mesh NPZ: ``first_vertices`` (V, 3) of the shot's
        first frame, ``uvs`` (V, 2) in 0..1 with v up, ``faces`` (T, 3)) and record its manifest entry."""
        self._layer_index(layer)
        vertices = np.asarray(first_vertices)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or np.asarray(uvs).shape != (len(vertices), 2):
            raise ValueError(f"vertices (V, 3) and uvs (V, 2) expected, not {vertices.shape} and {np.shape(uvs)}")
        with self._cond:
            self._check_open()
            state = self._shot(shot)
            entry = state.layers.setdefault(int(layer), _Layer())
            if entry.entry is not None:
                raise ValueError(f"shot {shot}, layer {layer} is set twice")
            if entry.vertex_count is not None and entry.vertex_count != len(vertices):
                raise ValueError(f"the layer's point cache has {entry.vertex_count} vertices, not {len(vertices)}")
            entry.vertex_count = len(vertices)
            mesh = mesh_path_for(shot, layer)
            path = self.folder / mesh
            with self._writing():
                path.parent.mkdir(parents=True, exist_ok=True)
                save_mesh_file(path, vertices, uvs, faces)
            entry.entry = {
                "index": int(layer),
                "name": name,
                "texture_pattern": texture_pattern_for(shot, layer),
                "mesh": mesh,
                "points": points_path_for(shot, layer),
                "depth_range": [float(depth_range[0]), float(depth_range[1])],
                "pixel_count": int(pixel_count),
            }
            if median_depth is not None:
                entry.entry["median_depth"] = float(median_depth)

    def add_frame(self, index: int, source_index: int, time_s: float, shot: int, seconds: float) -> None:
        """Record package frame ``index``: its footage frame number and time, its shot, and the seconds it took."""
        with self._cond:
            self._check_open()
            self._check_frame_in(self._shot(shot), index)
            if index in self._frames:
                raise ValueError(f"frame {index} is added twice")
            entry = {"index": int(index), "source_index": int(source_index), "time_s": float(time_s), "shot": int(shot)}
            self._frames[int(index)] = (entry, float(seconds))

    def end_shot(self, shot: int, last_frame: int) -> None:
        """End the shot at package frame ``last_frame`` (inclusive) and close its point caches."""
        with self._cond:
            self._check_open()
            state = self._shot(shot, open_only=True)
            if shot != len(self._shots) - 1:
                raise ValueError(f"shot {shot} is not the last begun")
            if last_frame < state.first:
                raise ValueError(f"shot {shot} ends at {last_frame}, before its first frame {state.first}")
            state.last = int(last_frame)
            frames = state.last - state.first + 1
            for index, entry in sorted(state.layers.items()):
                if entry.points is None:
                    continue
                with self._writing():
                    samples = entry.points.close()
                if samples != frames:
                    raise ValueError(f"points of shot {shot}, layer {index}: {samples} frames for {frames} in the shot")

    def publish(self, manifest_fields: dict[str, Any]) -> Path:
        """Write ``video.json`` from ``manifest_fields`` (``source``, ``camera`` (a ``Camera`` or its dict),
        ``work_size``, ``depth``, and optionally ``timings``, ``options``, ``warnings``, ``created_by``,
        ``created_at``) and what was written, check the package as ``read_video_package`` would, and move it
        into place; returns the output folder. ``source.frame_count`` defaults to the frames written."""
        given = sorted(set(_WRITER_FIELDS) & set(manifest_fields))
        if given:
            raise ValueError(f"the writer fills {', '.join(given)}; do not pass them")
        with self._cond:
            self._check_open()
            while self._active:  # textures still being written by helper threads
                self._cond.wait()
            data = self._manifest_data(manifest_fields)
        with self._writing():
            manifest = parse_video_manifest(data)
            text = json.dumps(manifest.to_dict(), indent=2, allow_nan=False)
            (self.folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
            package = read_video_package(self.folder)  # never publish what our reader would reject
            self._check_written(package)
            swap_in(self._staging, self.out, check_video_replaceable)
        self.published = True
        self.close()
        return self.out

    def _manifest_data(self, fields: dict[str, Any]) -> dict[str, Any]:
        if not self._shots or self._shots[-1].last is None:
            raise ValueError("the last shot is not ended" if self._shots else "no shot was written")
        shots = []
        for state in self._shots:
            layers = state.layers
            missing = [i for i in range(max(layers, default=-1) + 1) if i not in layers or not layers[i].entry]
            if not layers or missing:
                raise ValueError(f"shot {state.index}: layers {missing or [0]} were never set with set_layer")
            unbegun = [i for i, layer in sorted(layers.items()) if layer.points is None]
            if unbegun:
                raise ValueError(f"shot {state.index}: layers {unbegun} have no points")
            entries = [layers[i].entry for i in sorted(layers)]
            shots.append({"index": state.index, "first": state.first, "last": state.last, "layers": entries})
        frame_count = self._shots[-1].last + 1
        missing_frames = [i for i in range(frame_count) if i not in self._frames]
        if missing_frames:
            raise ValueError(f"frames {missing_frames[:5]} were never added with add_frame")
        extra_frames = sorted(set(self._frames) - set(range(frame_count)))
        if extra_frames:
            raise ValueError(f"frames {extra_frames[:5]} were added but no shot holds them")
        data = dict(fields)
        camera = data.get("camera")
        if isinstance(camera, Camera):
            data["camera"] = camera.to_dict()
        source = data.get("source")
        if isinstance(source, dict):
            data["source"] = {"frame_count": frame_count, **source}
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created_by": data.pop("created_by", f"photo3d {__version__}"),
            "created_at": data.pop("created_at", now),
            **data,
            "frames": [self._frames[i][0] for i in range(frame_count)],
            "shots": shots,
            "frame_timings": [self._frames[i][1] for i in range(frame_count)],
        }

    def _check_written(self, package: VideoPackage) -> None:
        """Every texture written belongs to the package (a stray one would make the next run refuse to replace
        it), and is as long as ``write_png`` made it: our encoder writes complete files, so a file of that
        length needs no inflating to be trusted (the reader checked every header)."""
        stray = sorted(set(self._textures) - package_files(package))
        if stray:
            raise ValueError(f"textures written outside the package's shots, layers or frames: {stray[:3]}")
        for relative, written in self._textures.items():
            size = (self.folder / relative).stat().st_size
            if size != written:
                raise OutputError(f"texture {relative} is {size} bytes, {written} were written (disk trouble?)")


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "VideoPackage",
    "VideoPackageWriter",
    "check_video_replaceable",
    "package_files",
    "read_video_package",
]

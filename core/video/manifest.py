"""The video package's manifest (``video.json``) as typed, checked values, in one place.

``parse_video_manifest`` is total: for any JSON value it returns a ``VideoManifest`` whose every field has the
right type, is finite and in range, and whose fields agree with each other (frames numbered 0..N-1, shots
contiguous and covering every frame, each frame's shot the one whose range holds it), or it raises
``PackageError`` naming the field. It checks no files; ``core.video.package`` does that with the paths it
gives. ``VideoManifest.to_dict`` is the one writer, so ``parse_video_manifest(m.to_dict()) == m``.

The camera and the working size follow the still package's rules (``core.package.manifest``): one camera
model for photos and footage. Imports only numpy (through ``core.camera``) and the standard library, so
Blender can use it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..camera import Camera
from ..errors import PackageError
from ..package.manifest import (
    MAX_LAYERS,
    MAX_NAME,
    MAX_SIDE,
    MAX_TEXT,
    MIN_SIDE,
    _get,
    _int,
    _number,
    _object,
    check_relative_path,
)
from ..package.manifest import _camera as _still_camera
from ..package.manifest import _work_size as _still_work_size
from ..safe_json import json_kind, short_repr

FORMAT_NAME = "photo3d.video"
FORMAT_VERSION = "1.0"
MANIFEST_NAME = "video.json"
MAX_FRAMES = 200_000
"""Most frames a package may hold: almost two hours at 30 frames a second."""
MAX_SHOTS = 10_000
MAX_MANIFEST_BYTES = 64 << 20
"""``video.json`` of ``MAX_FRAMES`` frames is about 30 MB; anything beyond this is not ours."""
MAX_FPS = 100_000.0
MAX_TIME_S = 1e9
MAX_WARNINGS = 1000
MAX_PADDING = 9
"""Widest zero padding of a texture pattern's frame number (``%09d``)."""
_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FRAME_FIELD = re.compile(r"%(?:0([1-9]))?d")


@dataclass(frozen=True)
class VideoSource:
    path: str
    """Where the footage was when it was converted (information only: a reader never opens it)."""
    sha256: str
    """Of the footage file; empty when not computed (an image sequence)."""
    width: int
    height: int
    fps: float
    """The footage's average frame rate."""
    frame_count: int
    """Frames in the package (not in the footage)."""
    first_frame: int
    """The footage's frame number of the package's first frame."""
    stride: int
    """Every ``stride``-th frame of the footage was taken."""
    variable_rate: bool | None
    """The footage's frame times are not evenly spaced (None: not known); each frame's ``time_s`` is its own."""


@dataclass(frozen=True)
class VideoDepth:
    units: str
    kind: str
    source: str


@dataclass(frozen=True)
class FrameEntry:
    index: int
    """Position in the package, from 0."""
    source_index: int
    """Frame number in the footage."""
    time_s: float
    """Presentation time in the footage, in seconds."""
    shot: int


@dataclass(frozen=True)
class ShotLayer:
    index: int
    name: str
    texture_pattern: str
    """Package-relative printf-style pattern of the layer's RGBA PNGs, one per frame of the shot, numbered by
    package frame index (``shots/000/layer_00/%06d.png``)."""
    mesh: str
    """Package-relative NPZ of the stable topology (``vertices`` of the shot's first frame, ``uvs``, ``faces``)."""
    points: str
    """Package-relative PC2 point cache: the vertex positions of every frame of the shot."""
    depth_range: tuple[float, float]
    median_depth: float | None
    pixel_count: int
    """Pixels the layer covers in the shot's first frame."""

    def texture(self, frame: int) -> str:
        """The package-relative path of the texture of package frame ``frame``."""
        return self.texture_pattern % int(frame)  # the pattern holds exactly one %d or %0Nd, checked


@dataclass(frozen=True)
class Shot:
    index: int
    first: int
    """First package frame of the shot."""
    last: int
    """Last package frame of the shot (inclusive)."""
    layers: tuple[ShotLayer, ...]

    @property
    def frame_count(self) -> int:
        return self.last - self.first + 1

    @property
    def frame_range(self) -> range:
        return range(self.first, self.last + 1)


@dataclass(frozen=True)
class VideoManifest:
    format: str
    version: str
    created_by: str
    created_at: str
    source: VideoSource
    camera: Camera
    work_size: tuple[int, int]
    """(height, width) of the working resolution: every texture's size."""
    depth: VideoDepth
    frames: tuple[FrameEntry, ...]
    shots: tuple[Shot, ...]
    timings: dict[str, float] = field(default_factory=dict)
    frame_timings: tuple[float, ...] = ()
    """Seconds each frame took to convert, by package frame index."""
    options: dict[str, Any] = field(default_factory=dict)
    """The options the package was made with, as given (information only)."""
    warnings: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    """What the conversion did (cuts found, frames segmented again, fills reused), as given (information only)."""

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON values, in the order ``video.json`` lists them."""
        shots = []
        for shot in self.shots:
            layers = []
            for layer in shot.layers:
                entry = asdict(layer)
                entry["depth_range"] = list(layer.depth_range)
                if layer.median_depth is None:
                    del entry["median_depth"]
                layers.append(entry)
            shots.append({"index": shot.index, "first": shot.first, "last": shot.last, "layers": layers})
        return {
            "format": self.format,
            "version": self.version,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "source": asdict(self.source),
            "camera": self.camera.to_dict(),
            "work_size": list(self.work_size),
            "depth": asdict(self.depth),
            "frames": [asdict(frame) for frame in self.frames],
            "shots": shots,
            "timings": dict(self.timings),
            "frame_timings": list(self.frame_timings),
            "options": self.options,
            "warnings": list(self.warnings),
            "stats": self.stats,
        }

    def shot_of(self, frame: int) -> Shot:
        """The shot holding package frame ``frame``."""
        if not 0 <= frame < len(self.frames):
            raise ValueError(f"frame {frame} is not in the package (0..{len(self.frames) - 1})")
        return self.shots[self.frames[frame].shot]


def _fail(where: str, problem: str) -> PackageError:
    return PackageError(f"{MANIFEST_NAME}: {where} {problem}")


@contextlib.contextmanager
def _as_video_json() -> Iterator[None]:
    """The still package's rules name ``manifest.json`` in their messages; here the file is ``video.json``."""
    try:
        yield
    except PackageError as exc:
        text = str(exc)
        prefix = "manifest.json: "
        raise PackageError(MANIFEST_NAME + ": " + text[len(prefix) :] if text.startswith(prefix) else text) from None


def relative_path(value: Any, where: str) -> str:
    """A package-relative path in portable form (the still package's rule)."""
    with _as_video_json():
        return check_relative_path(value, where)


def _list(value: Any, where: str, lo: int, hi: int) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"must be a list, not {json_kind(value)}")
    if not lo <= len(value) <= hi:
        raise _fail(where, f"must list {lo} to {hi} entries, not {len(value)}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, not {json_kind(value)} {short_repr(value)}")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise _fail(where, f"must be a string of at most {MAX_TEXT} characters without NUL")
    return value


def _str(obj: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    if key not in obj and default is not None:
        return default
    return _text(_get(obj, key, where), f"{where}.{key}" if where else key)


def check_video_version(value: Any) -> str:
    """The format version: ``MAJOR.MINOR`` with this reader's major and a minor it knows."""
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise _fail("version", f"must be a string MAJOR.MINOR such as {FORMAT_VERSION!r}, got {short_repr(value)}")
    major, minor = (int(part) for part in value.split("."))
    our_major, our_minor = (int(part) for part in FORMAT_VERSION.split("."))
    if major > our_major or (major == our_major and minor > our_minor):
        raise PackageError(
            f"video package format version {value!r} is newer than this reader ({FORMAT_VERSION}): a newer "
            "Photo3D wrote it; update Photo3D to read it"
        )
    if major < our_major:
        raise PackageError(
            f"video package format version {value!r} is no longer supported (this reader reads "
            f"{FORMAT_VERSION}); convert the video again"
        )
    return value


def _source(data: Any, frame_count: int) -> VideoSource:
    obj = _object(data, "source")
    sha = _str(obj, "sha256", "source", default="")
    if sha and not _SHA256.fullmatch(sha):
        raise _fail("source.sha256", "must be 64 lowercase hex digits")
    variable = obj.get("variable_rate")
    if variable is not None and not isinstance(variable, bool):
        raise _fail("source.variable_rate", f"must be true, false or null, not {short_repr(variable)}")
    source = VideoSource(
        path=_str(obj, "path", "source"),
        sha256=sha,
        width=_int(obj, "width", "source", MIN_SIDE, MAX_SIDE),
        height=_int(obj, "height", "source", MIN_SIDE, MAX_SIDE),
        fps=_number(_get(obj, "fps", "source"), "source.fps", 0.0, MAX_FPS, lo_open=True),
        frame_count=_int(obj, "frame_count", "source", 1, MAX_FRAMES),
        first_frame=_int(obj, "first_frame", "source", 0, 2**31 - 1),
        stride=_int(obj, "stride", "source", 1, 2**31 - 1),
        variable_rate=variable,
    )
    if source.frame_count != frame_count:
        raise _fail("source.frame_count", f"is {source.frame_count} but the package lists {frame_count} frames")
    return source


def _depth(data: Any) -> VideoDepth:
    obj = _object(data, "depth")
    return VideoDepth(
        units=_str(obj, "units", "depth"), kind=_str(obj, "kind", "depth"), source=_str(obj, "source", "depth")
    )


def _frames(data: Any, first_frame: int | None) -> tuple[FrameEntry, ...]:
    entries = _list(data, "frames", 1, MAX_FRAMES)
    frames = []
    previous: FrameEntry | None = None
    for position, item in enumerate(entries):
        where = f"frames[{position}]"
        obj = _object(item, where)
        frame = FrameEntry(
            index=_int(obj, "index", where, 0, MAX_FRAMES - 1),
            source_index=_int(obj, "source_index", where, 0, 2**31 - 1),
            time_s=_number(_get(obj, "time_s", where), f"{where}.time_s", -MAX_TIME_S, MAX_TIME_S),
            shot=_int(obj, "shot", where, 0, MAX_SHOTS - 1),
        )
        if frame.index != position:
            raise _fail(f"{where}.index", f"is {frame.index}; frames must be numbered 0, 1, 2, ... in order")
        if previous is None:
            if first_frame is not None and frame.source_index != first_frame:
                raise _fail(f"{where}.source_index", f"is {frame.source_index} but source.first_frame is {first_frame}")
        else:
            if frame.source_index <= previous.source_index:
                raise _fail(f"{where}.source_index", f"is {frame.source_index}: frames must go forward in the footage")
            if frame.time_s < previous.time_s:
                raise _fail(f"{where}.time_s", f"is {frame.time_s:g}, before the previous frame's {previous.time_s:g}")
        frames.append(frame)
        previous = frame
    return tuple(frames)


def check_texture_pattern(value: Any, where: str) -> str:
    """A printf-style texture pattern: one ``%d`` or ``%0Nd`` (N 1..9) in the file name of a ``.png`` path
    inside a folder, no other ``%``, and a portable relative path for every frame number."""
    pattern = _text(value, where)
    fields = list(_FRAME_FIELD.finditer(pattern))
    if len(fields) != 1 or pattern.count("%") != 1:
        raise _fail(where, f"must hold one frame number field (such as %06d) and no other '%': {short_repr(pattern)}")
    folder, _, name = pattern.rpartition("/")
    if not folder or "%" not in name:
        raise _fail(where, f"must name files in a folder, the frame number in the file name: {short_repr(pattern)}")
    if not name.lower().endswith(".png"):
        raise _fail(where, f"must name .png files: {short_repr(pattern)}")
    relative_path(pattern.replace(fields[0].group(0), "0"), where)
    return pattern


def pattern_folder(pattern: str) -> str:
    """The folder a texture pattern's files lie in."""
    return pattern.rpartition("/")[0]


def _depth_range(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, f"must be [near, far], got {short_repr(value)}")
    lo, hi = (_number(v, where, 0.0, 1e12, lo_open=True) for v in value)
    if lo > hi:
        raise _fail(where, f"starts after it ends ({lo:g} > {hi:g})")
    return lo, hi


def _layer(data: Any, where: str, position: int, pixels: int) -> ShotLayer:
    obj = _object(data, where)
    index = _int(obj, "index", where, 0, MAX_LAYERS - 1)
    if index != position:
        raise _fail(f"{where}.index", f"is {index}; layers must be listed in index order from 0")
    name = _str(obj, "name", where)
    if not 1 <= len(name) <= MAX_NAME:
        raise _fail(f"{where}.name", f"must be 1 to {MAX_NAME} characters")
    median = obj.get("median_depth")
    return ShotLayer(
        index=index,
        name=name,
        texture_pattern=check_texture_pattern(_get(obj, "texture_pattern", where), f"{where}.texture_pattern"),
        mesh=relative_path(_get(obj, "mesh", where), f"{where}.mesh"),
        points=relative_path(_get(obj, "points", where), f"{where}.points"),
        depth_range=_depth_range(_get(obj, "depth_range", where), f"{where}.depth_range"),
        median_depth=None if median is None else _number(median, f"{where}.median_depth", 0.0, 1e12, lo_open=True),
        pixel_count=_int(obj, "pixel_count", where, 0, pixels),
    )


def _shots(data: Any, frame_count: int, pixels: int) -> tuple[Shot, ...]:
    entries = _list(data, "shots", 1, min(MAX_SHOTS, frame_count))
    shots = []
    next_first = 0
    for position, item in enumerate(entries):
        where = f"shots[{position}]"
        obj = _object(item, where)
        index = _int(obj, "index", where, 0, MAX_SHOTS - 1)
        if index != position:
            raise _fail(f"{where}.index", f"is {index}; shots must be listed in index order from 0")
        first = _int(obj, "first", where, 0, MAX_FRAMES - 1)
        last = _int(obj, "last", where, 0, MAX_FRAMES - 1)
        if first != next_first:
            raise _fail(f"{where}.first", f"is {first}; the shot must start at frame {next_first}, after the last")
        if last < first:
            raise _fail(f"{where}.last", f"is {last}, before the shot's first frame {first}")
        if last >= frame_count:
            raise _fail(f"{where}.last", f"is {last} but the package has frames 0..{frame_count - 1}")
        layer_data = _list(_get(obj, "layers", where), f"{where}.layers", 1, MAX_LAYERS)
        layers = tuple(_layer(entry, f"{where}.layers[{i}]", i, pixels) for i, entry in enumerate(layer_data))
        shots.append(Shot(index=index, first=first, last=last, layers=layers))
        next_first = last + 1
    if next_first != frame_count:
        raise _fail("shots", f"cover frames 0..{next_first - 1} but the package has frames 0..{frame_count - 1}")
    return tuple(shots)


def _check_frames_in_shots(frames: tuple[FrameEntry, ...], shots: tuple[Shot, ...]) -> None:
    for shot in shots:
        for index in shot.frame_range:
            if frames[index].shot != shot.index:
                raise _fail(f"frames[{index}].shot", f"is {frames[index].shot} but shot {shot.index} holds the frame")


def _check_distinct(shots: tuple[Shot, ...]) -> None:
    """Each layer has its own name, files and texture folder: two patterns in one folder could name one file
    (``a/%d.png`` at frame 12 and ``a/1%d.png`` at frame 2), and a shared file would make two layers one."""
    seen: dict[str, str] = {}
    for shot in shots:
        names: set[str] = set()
        for layer in shot.layers:
            where = f"shots[{shot.index}].layers[{layer.index}]"
            if layer.name in names:
                raise _fail(f"{where}.name", f"{layer.name!r} is used twice in the shot")
            names.add(layer.name)
            folder = pattern_folder(layer.texture_pattern)
            for what, key in (("mesh", layer.mesh), ("points", layer.points), ("texture_pattern", folder + "/")):
                lowered = key.lower()  # case-insensitive file systems make A.npz and a.npz one file
                if lowered in seen:
                    raise _fail(f"{where}.{what}", f"{key!r} is used twice ({seen[lowered]})")
                seen[lowered] = f"{where}.{what}"
    # A mesh or point cache inside a texture folder could be one of its textures.
    folders = {key for key in seen if key.endswith("/")}
    for key, where in seen.items():
        if not key.endswith("/") and any(key.startswith(folder) for folder in folders):
            raise _fail(where, f"{key!r} lies in a texture folder; texture folders hold only textures")


def _timings(data: Any) -> dict[str, float]:
    obj = _object(data if data is not None else {}, "timings")
    if len(obj) > 64:
        raise _fail("timings", "has more than 64 entries")
    return {_text(key, "timings"): _number(value, f"timings.{key}", 0.0, 1e9) for key, value in obj.items()}


def _frame_timings(data: Any, frame_count: int) -> tuple[float, ...]:
    if data is None:
        return ()
    entries = _list(data, "frame_timings", 0, MAX_FRAMES)
    if entries and len(entries) != frame_count:
        raise _fail("frame_timings", f"lists {len(entries)} entries for {frame_count} frames")
    return tuple(_number(value, f"frame_timings[{i}]", 0.0, 1e9) for i, value in enumerate(entries))


def _warnings(data: Any) -> tuple[str, ...]:
    entries = _list(data if data is not None else [], "warnings", 0, MAX_WARNINGS)
    return tuple(_text(value, f"warnings[{i}]") for i, value in enumerate(entries))


def parse_video_manifest(data: Any) -> VideoManifest:
    """The typed manifest, or ``PackageError`` naming the first field that is missing, mistyped or inconsistent."""
    with _as_video_json():  # the field checkers are the still manifest's
        return _parse(data)


def _parse(data: Any) -> VideoManifest:
    if not isinstance(data, dict):
        raise PackageError(f"{MANIFEST_NAME} must hold a JSON object, not {json_kind(data)}")
    if data.get("format") != FORMAT_NAME:
        raise PackageError(f"not a Photo3D video package (format {short_repr(data.get('format'))})")
    version = check_video_version(data.get("version"))
    with _as_video_json():
        camera = _still_camera(_get(data, "camera", ""))
        work_size = _still_work_size(_get(data, "work_size", ""), camera)
    source_data = _object(_get(data, "source", ""), "source")
    first_frame = source_data.get("first_frame")
    frames = _frames(_get(data, "frames", ""), first_frame if isinstance(first_frame, int) else None)
    source = _source(source_data, len(frames))
    if (source.width, source.height) != (camera.width, camera.height):
        raise _fail("source", f"is {source.width}x{source.height} but the camera is {camera.width}x{camera.height}")
    shots = _shots(_get(data, "shots", ""), len(frames), camera.width * camera.height)
    _check_frames_in_shots(frames, shots)
    _check_distinct(shots)
    options, stats = data.get("options"), data.get("stats")
    return VideoManifest(
        format=FORMAT_NAME,
        version=version,
        created_by=_str(data, "created_by", "", default=""),
        created_at=_str(data, "created_at", "", default=""),
        source=source,
        camera=camera,
        work_size=work_size,
        depth=_depth(_get(data, "depth", "")),
        frames=frames,
        shots=shots,
        timings=_timings(data.get("timings")),
        frame_timings=_frame_timings(data.get("frame_timings"), len(frames)),
        options=dict(_object(options if options is not None else {}, "options")),
        warnings=_warnings(data.get("warnings")),
        stats=dict(_object(stats if stats is not None else {}, "stats")),
    )

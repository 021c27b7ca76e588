"""The package manifest as typed, checked values: what ``manifest.json`` may hold, in one place.

``parse_manifest`` is total: for any JSON value it returns a ``Manifest`` whose every field has the right
type, is finite and lies in its range, and whose fields agree with each other, or it raises
``PackageError`` naming the field. It checks no files; ``core.package`` does that with the paths it gives.
``Manifest.to_dict`` is the one writer: the JSON written to disk, and printed by ``validate --json``, is
always rebuilt from checked values, so ``parse_manifest(m.to_dict()) == m``.
Imports only the standard library and numpy (through ``core.camera``), so Blender can use it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..camera import Camera
from ..errors import PackageError
from ..safe_json import json_kind, short_repr

FORMAT_NAME = "photo3d.layers"
FORMAT_VERSION = "1.1"
MAX_LAYERS = 256
"""Most layers or planes a package may list (the pipeline writes at most 32 layers or 128 planes)."""
MAX_PIXELS = 100_000_000
"""Largest photo a package may describe, as for photos the pipeline loads (``LoadOptions.max_pixels``)."""
MIN_SIDE = 8
MAX_SIDE = 100_000
MAX_TEXT = 4096
"""Longest string field (paths, names, model ids); a path component is at most 255 characters."""
MAX_NAME = 255
_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")
_SHA256 = re.compile(r"[0-9a-f]{64}")
FOCAL_SOURCES = ("exif", "user", "default")
REPRESENTATIONS = ("mesh", "mpi")


@dataclass(frozen=True)
class SourceInfo:
    path: str
    """Where the photo was when it was converted (information only: a reader never opens it from here)."""
    width: int
    height: int
    sha256: str
    mode: str
    bit_depth: int
    orientation: int
    has_alpha: bool


@dataclass(frozen=True)
class DepthInfo:
    convention: str
    units: str
    kind: str
    source: str
    scale: float
    min: float
    max: float
    map: str
    """Package-relative path of the harmonized depth map (float32 .npy at the working resolution)."""


@dataclass(frozen=True)
class LayerInfo:
    index: int
    name: str
    texture: str
    """Package-relative path of the RGBA PNG."""
    depth_range: tuple[float, float]
    pixel_count: int
    mesh: str | None = None
    """Package-relative path of the mesh NPZ (mesh packages)."""
    plane_depth: float | None = None
    """Depth of the fronto-parallel plane (MPI packages)."""
    median_depth: float | None = None
    inpainted_fraction: float | None = None
    """Share of the layer's coverage that is filled rather than seen in the photo (its ``border`` included)."""
    vertices: int | None = None
    triangles: int | None = None
    border: int | None = None
    """Source pixels the layer's texture and mesh reach past each edge of the photo (format 1.1; mesh packages
    only): its texture is the photo's size plus twice this each way, and its pixel (border, border) is the
    photo's first."""


@dataclass(frozen=True)
class Manifest:
    format: str
    version: str
    source: SourceInfo
    camera: Camera
    work_size: tuple[int, int]
    """(height, width) of the working resolution: the depth map's and MPI textures' size."""
    depth: DepthInfo
    representation: str
    layers: tuple[LayerInfo, ...]
    contact_sheet: str | None
    created_by: str
    created_at: str
    models: dict[str, str]
    timings: dict[str, float]
    band_fraction: float | None
    """``options.inpaint.band_fraction``: the inpainted band a camera path may reveal, when recorded."""
    options: dict[str, Any] = field(default_factory=dict)
    """The pipeline options the package was made with, by group (``PipelineOptions.to_dict``), as recorded."""
    stats: dict[str, Any] = field(default_factory=dict)
    """The stages' figures (information only)."""

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON values, in the order ``manifest.json`` lists them."""
        layers = []
        for layer in self.layers:
            entry = {key: value for key, value in asdict(layer).items() if value is not None}
            entry["depth_range"] = list(layer.depth_range)
            if self.representation == "mpi":
                entry.setdefault("inpainted_fraction", None)  # MPI planes have none, and say so
            layers.append(entry)
        data: dict[str, Any] = {
            "format": self.format,
            "version": self.version,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "source": asdict(self.source),
            "camera": self.camera.to_dict(),
            "work_size": list(self.work_size),
            "depth": asdict(self.depth),
            "representation": self.representation,
            "layers": layers,
        }
        if self.contact_sheet is not None:
            data["contact_sheet"] = self.contact_sheet
        data["models"] = dict(self.models)
        data["options"] = self.options
        data["stats"] = self.stats
        data["timings"] = dict(self.timings)
        return data

    def texture_size(self, layer: LayerInfo | None = None) -> tuple[int, int]:
        """(width, height) a layer's texture must have: the photo's grown by the layer's ``border`` on each
        side, or the working size for MPI planes."""
        if self.representation == "mpi":
            return self.work_size[1], self.work_size[0]
        grown = 2 * (layer.border or 0) if layer is not None else 0
        return self.camera.width + grown, self.camera.height + grown


def _fail(where: str, problem: str) -> PackageError:
    return PackageError(f"manifest.json: {where} {problem}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"must be an object, not {json_kind(value)}")
    return value


def _get(obj: dict[str, Any], key: str, where: str, optional: bool = False) -> Any:
    if key not in obj:
        if optional:
            return None
        raise _fail(f"{where}.{key}" if where else key, "is missing")
    return obj[key]


def _int(obj: dict[str, Any], key: str, where: str, lo: int, hi: int, optional: bool = False) -> int | None:
    value = _get(obj, key, where, optional)
    if value is None and optional:
        return None
    name = f"{where}.{key}" if where else key
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be an integer, not {json_kind(value)} {short_repr(value)}")
    if not lo <= value <= hi:
        raise _fail(name, f"must be in {lo}..{hi}, got {value}")
    return value


def _float(
    obj: dict[str, Any], key: str, where: str, lo: float, hi: float, optional: bool = False, lo_open: bool = False
) -> float | None:
    value = _get(obj, key, where, optional)
    if value is None and optional:
        return None
    return _number(value, f"{where}.{key}" if where else key, lo, hi, lo_open)


def _number(value: Any, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, f"must be a number, not {json_kind(value)} {short_repr(value)}")
    number = float(value)
    low_ok = number > lo if lo_open else number >= lo
    if not math.isfinite(number) or not low_ok or number > hi:
        bracket = "(" if lo_open else "["
        raise _fail(name, f"must be a finite number in {bracket}{lo:g}, {hi:g}], got {short_repr(value)}")
    return number


def _str(
    obj: dict[str, Any], key: str, where: str, optional: bool = False, choices: tuple[str, ...] | None = None
) -> str | None:
    value = _get(obj, key, where, optional)
    if value is None and optional:
        return None
    name = f"{where}.{key}" if where else key
    if not isinstance(value, str):
        raise _fail(name, f"must be a string, not {json_kind(value)} {short_repr(value)}")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise _fail(name, f"must be a string of at most {MAX_TEXT} characters without NUL")
    if choices is not None and value not in choices:
        raise _fail(name, f"must be one of {', '.join(choices)}, got {short_repr(value)}")
    return value


def check_relative_path(value: Any, name: str) -> str:
    """A package-relative path in portable form: forward slashes, no empty, ``.`` or ``..`` parts, no drive."""
    if not isinstance(value, str) or not value:
        raise _fail(name, f"must be a relative path, not {short_repr(value)}")
    if len(value) > MAX_TEXT or "\x00" in value or "\\" in value or ":" in value:
        raise _fail(name, f"is not a portable relative path: {short_repr(value)}")
    if value.startswith("/"):
        raise _fail(name, f"must be relative to the package: {short_repr(value)}")
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise _fail(name, f"leaves the package or has an empty part: {short_repr(value)}")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME:
            raise _fail(name, f"has a name longer than {MAX_NAME} bytes: {short_repr(value)}")
    return value


def check_version(value: Any) -> str:
    """The format version: ``MAJOR.MINOR`` with this reader's major and a minor it knows."""
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise _fail("version", f"must be a string MAJOR.MINOR such as {FORMAT_VERSION!r}, got {short_repr(value)}")
    major, minor = (int(part) for part in value.split("."))
    our_major, our_minor = (int(part) for part in FORMAT_VERSION.split("."))
    if major != our_major:
        raise PackageError(
            f"package format version {value!r} is not supported (this reader reads {FORMAT_VERSION}); "
            "update Photo3D or re-create the package"
        )
    if minor > our_minor:
        raise PackageError(
            f"package format version {value!r} is newer than this reader ({FORMAT_VERSION}): a newer Photo3D "
            "wrote it; update Photo3D to read it"
        )
    return value


def _source(data: Any) -> SourceInfo:
    obj = _object(data, "source")
    return SourceInfo(
        path=_str(obj, "path", "source"),
        width=_int(obj, "width", "source", MIN_SIDE, MAX_SIDE),
        height=_int(obj, "height", "source", MIN_SIDE, MAX_SIDE),
        sha256=_sha(obj),
        mode=_str(obj, "mode", "source", optional=True) or "",
        bit_depth=_int(obj, "bit_depth", "source", 1, 32, optional=True) or 8,
        orientation=_int(obj, "orientation", "source", 1, 8, optional=True) or 1,
        has_alpha=_bool(obj, "has_alpha", "source"),
    )


def _sha(obj: dict[str, Any]) -> str:
    value = _str(obj, "sha256", "source", optional=True) or ""
    if value and not _SHA256.fullmatch(value):
        raise _fail("source.sha256", "must be 64 lowercase hex digits")
    return value


def _bool(obj: dict[str, Any], key: str, where: str) -> bool:
    value = _get(obj, key, where, optional=True)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(f"{where}.{key}", f"must be true or false, not {short_repr(value)}")
    return value


def _camera(data: Any) -> Camera:
    obj = _object(data, "camera")
    width = _int(obj, "width", "camera", MIN_SIDE, MAX_SIDE)
    height = _int(obj, "height", "camera", MIN_SIDE, MAX_SIDE)
    if width * height > MAX_PIXELS:
        raise _fail("camera", f"is {width}x{height}: more than {MAX_PIXELS // 1_000_000} MP")
    longest = max(width, height)
    # Field of view between 0.1 and 179.9 degrees along the longer side: anything else is no photo's camera.
    focal = _float(obj, "focal_px", "camera", longest / 1145.9, longest * 573.0)
    camera = Camera(
        width=width,
        height=height,
        focal_px=focal,
        cx=_float(obj, "cx", "camera", -width, 2.0 * width),
        cy=_float(obj, "cy", "camera", -height, 2.0 * height),
        focal_source=_str(obj, "focal_source", "camera", optional=True, choices=FOCAL_SOURCES) or "default",
    )
    for key, value in (("fov_x_deg", camera.fov_x_deg), ("fov_y_deg", camera.fov_y_deg)):
        stated = _float(obj, key, "camera", 0.0, 180.0, optional=True)
        if stated is not None and abs(stated - value) > 1e-3:
            raise _fail(f"camera.{key}", f"is {stated:g} but the focal length gives {value:g}")
    return camera


def _work_size(data: Any, camera: Camera) -> tuple[int, int]:
    if not isinstance(data, list) or len(data) != 2:
        raise _fail("work_size", f"must be [height, width], got {short_repr(data)}")
    h = _int({"h": data[0]}, "h", "work_size", 1, camera.height)
    w = _int({"w": data[1]}, "w", "work_size", 1, camera.width)
    # The working image is the photo resampled with its aspect kept (rounded to whole pixels).
    if abs(h * camera.width - w * camera.height) > max(camera.width, camera.height):
        raise _fail("work_size", f"{w}x{h} does not have the photo's aspect ({camera.width}x{camera.height})")
    return h, w


def _depth(data: Any) -> DepthInfo:
    obj = _object(data, "depth")
    depth = DepthInfo(
        convention=_str(obj, "convention", "depth", optional=True) or "",
        units=_str(obj, "units", "depth"),
        kind=_str(obj, "kind", "depth"),
        source=_str(obj, "source", "depth"),
        scale=_float(obj, "scale", "depth", 0.0, 1e12, optional=True, lo_open=True) or 1.0,
        min=_float(obj, "min", "depth", 0.0, 1e12, lo_open=True),
        max=_float(obj, "max", "depth", 0.0, 1e12, lo_open=True),
        map=check_relative_path(_get(obj, "map", "depth"), "depth.map"),
    )
    if depth.min > depth.max:
        raise _fail("depth", f"min {depth.min:g} is greater than max {depth.max:g}")
    return depth


def _layer(data: Any, index: int, representation: str, pixels: int, longest: int) -> LayerInfo:
    where = f"layers[{index}]"
    obj = _object(data, where)
    position = _int(obj, "index", where, 0, MAX_LAYERS - 1)
    if position != index:
        raise _fail(f"{where}.index", f"is {position}; layers must be listed in index order from 0")
    depth_range = _get(obj, "depth_range", where)
    if not isinstance(depth_range, list) or len(depth_range) != 2:
        raise _fail(f"{where}.depth_range", f"must be [near, far], got {short_repr(depth_range)}")
    lo, hi = (_number(v, f"{where}.depth_range", 0.0, 1e12, lo_open=True) for v in depth_range)
    if lo > hi:
        raise _fail(f"{where}.depth_range", f"starts after it ends ({lo:g} > {hi:g})")
    mesh = plane = None
    if representation == "mesh":
        mesh = check_relative_path(_get(obj, "mesh", where), f"{where}.mesh")
    else:
        plane = _float(obj, "plane_depth", where, 0.0, 1e12, lo_open=True)
    layer = LayerInfo(
        index=position,
        name=_str(obj, "name", where) or "",
        texture=check_relative_path(_get(obj, "texture", where), f"{where}.texture"),
        depth_range=(lo, hi),
        pixel_count=_int(obj, "pixel_count", where, 0, pixels),
        mesh=mesh,
        plane_depth=plane,
        median_depth=_float(obj, "median_depth", where, 0.0, 1e12, optional=True, lo_open=True),
        inpainted_fraction=_float(obj, "inpainted_fraction", where, 0.0, 1.0, optional=True),
        vertices=_int(obj, "vertices", where, 3, 2**31 - 1, optional=True),
        triangles=_int(obj, "triangles", where, 1, 2**31 - 1, optional=True),
        border=_int(obj, "border", where, 0, longest // 2 + 1, optional=True),
    )
    if layer.border and representation != "mesh":
        raise _fail(f"{where}.border", "is only allowed on the layers of a mesh package")
    if not layer.name or len(layer.name) > MAX_NAME:
        raise _fail(f"{where}.name", f"must be 1 to {MAX_NAME} characters")
    return layer


def _text_map(data: Any, where: str) -> dict[str, str]:
    obj = _object(data if data is not None else {}, where)
    if len(obj) > 64:
        raise _fail(where, "has more than 64 entries")
    return {key: _str(obj, key, where) for key in obj}


def _timings(data: Any) -> dict[str, float]:
    obj = _object(data if data is not None else {}, "timings")
    if len(obj) > 64:
        raise _fail("timings", "has more than 64 entries")
    return {key: _float(obj, key, "timings", 0.0, 1e9) for key in obj}


def _band_fraction(data: Any) -> float | None:
    options = _object(data if data is not None else {}, "options")
    inpaint = options.get("inpaint")
    if inpaint is None:
        return None
    return _float(_object(inpaint, "options.inpaint"), "band_fraction", "options.inpaint", 0.0, 1.0, optional=True)


def _json_object(data: Any, where: str) -> dict[str, Any]:
    """An optional free-form section: a JSON object (bounded already by the JSON reader), or absent."""
    return dict(_object(data if data is not None else {}, where))


def parse_manifest(data: Any) -> Manifest:
    """The typed manifest, or ``PackageError`` naming the first field that is missing, mistyped or inconsistent."""
    if not isinstance(data, dict):
        raise PackageError(f"manifest.json must hold a JSON object, not {json_kind(data)}")
    if data.get("format") != FORMAT_NAME:
        raise PackageError(f"not a Photo3D layer package (format {short_repr(data.get('format'))})")
    version = check_version(data.get("version"))
    source = _source(_get(data, "source", ""))
    camera = _camera(_get(data, "camera", ""))
    if (source.width, source.height) != (camera.width, camera.height):
        raise _fail("source", f"is {source.width}x{source.height} but the camera is {camera.width}x{camera.height}")
    representation = _str(data, "representation", "", choices=REPRESENTATIONS)
    layers_data = _get(data, "layers", "")
    if not isinstance(layers_data, list) or not layers_data:
        raise PackageError("manifest.json lists no layers")
    if len(layers_data) > MAX_LAYERS:
        raise _fail("layers", f"lists {len(layers_data)} layers; at most {MAX_LAYERS}")
    pixels = camera.width * camera.height
    longest = max(camera.width, camera.height)
    layers = tuple(_layer(layer, i, representation, pixels, longest) for i, layer in enumerate(layers_data))
    _check_distinct(layers)
    if representation == "mpi":
        depths = [layer.plane_depth for layer in layers]
        if any(far <= near for far, near in zip(depths, depths[1:], strict=False)):
            raise _fail("layers", "MPI planes must go back to front: each plane_depth below the one before")
    contact_sheet = data.get("contact_sheet")
    return Manifest(
        format=FORMAT_NAME,
        version=version,
        source=source,
        camera=camera,
        work_size=_work_size(_get(data, "work_size", ""), camera),
        depth=_depth(_get(data, "depth", "")),
        representation=representation,
        layers=layers,
        contact_sheet=None if contact_sheet is None else check_relative_path(contact_sheet, "contact_sheet"),
        created_by=_str(data, "created_by", "", optional=True) or "",
        created_at=_str(data, "created_at", "", optional=True) or "",
        models=_text_map(data.get("models"), "models"),
        timings=_timings(data.get("timings")),
        band_fraction=_band_fraction(data.get("options")),
        options=_json_object(data.get("options"), "options"),
        stats=_json_object(data.get("stats"), "stats"),
    )


def _check_distinct(layers: tuple[LayerInfo, ...]) -> None:
    """Each layer has its own name and files: a shared texture would make two layers one."""
    seen: dict[str, str] = {}
    for layer in layers:
        for what, value in (("name", layer.name), ("texture", layer.texture), ("mesh", layer.mesh)):
            if value is None:
                continue
            key = f"{what}:{value}" if what == "name" else f"file:{value.lower()}"
            if key in seen:
                raise _fail(f"layers[{layer.index}].{what}", f"{value!r} is used twice ({seen[key]})")
            seen[key] = f"layers[{layer.index}].{what}"

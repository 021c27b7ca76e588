"""The comp package: one folder per shot for compositors, written atomically.

```
<DIR>/comp.json          what is in the folder (format photo3d.comp), the camera conventions, warnings
<DIR>/textures/L00_*.png the layers' straight-alpha RGBA textures (shared by the USD stage)
<DIR>/scene.usda         USD: cards, materials, camera        (format "usd")
<DIR>/scene.glb          glTF binary, unlit cards and camera  (format "gltf")
<DIR>/camera.chan        the camera for Nuke                  (format "chan")
```

The Blender side adds ``camera.abc``, ``camera.fbx`` and EXR frames (``exr/``) through ``extra``. Everything is
written into a locked staging folder next to ``DIR`` and moved into place at the end, so a failed or
cancelled export leaves nothing behind and an earlier comp package untouched. An existing ``DIR`` is
replaced only when it is empty or a comp package holding only the files its ``comp.json`` lists.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExportError
from ..package.writer import check_folder_replaceable, open_staging, output_errors, swap_in
from ..progress import Progress, null_progress
from ..safe_json import JSONRejected, parse_json
from .chan import ROTATION_ORDER, vertical_fov_degrees, write_chan
from .scene import CompScene

COMP_FORMAT = "photo3d.comp"
COMP_VERSION = "1.0"
COMP_MANIFEST = "comp.json"
MAX_COMP_MANIFEST_BYTES = 64 * 1024 * 1024
"""A comp.json lists a few files a frame: this bounds what is read of one found in a destination folder."""
TEXTURE_FOLDER = "textures"

FILES = {"usd": "scene.usda", "gltf": "scene.glb", "chan": "camera.chan"}
"""What each bpy-free format writes."""

BLENDER_FORMATS = ("exr", "deep", "abc", "fbx")
"""Formats only Blender writes (EXR frames rendered with Eevee, multilayer or deep; the camera through its own
Alembic and FBX exporters): the add-on and the batch offer them."""

ALL_FORMATS = tuple(FILES) + BLENDER_FORMATS


def parse_formats(text: str, allowed: Iterable[str] = tuple(FILES)) -> tuple[str, ...]:
    """``"usd,gltf"`` -> ("usd", "gltf"), in the order given, each once; an unknown name is an ``ExportError``."""
    allowed = tuple(allowed)
    names = [name.strip().lower() for name in str(text).split(",") if name.strip()]
    if not names:
        raise ExportError(f"no export format given; choose from {', '.join(allowed)}")
    unknown = [name for name in names if name not in allowed]
    if unknown:
        where = " (Blender writes those: use the add-on or the batch)" if set(unknown) <= set(ALL_FORMATS) else ""
        raise ExportError(f"unknown export format {', '.join(unknown)}{where}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(names))


@dataclass
class CompResult:
    folder: Path
    files: dict[str, str | list[str]]
    """Each format's file, or files (EXR frames), relative to ``folder``."""
    warnings: list[str] = field(default_factory=list)


def safe_stem(name: str, fallback: str) -> str:
    """``name`` as a portable file-name stem: letters, digits, ``_``, ``.`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or fallback


def _texture_name(index: int, name: str) -> str:
    return f"{TEXTURE_FOLDER}/L{index:02d}_{safe_stem(name, 'layer')}.png"


def _listed_files(out: Path) -> set[str] | None:
    """The files an existing comp package's manifest lists (itself included), or None if it is not one."""
    try:
        with open(out / COMP_MANIFEST, "rb") as handle:
            data = parse_json(handle.read(MAX_COMP_MANIFEST_BYTES + 1), MAX_COMP_MANIFEST_BYTES)
    except (OSError, JSONRejected):
        return None
    if not isinstance(data, dict) or data.get("format") != COMP_FORMAT or not isinstance(data.get("files"), dict):
        return None
    listed = {COMP_MANIFEST}
    for value in data["files"].values():
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, str):
                listed.add(entry)
    for layer in data.get("layers", []):
        if isinstance(layer, dict) and isinstance(layer.get("texture"), str):
            listed.add(layer["texture"])
    return listed


def _foreign_entries(out: Path) -> list[str]:
    """What in ``out`` would be lost by replacing it: everything, unless it is a comp package holding only the
    files its ``comp.json`` lists."""
    listed = _listed_files(out)
    if listed is None:
        return ["(it is not a Photo3D comp package)"]
    present = {
        os.path.relpath(os.path.join(folder, name), out).replace(os.sep, "/")
        for folder, _, names in os.walk(out)
        for name in names
    }
    return sorted(present - listed)


def check_comp_replaceable(out: Path) -> None:
    """Raise ``OutputError`` unless ``out`` is absent, an empty folder, or a comp package and nothing more."""
    check_folder_replaceable(out, _foreign_entries, "a Photo3D comp package")


def _manifest(scene: CompScene, package_root: Path, files: Mapping[str, str], warnings: list[str]) -> dict:
    first = scene.camera[0]
    horizontal, vertical = first.apertures_mm(scene.width, scene.height)
    return {
        "format": COMP_FORMAT,
        "version": COMP_VERSION,
        "created_by": "Photo3D",
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "source": scene.source,
        "package": str(package_root),
        "resolution": [scene.width, scene.height],
        "fps": scene.fps,
        "frames": [scene.frame_start, scene.frame_end],
        "animated": scene.animated,
        "camera": {
            "world": "Blender: Z up, metres (USD stage upAxis Z; glTF and .chan Y up: (x, y, z) -> (x, z, -y))",
            "lens_mm": first.lens_mm,
            "sensor_fit": first.sensor_fit,
            "apertures_mm": [horizontal, vertical],
            "shift": [first.shift_x, first.shift_y],
            "vertical_fov_deg": vertical_fov_degrees(first, scene.width, scene.height),
            "chan_rotation_order": ROTATION_ORDER,
        },
        "layers": [
            {
                "index": card.index,
                "name": card.name,
                "texture": _texture_name(card.index, card.name),
                "depth_range": list(card.depth_range),
                "opaque": card.opaque,
            }
            for card in scene.cards
        ],
        "files": dict(files),
        "warnings": list(warnings),
    }


ExtraWriter = Callable[[Path], Mapping[str, "str | list[str]"]]
"""Writes more files into the staging folder and returns them by format (the add-on's EXR, Alembic, FBX)."""


class CompWriter:
    """A comp package being written: open (the destination checked, a locked staging folder made), filled
    (``write_files`` for the bpy-free formats, ``add`` for what the caller writes into ``folder``), then
    ``publish``-ed; ``close`` (or leaving the ``with`` block) without publishing removes everything.

    Blender's UI writes EXR frames one step at a time between these calls, so an export shows progress and
    can be cancelled between frames; ``write_comp_package`` does it all in one call.
    """

    def __init__(self, scene: CompScene, package_root: Path, out_dir: str | os.PathLike, formats: Iterable[str]):
        self.scene, self.package_root = scene, Path(package_root)
        self.formats = tuple(formats)
        unknown = [name for name in self.formats if name not in FILES]
        if unknown:
            raise ExportError(f"unknown export format {', '.join(unknown)}; choose from {', '.join(FILES)}")
        self.out, self._staging = open_staging(out_dir, check_comp_replaceable)
        self.folder = self._staging.new
        self.files: dict[str, str | list[str]] = {}
        self.warnings: list[str] = []
        self.published = False

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Around writing into ``folder``: an ``OSError`` (disk full, permissions) becomes ``OutputError``."""
        return output_errors(f"comp package {self.out}")

    def write_files(self, progress: Progress | None = None) -> None:
        """The textures and every bpy-free format."""
        progress = progress or null_progress()
        with self.writing():
            progress.update(0.0, "textures")
            (self.folder / TEXTURE_FOLDER).mkdir(exist_ok=True)
            textures = {}
            for card in self.scene.cards:
                relative = _texture_name(card.index, card.name)
                try:
                    shutil.copyfile(card.texture, self.folder / relative)
                except FileNotFoundError:
                    raise ExportError(f"layer {card.index}'s texture {card.texture} is missing") from None
                textures[card.index] = relative
            for done, name in enumerate(self.formats, start=1):
                progress.update(done / (len(self.formats) + 1), name)
                self.warnings += _write_format(name, self.scene, self.folder / FILES[name], textures)
                self.files[name] = FILES[name]

    def add(self, files: Mapping[str, str | list[str]], warnings: Iterable[str] = ()) -> None:
        """Record files the caller wrote into ``folder``, by format."""
        for name, value in files.items():
            if isinstance(value, list) and isinstance(self.files.get(name), list):
                self.files[name] = [*self.files[name], *value]
            else:
                self.files[name] = value
        self.warnings += list(warnings)

    def publish(self) -> CompResult:
        """Write ``comp.json`` and move the folder into place."""
        with self.writing():
            manifest = _manifest(self.scene, self.package_root, self.files, self.warnings)
            text = json.dumps(manifest, indent=2, allow_nan=False)
            (self.folder / COMP_MANIFEST).write_text(text, encoding="utf-8")
            swap_in(self._staging, self.out, check_comp_replaceable)
        self.published = True
        self.close()
        return CompResult(self.out, dict(self.files), list(self.warnings))

    def close(self) -> None:
        self._staging.close()

    def __enter__(self) -> CompWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_comp_package(
    scene: CompScene,
    package_root: Path,
    out_dir: str | os.PathLike,
    formats: Iterable[str],
    extra: ExtraWriter | None = None,
    progress: Progress | None = None,
) -> CompResult:
    """Write the comp package for ``scene`` at ``out_dir`` with ``formats`` (of ``FILES``), atomically."""
    progress = progress or null_progress()
    with CompWriter(scene, package_root, out_dir, formats) as writer, progress.stage("export"):
        writer.write_files(progress)
        if extra is not None:
            progress.update(len(writer.formats) / (len(writer.formats) + 1), "blender")
            with writer.writing():
                writer.add(extra(writer.folder))
        return writer.publish()


def _write_format(name: str, scene: CompScene, path: Path, textures: Mapping[int, str]) -> list[str]:
    if name == "usd":
        from .usd import write_usd

        write_usd(scene, path, textures)
        return []
    if name == "gltf":
        from .gltf import write_glb

        return write_glb(scene, path)
    return write_chan(scene, path)

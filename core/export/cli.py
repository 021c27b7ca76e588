"""``python -m core export PACKAGE --to DIR --formats usd,gltf,chan``: a comp package from a layer package."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import ExportError, InputError
from ..progress import Progress
from ..safe_json import JSONRejected, json_kind, read_json_file
from .comp import FILES, parse_formats, write_comp_package
from .scene import scene_from_package, scene_from_spec

MAX_SPEC_BYTES = 64 * 1024 * 1024
"""A camera spec holds a matrix and a lens per frame: about 400 bytes a frame, so 100,000 frames fit."""


def add_export_parser(commands: Any) -> argparse.ArgumentParser:
    export = commands.add_parser(
        "export",
        help="write a comp package (USD, glTF, Nuke .chan) from a layer package",
        description="Write the layers as cards and the camera for compositors. Without --camera the camera is "
        "the photo's own, static; the Blender add-on passes the animated camera as a spec.",
    )
    export.add_argument("package", help="layer package folder")
    export.add_argument("--to", required=True, dest="to", help="comp package folder to write (replaced if one)")
    export.add_argument(
        "--formats", default="usd,gltf", help=f"comma-separated, of {', '.join(FILES)} (default usd,gltf)"
    )
    export.add_argument("--camera", help="JSON camera spec: resolution, fps, per-frame samples (from Blender)")
    export.add_argument("--fps", type=float, default=24.0, help="frame rate of a static export (default 24)")
    export.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return export


def _spec(path: str) -> Any:
    try:
        return read_json_file(path, MAX_SPEC_BYTES)
    except (OSError, JSONRejected) as exc:
        raise InputError(f"cannot read camera spec {path}: {exc}") from None


def run_export(args: argparse.Namespace, progress: Progress) -> int:
    from ..package import read_package

    formats = parse_formats(args.formats)
    if not 0.001 <= args.fps <= 1000.0:
        raise InputError(f"--fps must be in [0.001, 1000], not {args.fps}")
    package = read_package(args.package)
    if args.camera:
        spec = _spec(args.camera)
        if not isinstance(spec, dict):
            raise ExportError(f"camera spec {args.camera} must hold a JSON object, not {json_kind(spec)}")
        scene = scene_from_spec(package, spec)
    else:
        scene = scene_from_package(package, args.fps)
    result = write_comp_package(scene, package.root, args.to, formats, progress=progress)
    if args.json:
        print(json.dumps({"comp": str(result.folder), "files": result.files, "warnings": result.warnings}, indent=2))
    else:
        print(f"Photo3D comp package: {result.folder}")
        for name, relative in result.files.items():
            shown = relative if isinstance(relative, str) else f"{relative[0]} ... ({len(relative)} files)"
            print(f"  {name:<5} {shown}")
        print(f"  {len(scene.cards)} layers, frames {scene.frame_start}-{scene.frame_end}")
        for warning in result.warnings:
            print(f"  warning: {warning}")
    return 0

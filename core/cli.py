"""Command line: ``python -m core convert IMAGE -o OUT_DIR``, ``validate PACKAGE`` and ``worker``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import __version__
from .errors import EXIT_CODES, InputError, Photo3DError
from .options import PipelineOptions
from .progress import STAGES, Progress

MODELS_DIR_ENV = "PHOTO3D_MODELS_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Photo3D: turn one photograph into a layered 3D package for Blender.",
        epilog="exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"photo3d {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert a photo into a layer package")
    convert.add_argument("image", help="photo: JPEG, PNG, TIFF, WebP, EXR, BMP")
    convert.add_argument("-o", "--output", required=True, help="package folder to write (replaced if a package)")
    convert.add_argument("--config", help="JSON file of options (same sections as the manifest's 'options')")
    convert.add_argument("--representation", choices=["mesh", "mpi"], help="mesh layers (default) or MPI planes")
    convert.add_argument("--layers", type=int, help="maximum number of depth layers (default 4)")
    convert.add_argument("--planes", type=int, help="number of MPI planes (default 32)")
    convert.add_argument("--triangles", type=int, help="triangle budget per layer (default 10000)")
    convert.add_argument("--work-size", type=int, help="longest side of the working resolution (default 1024)")
    convert.add_argument("--depth-model", help="transformers depth model id or local folder")
    convert.add_argument("--depth", dest="depth_file", help="use this depth/disparity map instead of a model")
    convert.add_argument("--depth-kind", choices=["depth", "disparity"], help="what --depth holds")
    convert.add_argument("--depth-scale", type=float, help="divide stored values by this (Middlebury PGM: 4)")
    convert.add_argument("--near", type=float, help="depth of the nearest content for relative depth")
    convert.add_argument("--far", type=float, help="depth of the farthest content for relative depth")
    convert.add_argument("--segment", help="SAM model id or folder, or 'none' for the weights-free fallback")
    convert.add_argument("--inpaint", choices=["lama", "telea", "ns"], help="how hidden colour is filled")
    convert.add_argument("--lama-model", help="big-lama TorchScript file (path or name in the models folder)")
    convert.add_argument("--band", type=float, help="filled band behind nearer layers, share of image width")
    convert.add_argument("--fov", type=float, help="horizontal field of view in degrees when EXIF has none")
    convert.add_argument("--focal-px", type=float, help="focal length in pixels (overrides EXIF)")
    convert.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where networks run (default auto)")
    convert.add_argument("--models-dir", help=f"folder of model weights (default ${MODELS_DIR_ENV})")
    online = convert.add_mutually_exclusive_group()
    online.add_argument("--offline", dest="offline", action="store_true", default=None, help="never download")
    online.add_argument("--online", dest="offline", action="store_false", help="allow downloading missing weights")
    convert.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    convert.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    validate = commands.add_parser("validate", help="check a layer package and print its summary")
    validate.add_argument("package")
    validate.add_argument("--json", action="store_true")

    commands.add_parser("worker", help="serve JSON-lines requests on stdin (used by the Blender add-on)")
    return parser


# (argument, section, option) for every flag that maps onto PipelineOptions.
_FLAG_OPTIONS = [
    ("representation", "geometry", "representation"),
    ("layers", "layers", "max_layers"),
    ("planes", "geometry", "mpi_planes"),
    ("triangles", "geometry", "max_triangles"),
    ("work_size", "load", "work_size"),
    ("depth_model", "depth", "model"),
    ("depth_file", "depth", "depth_file"),
    ("depth_kind", "depth", "depth_kind"),
    ("depth_scale", "depth", "depth_scale"),
    ("near", "depth", "near"),
    ("far", "depth", "far"),
    ("segment", "segment", "model"),
    ("inpaint", "inpaint", "method"),
    ("lama_model", "inpaint", "lama_model"),
    ("band", "inpaint", "band_fraction"),
    ("fov", "load", "fov_deg"),
    ("focal_px", "load", "focal_px"),
    ("device", "runtime", "device"),
    ("models_dir", "runtime", "models_dir"),
    ("offline", "runtime", "offline"),
]


def options_from_args(args: argparse.Namespace) -> PipelineOptions:
    """Options from an optional JSON config, the environment, then command-line flags (highest)."""
    data: dict[str, Any] = {}
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read config {args.config}: {exc}") from exc
    if os.environ.get(MODELS_DIR_ENV):
        data.setdefault("runtime", {}).setdefault("models_dir", os.environ[MODELS_DIR_ENV])
    for arg, section, key in _FLAG_OPTIONS:
        value = getattr(args, arg)
        if value is not None:
            data.setdefault(section, {})[key] = value
    return PipelineOptions.from_dict(data)


class ProgressBar:
    """One bar per stage on stderr; a TTY gets a live bar, a log file one line per finished stage."""

    def __init__(self, stream=sys.stderr, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.live = enabled and stream.isatty()
        self.started = time.perf_counter()
        self.stage_started = self.started

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        if fraction == 0.0 and not message:
            self.stage_started = time.perf_counter()
        step = f"{STAGES.index(stage) + 1}/{len(STAGES)}" if stage in STAGES else "   "
        filled = int(round(fraction * 24))
        bar = "#" * filled + "-" * (24 - filled)
        line = f"[{step}] {stage:<9} |{bar}| {100 * fraction:3.0f}%  {message}"[:100]
        if self.live:
            self.stream.write("\r" + line.ljust(100))
            if fraction >= 1.0 and not message:
                elapsed = time.perf_counter() - self.stage_started
                self.stream.write(f"\r{line[:60]}  {elapsed:6.2f} s".ljust(100) + "\n")
            self.stream.flush()
        elif fraction >= 1.0 and not message:
            elapsed = time.perf_counter() - self.stage_started
            self.stream.write(f"[{step}] {stage:<9} done in {elapsed:.2f} s\n")
            self.stream.flush()


def summary_text(manifest: dict[str, Any], package: str) -> str:
    """The one-screen summary printed after a conversion."""
    source, camera = manifest["source"], manifest["camera"]
    noun = "layers" if manifest["representation"] == "mesh" else "planes"
    lines = [
        f"Photo3D package: {package}",
        f"  photo   {source['path']}  ({source['width']}x{source['height']}, {source['mode']})",
        f"  camera  focal {camera['focal_px']:.1f} px, fov {camera['fov_x_deg']:.1f} deg ({camera['focal_source']})",
        f"  depth   {manifest['depth']['source']}  [{manifest['depth']['kind']}, {manifest['depth']['units']}]",
        f"  {manifest['representation']} with {len(manifest['layers'])} {noun} (back to front):",
    ]
    for layer in manifest["layers"]:
        lo, hi = layer["depth_range"]
        extra = ""
        if "triangles" in layer:
            extra += f"  {layer['triangles']:>6} triangles"
        if layer.get("inpainted_fraction") is not None:
            extra += f"  {100 * layer['inpainted_fraction']:5.1f}% inpainted"
        lines.append(f"    {layer['name']:<9} depth {lo:8.3f} - {hi:8.3f}  {layer['pixel_count']:>8} px{extra}")
    timings = manifest.get("timings", {})
    if timings:
        lines.append("  seconds " + "  ".join(f"{k} {v:.2f}" for k, v in timings.items()))
        lines.append(f"  total   {sum(timings.values()):.2f} s")
    return "\n".join(lines)


def _convert(args: argparse.Namespace) -> int:
    from .pipeline import convert_image  # heavy imports only when converting

    options = options_from_args(args)
    bar = ProgressBar(enabled=not args.quiet)
    result = convert_image(args.image, args.output, options, Progress(callback=bar))
    if args.json:
        print(json.dumps({"package": str(result.package_path), "manifest": result.manifest}, indent=2))
    else:
        print(summary_text(result.manifest, str(result.package_path)))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .package import read_package

    package = read_package(args.package)
    if args.json:
        print(json.dumps({"package": str(package.root), "valid": True, "manifest": package.manifest}, indent=2))
    else:
        print(summary_text(package.manifest, str(package.root)))
        print("  valid")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":
        from .worker import serve

        return serve()
    try:
        return _convert(args) if args.command == "convert" else _validate(args)
    except Photo3DError as exc:
        print(f"photo3d: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("photo3d: cancelled", file=sys.stderr)
        return 130
    except MemoryError:
        print("photo3d: error: out of memory; try a smaller --work-size", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print("photo3d: internal error (a bug): please report it with the trace above", file=sys.stderr)
        return 1

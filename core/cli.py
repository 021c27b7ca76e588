"""Command line: ``python -m core convert IMAGE|VIDEO -o OUT_DIR``, ``validate PACKAGE``, ``export PACKAGE --to
DIR``, ``batch PHOTO ... --out DIR [--ray]``, ``models`` and ``worker``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from . import __version__
from .errors import EXIT_CODES, EXIT_OUT_OF_MEMORY, InputError, Photo3DError, SignalReceived
from .export.cli import add_export_parser, run_export
from .farm.batch import add_batch_parser, run_batch
from .models.manager_cli import add_models_parser, run_models
from .options import LIMITS, PipelineOptions, default_of, describe
from .package import Manifest
from .progress import STAGES, Progress
from .safe_json import JSONRejected, json_kind, read_json_file

MODELS_DIR_ENV = "PHOTO3D_MODELS_DIR"


def _choices(option: str) -> list[str]:
    """A flag's choices: the option's own (``core.options.LIMITS``)."""
    return list(LIMITS[option].choices)


def _help(text: str, option: str) -> str:
    """A flag's help with its range and default read from core.options, so the text cannot go stale."""
    default = default_of(option)
    accepted = describe(option)
    # Numbers state their range; choices are listed by argparse itself, text needs no rule.
    limits = f", {accepted.split(' in ')[1].removesuffix(' or null')}" if " in " in accepted else ""
    return (f"{text}{limits}" + ("" if default is None else f" (default {default})")).replace("%", "%%")


def _is_default(offline: bool) -> str:
    return " (default)" if default_of("runtime.offline") is offline else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Photo3D: turn one photograph into a layered 3D package for Blender.",
        epilog="exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"photo3d {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert a photo (or footage) into a layer package")
    convert.add_argument(
        "image",
        help="photo: JPEG, PNG, TIFF, WebP, EXR, BMP; or footage: a video file (MP4, MOV, MKV, ...) or the folder "
        "of a numbered image sequence, converted into a layered video package",
    )
    convert.add_argument("-o", "--output", required=True, help="package folder to write (replaced if a package)")
    convert.add_argument("--config", help="JSON file of options (same sections as the manifest's 'options')")
    convert.add_argument(
        "--representation",
        choices=_choices("geometry.representation"),
        help=_help("mesh layers or MPI planes", "geometry.representation"),
    )
    convert.add_argument("--layers", type=int, help=_help("maximum number of depth layers", "layers.max_layers"))
    convert.add_argument("--planes", type=int, help=_help("number of MPI planes", "geometry.mpi_planes"))
    convert.add_argument("--triangles", type=int, help=_help("triangle budget per layer", "geometry.max_triangles"))
    convert.add_argument(
        "--work-size", type=int, help=_help("longest side of the working resolution", "load.work_size")
    )
    convert.add_argument(
        "--depth-model",
        help=_help("depth model: an ONNX file (a path, or inside the models folder) or a transformers id or folder",
                   "depth.model"),
    )  # fmt: skip
    convert.add_argument("--depth", dest="depth_file", help="use this depth/disparity map instead of a model")
    convert.add_argument(
        "--depth-kind", choices=_choices("depth.depth_kind"), help=_help("what --depth holds", "depth.depth_kind")
    )
    convert.add_argument(
        "--depth-scale", type=float, help=_help("divide stored values by this (Middlebury PGM: 4)", "depth.depth_scale")
    )
    convert.add_argument(
        "--near", type=float, help=_help("depth of the nearest content for relative depth", "depth.near")
    )
    convert.add_argument(
        "--far", type=float, help=_help("depth of the farthest content for relative depth", "depth.far")
    )
    convert.add_argument(
        "--segment",
        help=_help(
            "SAM model: an ONNX encoder file (its decoder beside it), a transformers id or folder, or "
            "'none' for the weights-free fallback",
            "segment.model",
        ),  # fmt: skip
    )
    convert.add_argument(
        "--inpaint", choices=_choices("inpaint.method"), help=_help("how hidden colour is filled", "inpaint.method")
    )
    convert.add_argument(
        "--lama-model",
        help=_help(
            "LaMa model: an ONNX file or big-lama TorchScript (a path, or inside the models folder)",
            "inpaint.lama_model",
        ),  # fmt: skip
    )
    convert.add_argument(
        "--band",
        type=float,
        help=_help("filled band behind nearer layers, share of image width", "inpaint.band_fraction"),
    )
    convert.add_argument(
        "--border",
        type=float,
        help=_help("how far layers reach past the photo's edges, share of image width", "inpaint.border_fraction"),
    )
    convert.add_argument(
        "--fov", type=float, help=_help("horizontal field of view in degrees when EXIF has none", "load.fov_deg")
    )
    convert.add_argument(
        "--focal-px", type=float, help=_help("focal length in pixels (overrides EXIF)", "load.focal_px")
    )
    convert.add_argument(
        "--device", choices=_choices("runtime.device"), help=_help("where networks run", "runtime.device")
    )
    convert.add_argument("--models-dir", help=f"folder of model weights (default ${MODELS_DIR_ENV})")
    online = convert.add_mutually_exclusive_group()
    online.add_argument(
        "--offline", dest="offline", action="store_true", default=None, help="never download" + _is_default(True)
    )
    online.add_argument(
        "--online", dest="offline", action="store_false", help="allow downloading missing weights" + _is_default(False)
    )
    convert.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    convert.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    footage = convert.add_argument_group(
        "footage", "for a video or an image sequence (--depth: a folder, a file a frame)"
    )
    footage.add_argument("--start", type=int, default=0, help="first frame converted, from 0 (default 0)")
    footage.add_argument("--end", type=int, help="last frame converted (default: the footage's last)")
    footage.add_argument("--stride", type=int, default=1, help="every Nth frame (default 1)")

    validate = commands.add_parser("validate", help="check a layer package and print its summary")
    validate.add_argument("package")
    validate.add_argument("--json", action="store_true")

    add_export_parser(commands)
    add_batch_parser(commands)
    commands.add_parser("worker", help="serve JSON-lines requests on stdin (used by the Blender add-on)")
    models = add_models_parser(commands, f"folder of model weights (default ${MODELS_DIR_ENV})")
    from .models.onnx_export import add_export_onnx_parser  # light: torch and onnx load only when it runs

    add_export_onnx_parser(models, f"folder of model weights (default ${MODELS_DIR_ENV})")
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
    ("border", "inpaint", "border_fraction"),
    ("fov", "load", "fov_deg"),
    ("focal_px", "load", "focal_px"),
    ("device", "runtime", "device"),
    ("models_dir", "runtime", "models_dir"),
    ("offline", "runtime", "offline"),
]


MAX_CONFIG_BYTES = 1_000_000
"""A config holds a few dozen options; anything much bigger is not one."""


def _read_config(path: str) -> dict[str, Any]:
    """The --config file as an object of sections, or InputError (never a traceback)."""
    try:
        data = read_json_file(path, MAX_CONFIG_BYTES)
    except (OSError, JSONRejected) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"config {path} must hold a JSON object of option sections, not {json_kind(data)}")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise InputError(f"config {path}: option section {section!r} must be an object")
    return data


def options_from_args(args: argparse.Namespace) -> PipelineOptions:
    """Options from an optional JSON config, the environment, then command-line flags (highest)."""
    data: dict[str, Any] = _read_config(args.config) if args.config else {}
    # Where each option was set, so a refused value is traced to the flag or file that gave it.
    sources = {f"{section}.{key}": f"config {args.config}" for section, values in data.items() for key in values}
    if os.environ.get(MODELS_DIR_ENV) and "models_dir" not in data.get("runtime", {}):
        data.setdefault("runtime", {})["models_dir"] = os.environ[MODELS_DIR_ENV]
        sources["runtime.models_dir"] = f"${MODELS_DIR_ENV}"
    for arg, section, key in _FLAG_OPTIONS:
        value = getattr(args, arg)
        if value is not None:
            data.setdefault(section, {})[key] = value
            sources[f"{section}.{key}"] = "--" + {"depth_file": "depth"}.get(arg, arg).replace("_", "-")
    try:
        return PipelineOptions.from_dict(data)
    except InputError as exc:
        source = sources.get(getattr(exc, "option", ""))
        if source is None:
            raise
        raise InputError(f"{source}: {exc}") from exc


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


class ExportLines:
    """One line per export step on stderr."""

    def __init__(self, stream=sys.stderr, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.enabled and message:
            self.stream.write(f"[export] {100 * fraction:3.0f}%  {message}\n")
            self.stream.flush()


def _shown(text: str) -> str:
    """A manifest string made safe for a terminal: control characters (escape sequences) shown escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def summary_text(manifest: Manifest, package: str) -> str:
    """The one-screen summary printed after a conversion or a validation, from the checked manifest."""
    source, camera, depth = manifest.source, manifest.camera, manifest.depth
    noun = "layers" if manifest.representation == "mesh" else "planes"
    lines = [
        f"Photo3D package: {_shown(package)}",
        f"  photo   {_shown(source.path)}  ({source.width}x{source.height}, {_shown(source.mode)})",
        f"  camera  focal {camera.focal_px:.1f} px, fov {camera.fov_x_deg:.1f} deg ({camera.focal_source})",
        f"  depth   {_shown(depth.source)}  [{_shown(depth.kind)}, {_shown(depth.units)}]",
        f"  {manifest.representation} with {len(manifest.layers)} {noun} (back to front):",
    ]
    runs_on = [
        f"{key.removesuffix('_runs_on')}: {value}" for key, value in manifest.models.items() if key.endswith("_runs_on")
    ]
    if runs_on:
        lines.insert(4, f"  ran on  {_shown('; '.join(runs_on))}")
    for layer in manifest.layers:
        lo, hi = layer.depth_range
        extra = ""
        if layer.triangles is not None:
            extra += f"  {layer.triangles:>6} triangles"
        if layer.inpainted_fraction is not None:
            extra += f"  {100 * layer.inpainted_fraction:5.1f}% inpainted"
        lines.append(f"    {_shown(layer.name):<9} depth {lo:8.3f} - {hi:8.3f}  {layer.pixel_count:>8} px{extra}")
    if manifest.timings:
        lines.append("  seconds " + "  ".join(f"{_shown(k)} {v:.2f}" for k, v in manifest.timings.items()))
        lines.append(f"  total   {sum(manifest.timings.values()):.2f} s")
    return "\n".join(lines)


def _convert(args: argparse.Namespace) -> int:
    from .video.convert import is_video_input

    if is_video_input(args.image):
        return _convert_video(args)
    if args.start or args.end is not None or args.stride != 1:
        raise InputError(f"--start, --end and --stride pick frames of footage; {args.image} is a photo")
    from .pipeline import convert_image  # heavy imports only when converting

    options = options_from_args(args)
    bar = ProgressBar(enabled=not args.quiet)
    result = convert_image(args.image, args.output, options, Progress(callback=bar))
    if args.json:
        print(json.dumps({"package": str(result.package_path), "manifest": result.manifest.to_dict()}, indent=2))
    else:
        print(summary_text(result.manifest, str(result.package_path)))
    return 0


def _convert_video(args: argparse.Namespace) -> int:
    from .video.convert import VideoOptions, convert_video
    from .video.package import read_video_package

    options = options_from_args(args)
    video = VideoOptions(start=args.start, end=args.end, stride=args.stride)
    bar = ProgressBar(enabled=not args.quiet)
    path = convert_video(args.image, args.output, options, video, Progress(callback=bar))
    package = read_video_package(path, check_textures=False)
    manifest = package.manifest.to_dict()
    if args.json:
        print(json.dumps({"package": str(path), "manifest": manifest}, indent=2))
    else:
        print(f"Photo3D video package: {_shown(str(path))}")
        print(f"  footage {_shown(manifest['source']['path'])}  ({manifest['source']['frame_count']} frames)")
        for shot in manifest["shots"]:
            print(f"  shot {shot['index']}: frames {shot['first']}-{shot['last']}, {len(shot['layers'])} layers")
        print(f"  total   {sum(manifest['timings'].values()):.2f} s")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .package import read_package

    package = read_package(args.package)
    if args.json:
        print(
            json.dumps({"package": str(package.root), "valid": True, "manifest": package.manifest.to_dict()}, indent=2)
        )
    else:
        print(summary_text(package.manifest, str(package.root)))
        print("  valid")
    return 0


def _raise_on_signal(signum: int, frame: object) -> None:
    raise SignalReceived(signum)


@contextlib.contextmanager
def _signals_cancel():
    """SIGTERM and SIGHUP (a batch system's kill, a closed terminal) unwind the run like Ctrl-C does, so the
    package writer removes its staging folder instead of the process dying with it in place."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():  # signals can only be set from there
        yield
        return
    previous = {name: signal.signal(getattr(signal, name), _raise_on_signal) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":
        from .worker import serve

        return serve()
    try:
        with _signals_cancel():
            if args.command == "models" and args.models_command == "export-onnx":
                from .models.onnx_export import run_export_onnx

                return run_export_onnx(args, args.models_dir or os.environ.get(MODELS_DIR_ENV))
            if args.command == "models":
                return run_models(args, args.models_dir or os.environ.get(MODELS_DIR_ENV))
            if args.command == "export":
                return run_export(args, Progress(callback=ExportLines(enabled=not args.quiet)))
            if args.command == "batch":
                return run_batch(args)
            return _convert(args) if args.command == "convert" else _validate(args)
    except Photo3DError as exc:
        print(f"photo3d: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("photo3d: cancelled", file=sys.stderr)
        return 130
    except SignalReceived as exc:
        print(f"photo3d: stopped by {exc.name}; nothing was written", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print("photo3d: error: out of memory; try a smaller --work-size", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    except Exception:
        traceback.print_exc()
        print("photo3d: internal error (a bug): please report it with the trace above", file=sys.stderr)
        return 1

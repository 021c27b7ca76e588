"""Headless batch: photos in, a .blend and/or a video per photo out.

Runs as a Blender command (``blender -b -c photo3d PHOTO ... --out DIR``) and, through
``scripts/photo3d_batch.py``, with the bpy module from the project's environment. One failed photo never stops
the batch; the exit code tells what went wrong first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bpy

from ...core.errors import (
    EXIT_BAD_INPUT,
    EXIT_BAD_PACKAGE,
    EXIT_CANCELLED,
    EXIT_EXPORT,
    EXIT_FOR_ERROR_CODE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    EXIT_OUTPUT,
    EXIT_RENDER,
    EXIT_WORKER,
    ExportError,
    OutputError,
    PackageError,
    SignalReceived,
    failure_class,
)
from ...core.export.comp import parse_formats
from ...core.farm.frames import parse_frame_range
from ...core.farm.records import (
    PROGRESS_FORMATS,
    ItemLedger,
    ItemLog,
    ItemRecord,
    file_sha256,
    item_name,
    job_exit_code,
    path_sha256,
    progress_line,
    settings_sha256,
    versions,
)
from ...core.options import LIMITS as OPTION_LIMITS
from ...core.options import MAX_TEXT_CHARS, format_number
from ...core.package import read_package
from ...core.progress import Progress
from ...core.safe_json import JSONRejected, read_json_file, short_repr
from ...core.video.manifest import MANIFEST_NAME as VIDEO_MANIFEST_NAME
from ...core.video.package import read_video_package
from ..effects.build import apply_effects
from ..effects.params import EffectError, parse_effects
from ..export import run as comp_export
from ..importing.choices import DEFAULTS as IMPORT
from ..importing.choices import (
    DEPTH_KINDS,
    DEVICES,
    FOOTAGE_EXTENSIONS,
    INPAINTS,
    MAX_LAYERS,
    MIN_LAYERS,
    REPRESENTATIONS,
    ChoiceError,
    ImportChoices,
    check_image_path,
    pipeline_options,
)
from ..importing.service import ImportService
from ..motion.keyframes import apply_preset
from ..motion.paths import DEFAULTS as PATH_DEFAULTS
from ..motion.paths import MAX_AMPLITUDE, PRESETS, check_amplitude
from ..render.settings import DEFAULTS as RENDER
from ..render.settings import (
    FRAME_RATES,
    OUTPUTS,
    QUALITY,
    RESOLUTIONS,
    RenderError,
    RenderSettings,
    apply_render_settings,
    render_frames,
)
from ..scene.builder import BuildSettings, build_scene, remove_photo_collection
from ..scene.photo_scene import SOURCE_KEY, PhotoScene
from ..scene.video_builder import build_video_scene
from ..worker.client import EXTENSION_ROOT, launch_for, shared_worker, stop_shared_worker
from ..worker.environment import find_worker_python, missing_worker_message
from ..worker.task import run_blocking


@dataclass
class PhotoResult:
    photo: str
    status: str = "ok"
    exit_code: int = EXIT_OK
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    name: str = ""
    """The item's name: its records and log are ``items/<name>.json`` and ``.log``."""
    log: str = ""
    failure: str = ""
    """For a failed item: ``permanent`` or ``retryable`` (``core.errors.failure_class``)."""


class PhotoFailed(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photo3d",
        description="Turn photos into layered 3D scenes and render them, headless.",
    )
    parser.add_argument("photos", nargs="*", help="photos to convert (one scene each)")
    parser.add_argument(
        "--package",
        dest="packages",
        action="append",
        metavar="DIR",
        help="render an existing layer package instead of converting a photo (repeat for several): a GPU "
        "machine converts, a render node renders",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: photo3d_out)")
    parser.add_argument("--settings", type=Path, help="JSON file with any of these options (flags override it)")
    parser.add_argument("--blend", action=argparse.BooleanOptionalAction, default=None, help="save a .blend")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=None, help="render the frames")
    parser.add_argument("--output", choices=OUTPUTS, help=f"MP4 video or PNG frames (default {RENDER.output})")
    parser.add_argument("--resolution", choices=list(RESOLUTIONS), help=f"output size (default {RENDER.resolution})")
    parser.add_argument("--fps", type=int, choices=FRAME_RATES, help=f"frame rate (default {RENDER.fps})")
    parser.add_argument(
        "--frames",
        type=_frames_arg,
        help=f"number of frames of the shot (default {PATH_DEFAULTS.duration_frames}), or FIRST-LAST to render only "
        "those frames of it (a farm's chunk: PNG frames, no .blend; the shot's length is --shot-frames)",
    )
    parser.add_argument(
        "--shot-frames",
        type=int,
        help=f"the shot's length when --frames is a range (default {PATH_DEFAULTS.duration_frames})",
    )
    parser.add_argument("--quality", choices=list(QUALITY), help=f"render quality (default {RENDER.quality})")
    parser.add_argument("--samples", type=int, help="Eevee samples, overriding the quality's")
    parser.add_argument(
        "--motion-blur", action=argparse.BooleanOptionalAction, default=None, help="Eevee motion blur (default on)"
    )
    parser.add_argument(
        "--path", choices=["NONE", *PRESETS], help=f"camera path preset (default {PATH_DEFAULTS.preset})"
    )
    parser.add_argument("--amplitude", type=float, help="path amplitude (default: safe for the inpainted band)")
    parser.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None, help="seamless loop")
    parser.add_argument(
        "--effect",
        dest="effects",
        action="append",
        metavar="SPEC",
        help="add an effect: rain, snow, fog, dust or halos, with options as name=value after colons, "
        "e.g. rain:amount=0.8:wind=0.3 (options: amount, speed, size, colour=r,g,b, wind, near, far, seed); "
        "repeat for several",
    )
    parser.add_argument(
        "--export",
        metavar="FORMATS",
        help="also write a comp package <photo>_comp/ per photo with these formats, comma-separated, "
        f"e.g. usd,gltf,chan,abc (formats: {', '.join(comp_export.FORMATS)}; default: no export)",
    )
    parser.add_argument(
        "--representation",
        choices=REPRESENTATIONS,
        help=f"mesh layers or MPI planes (default {IMPORT.representation})",
    )
    parser.add_argument("--layers", type=int, help=f"most depth layers (default {IMPORT.layers})")
    parser.add_argument("--depth", type=Path, help="a depth file for a single photo, or a folder of <stem>.npy/.png")
    parser.add_argument("--focal-px", type=float, help="focal length in pixels, for calibrated photos")
    parser.add_argument("--depth-kind", choices=DEPTH_KINDS, help="what depth files hold")
    parser.add_argument("--no-segmentation", dest="segmentation", action="store_false", default=None)
    parser.add_argument("--inpaint", choices=INPAINTS, help=f"how hidden parts are filled (default {IMPORT.inpaint})")
    parser.add_argument("--worker-python", help="Python with the worker's packages (default: found as in Blender)")
    parser.add_argument("--models-dir", help="folder of model weights")
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument(
        "--package-out",
        metavar="DIR",
        help="write the one photo's package to DIR (default: OUT/packages/<photo>-<hash>); with --no-video and "
        "--no-blend the batch only converts",
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="skip every item already done with the same input, settings and versions (items/<name>.json)",
    )
    parser.add_argument("--force", action="store_true", default=None, help="redo every item, even with --resume")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="hand the photos to the distributed batch (python -m core batch --ray, with the worker's Python, "
        "which needs Ray): conversions on a Ray cluster (a new local one, or ADDRESS), the frames rendered in "
        "chunks of --chunk-size as PNGs into OUT/<photo>/; put the photos before --ray",
    )
    parser.add_argument("--chunk-size", type=int, help="frames per render task with --ray (default 12)")
    parser.add_argument(
        "--progress",
        choices=PROGRESS_FORMATS,
        help="text lines (default) or one JSON object per line ('photo3d-progress {...}') for a farm to parse",
    )
    return parser


def _frames_arg(text: str) -> int | str:
    """--frames: a count, or a FIRST-LAST range checked with the other settings."""
    return int(text) if text.strip().isdigit() else text


DEFAULTS: dict[str, Any] = {
    "out": "photo3d_out",
    "blend": True,
    "video": True,
    "output": RENDER.output,
    "resolution": RENDER.resolution,
    "fps": RENDER.fps,
    "frames": PATH_DEFAULTS.duration_frames,
    "quality": RENDER.quality,
    "samples": None,
    "motion_blur": RENDER.motion_blur,
    "path": PATH_DEFAULTS.preset,
    "amplitude": None,
    "loop": PATH_DEFAULTS.loop,
    "effects": [],
    "export": None,
    "representation": IMPORT.representation,
    "layers": IMPORT.layers,
    "depth": None,
    "depth_kind": IMPORT.depth_kind,
    "focal_px": 0.0,
    "segmentation": IMPORT.segmentation,
    "inpaint": IMPORT.inpaint,
    "worker_python": None,
    "models_dir": None,
    "device": IMPORT.device,
    "photos": [],
    "packages": [],
    "shot_frames": None,
    "package_out": None,
    "resume": False,
    "force": False,
    "progress": "text",
    "ray": None,
    "chunk_size": None,
}
"""The batch's settings when nothing is given: the add-on's defaults (``importing.choices``, ``motion.paths``,
``render.settings``), never numbers of its own."""


@dataclass(frozen=True)
class Rule:
    """What one setting accepts: ``kind`` is bool, int, float, text, choice, texts (a list of text), formats (the
    comp export's comma-separated formats), frames (a count, or a FIRST-LAST text) or list."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    optional: bool = False
    """None is accepted too (it means the default behaviour, e.g. the safe amplitude)."""


MAX_SETTINGS_BYTES = 1_000_000
"""A settings file holds a few dozen keys; anything much bigger is not one."""
MAX_FRAMES = 14_400
"""Ten minutes at 24 fps: every frame is a render, so this bounds a job's work."""
MAX_SAMPLES = 1024
"""Eevee samples per pixel; FINAL uses 64, and the render time grows with them."""
_FOCAL = OPTION_LIMITS["load.focal_px"]

# Every setting's accepted values, in one place, checked before any photo is converted.
SETTING_RULES: dict[str, Rule] = {
    "out": Rule("text"),
    "blend": Rule("bool"),
    "video": Rule("bool"),
    "output": Rule("choice", choices=OUTPUTS),
    "resolution": Rule("choice", choices=tuple(RESOLUTIONS)),
    "fps": Rule("choice", choices=FRAME_RATES),
    "frames": Rule("frames", 1, MAX_FRAMES),
    "quality": Rule("choice", choices=tuple(QUALITY)),
    "samples": Rule("int", 1, MAX_SAMPLES, optional=True),
    "motion_blur": Rule("bool"),
    "path": Rule("choice", choices=("NONE", *PRESETS)),
    # In the preset's unit (metres, radians or a zoom factor): the scene's size is unknown up front, so the
    # bound is a magnitude; NaN or infinity used to render uniform grey frames and exit 0.
    "amplitude": Rule("float", -MAX_AMPLITUDE, MAX_AMPLITUDE, optional=True),
    "loop": Rule("bool"),
    "effects": Rule("list"),
    # A comma-separated text such as "usd,gltf"; its names are checked against the exporter's formats below.
    "export": Rule("formats", optional=True),
    "representation": Rule("choice", choices=REPRESENTATIONS),
    "layers": Rule("int", MIN_LAYERS, MAX_LAYERS),
    "depth": Rule("text", optional=True),
    "depth_kind": Rule("choice", choices=DEPTH_KINDS),
    # 0 (or null) means from EXIF or the default field of view; otherwise the pipeline's own range.
    "focal_px": Rule("float", 0.0, _FOCAL.high, optional=True),
    "segmentation": Rule("bool"),
    "inpaint": Rule("choice", choices=INPAINTS),
    "worker_python": Rule("text", optional=True),
    "models_dir": Rule("text", optional=True),
    "device": Rule("choice", choices=DEVICES),
    "photos": Rule("texts"),
    "packages": Rule("texts"),
    "shot_frames": Rule("int", 1, MAX_FRAMES, optional=True),
    "package_out": Rule("text", optional=True),
    "resume": Rule("bool"),
    "force": Rule("bool"),
    "progress": Rule("choice", choices=PROGRESS_FORMATS),
    "ray": Rule("text", optional=True),
    "chunk_size": Rule("int", 1, MAX_FRAMES, optional=True),
}
if set(SETTING_RULES) != set(DEFAULTS):  # a setting without a rule would pass unchecked
    raise TypeError(f"batch settings without a rule: {sorted(set(DEFAULTS) ^ set(SETTING_RULES))}")


def _describe(rule: Rule) -> str:
    if rule.kind == "bool":
        text = "true or false"
    elif rule.kind in ("int", "float"):
        noun = "an integer" if rule.kind == "int" else "a finite number"
        text = f"{noun} in {format_number(rule.low)}..{format_number(rule.high)}"
    elif rule.kind == "choice":
        text = "one of " + ", ".join(str(c) for c in rule.choices)
    elif rule.kind == "text":
        text = f"a path of at most {MAX_TEXT_CHARS} characters without NUL"
    elif rule.kind == "texts":
        text = f"a list of paths of at most {MAX_TEXT_CHARS} characters without NUL"
    elif rule.kind == "formats":
        text = f"a text of comma-separated export formats ({', '.join(comp_export.FORMATS)})"
    elif rule.kind == "frames":
        text = f"an integer in 1..{MAX_FRAMES} or a range FIRST-LAST of the shot's frames"
    else:
        text = "a list"
    return text + (" or null" if rule.optional else "")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS and "\x00" not in value


def _checked(rule: Rule, value: Any) -> tuple[Any, bool]:
    """``(value, accepted)``: the value normalised (paths as str, ints widened to float) and whether ``rule``
    accepts it."""
    if isinstance(value, os.PathLike):  # argparse gives Path for --out and --depth
        value = os.fspath(value)
    if value is None and rule.optional:
        return value, True
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if rule.kind == "bool":
        return value, isinstance(value, bool)
    if rule.kind == "int":
        return value, number and isinstance(value, int) and rule.low <= value <= rule.high
    if rule.kind == "frames":  # a range's own bounds are checked against the shot in check_settings
        count = number and isinstance(value, int) and rule.low <= value <= rule.high
        return value, count or (_is_text(value) and "-" in value)
    if rule.kind == "float":
        # An int is compared before float(): float() of a 400-digit integer overflows.
        ok = number and (isinstance(value, int) or math.isfinite(value)) and rule.low <= value <= rule.high
        return (float(value) if ok else value), ok
    if rule.kind == "choice":
        # The type must match too: 24.0 is not a frame rate, True is not a choice.
        same_type = all(type(value) is type(choice) for choice in rule.choices)
        return value, same_type and value in rule.choices
    if rule.kind in ("text", "formats"):
        return value, _is_text(value)
    if rule.kind == "texts":
        value = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value] if isinstance(value, list) else value
        return value, isinstance(value, list) and all(_is_text(v) for v in value)
    return value, isinstance(value, list)


def check_settings(settings: dict[str, Any], origin: dict[str, str]) -> None:
    """Check every setting's type and range up front (``SETTING_RULES``), in place; PhotoFailed names the key
    and where it came from (``origin``: key -> flag or settings file)."""
    for key, rule in SETTING_RULES.items():
        value, ok = _checked(rule, settings[key])
        if not ok:
            where = origin.get(key, "default")
            message = f"setting {key} ({where}) must be {_describe(rule)}, got {short_repr(value)}"
            raise PhotoFailed(EXIT_BAD_INPUT, message)
        settings[key] = value
    if settings["focal_px"] and settings["focal_px"] < _FOCAL.low:
        limits = f"0 (from EXIF) or {format_number(_FOCAL.low)}..{format_number(_FOCAL.high)}"
        raise PhotoFailed(EXIT_BAD_INPUT, f"setting focal_px ({origin.get('focal_px')}) must be {limits}")
    _check_farm_settings(settings, origin)
    if settings["path"] != "NONE":
        if shot_frames(settings) < 2:
            where = origin.get("frames", "default")
            message = f"setting frames ({where}) must be at least 2 for the camera path {settings['path']}"
            raise PhotoFailed(EXIT_BAD_INPUT, message)
        try:
            check_amplitude(settings["path"], settings["amplitude"])
        except ValueError as exc:
            raise PhotoFailed(EXIT_BAD_INPUT, f"setting amplitude ({origin.get('amplitude')}): {exc}") from exc
    try:  # checked before any photo is converted
        parse_effects(settings["effects"])
    except EffectError as exc:
        raise PhotoFailed(EXIT_BAD_INPUT, f"effect: {exc}") from exc
    if settings["export"] is not None:
        try:  # against what Blender exports at run time, before any photo is converted
            parse_formats(settings["export"], comp_export.FORMATS)
        except ExportError as exc:
            raise PhotoFailed(EXIT_EXPORT, f"setting export ({origin.get('export', 'default')}): {exc}") from exc


def shot_frames(settings: dict[str, Any]) -> int:
    """The shot's length: --frames as a count, or --shot-frames when --frames is a range."""
    if isinstance(settings["frames"], int):
        return settings["frames"]
    return settings["shot_frames"] or PATH_DEFAULTS.duration_frames


def frame_chunk(settings: dict[str, Any]) -> tuple[int, int] | None:
    """The frames to render when --frames is a range (checked by ``check_settings``), else None: all of them."""
    if isinstance(settings["frames"], int):
        return None
    return parse_frame_range(settings["frames"], shot_frames(settings))


def _check_farm_settings(settings: dict[str, Any], origin: dict[str, str]) -> None:
    """A chunk of frames renders PNG frames only (a shot's video, .blend and comp package are made once, not
    per chunk); --package-out names one photo's package."""

    def refuse(key: str, text: str) -> None:
        raise PhotoFailed(EXIT_BAD_INPUT, f"setting {key} ({origin.get(key, 'default')}): {text}")

    if not isinstance(settings["frames"], int):
        try:
            parse_frame_range(settings["frames"], shot_frames(settings))
        except ValueError as exc:
            refuse("frames", str(exc))
        if settings["output"] != "PNG":
            if "output" in origin:
                refuse("output", "a frame range renders PNG frames (--output PNG); the video is encoded from them")
            settings["output"] = "PNG"
        for key, off in (("blend", False), ("export", None)):
            if settings[key] not in (False, None):
                if key in origin:
                    refuse(key, "a frame range renders frames only; save the .blend or export with the whole shot")
                settings[key] = off
    elif settings["shot_frames"] is not None and settings["shot_frames"] != settings["frames"]:
        refuse("shot_frames", "is the shot's length when --frames is a range FIRST-LAST")
    if settings["package_out"] and (len(settings["photos"]) != 1 or settings["packages"]):
        refuse("package_out", "names the package of exactly one photo")


def _flag(key: str) -> str:
    return {"effects": "--effect", "photos": "photos", "segmentation": "--no-segmentation"}.get(
        key, "--" + key.replace("_", "-")
    )


def resolve_settings(argv: list[str]) -> dict[str, Any]:
    """Defaults, then the JSON settings file, then the flags given on the command line; all checked."""
    args = build_parser().parse_args(argv)
    settings = dict(DEFAULTS)
    origin: dict[str, str] = {}
    if args.settings is not None:
        try:
            data = read_json_file(str(args.settings), MAX_SETTINGS_BYTES)
        except (OSError, JSONRejected) as exc:
            raise PhotoFailed(EXIT_BAD_INPUT, f"settings file {args.settings}: {exc}") from exc
        if not isinstance(data, dict):
            raise PhotoFailed(EXIT_BAD_INPUT, f"settings file {args.settings} must hold a JSON object")
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            shown = ", ".join(key if len(key) <= 60 else key[:57] + "..." for key in unknown)
            raise PhotoFailed(EXIT_BAD_INPUT, f"settings file {args.settings}: unknown keys {shown}")
        settings.update(data)
        origin.update(dict.fromkeys(data, f"in {args.settings}"))
    for key, value in vars(args).items():
        if key != "settings" and value is not None and value != []:
            settings[key] = value
            origin[key] = _flag(key)
    check_settings(settings, origin)
    if not settings["photos"] and not settings["packages"]:
        raise PhotoFailed(EXIT_BAD_INPUT, "no photos or packages given")
    return settings


def _depth_for(photo: Path, depth: str | None) -> str:
    if not depth:
        return ""
    depth_path = Path(depth)
    if depth_path.is_dir() and photo.suffix.lower() in FOOTAGE_EXTENSIONS:
        return str(depth_path)  # footage takes a folder of per-frame depth files
    if depth_path.is_dir():
        for suffix in (".npy", ".pfm", ".png", ".exr", ".tif", ".tiff", ".pgm"):
            for name in (f"{photo.stem}{suffix}", f"{photo.stem}_depth{suffix}"):
                if (depth_path / name).is_file():
                    return str(depth_path / name)
        raise PhotoFailed(EXIT_BAD_INPUT, f"no depth file for {photo.name} in {depth_path}")
    return str(depth_path)


class _Reporter:
    """Where the batch's lines go: stdout as text (``photo3d: ...``) or as JSON progress lines (``--progress
    json``), and the item's own log while an item runs."""

    def __init__(self) -> None:
        self.json = False
        self.item = ""
        self.log: ItemLog | None = None

    def say(self, text: str, event: str = "message", **fields: Any) -> None:
        if self.json:
            print(progress_line(event, self.item, message=text, **fields), flush=True)
        else:
            print(f"photo3d: {text}", flush=True)
        if self.log is not None:
            self.log.write(text)


_reporter = _Reporter()


def _say(text: str, event: str = "message", **fields: Any) -> None:
    _reporter.say(text, event, **fields)


def _clear_scene(scene: bpy.types.Scene) -> None:
    """Empty the file, so each photo's .blend holds only its own scene.

    The batch owns its Blender session; the startup file's cube sits at the origin, around the photo's
    camera, and would hide everything.
    """
    for collection in list(scene.collection.children_recursive):
        if SOURCE_KEY in collection:
            remove_photo_collection(collection)
    for data in (bpy.data.objects, bpy.data.meshes, bpy.data.lights, bpy.data.cameras, bpy.data.collections):
        for block in list(data):
            data.remove(block)
    for data in (bpy.data.materials, bpy.data.images):
        for block in [b for b in data if b.users == 0]:
            data.remove(block)


class _Stop:
    """SIGTERM, SIGINT or SIGHUP during a batch: the photo in flight is cancelled, its outputs removed, the worker
    stopped, and the batch exits 128 + the signal. The handler raises ``SignalReceived`` where Python runs next;
    inside a render, where Blender swallows exceptions of its handlers, ``signum`` is checked afterwards."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        raise SignalReceived(signum)

    def check(self) -> None:
        if self.signum is not None:
            raise SignalReceived(self.signum)

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals are only delivered to the main thread; nothing to install
            return
        # SIGINT too: inside a Blender binary Ctrl-C would otherwise not reach Python as KeyboardInterrupt.
        signals = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {sig: signal.signal(sig, self.handle) for sig in signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_stop = _Stop()


def _models_dir(settings: dict[str, Any]) -> str:
    """--models-dir, else the add-on's models folder (its preference, or the extension's user folder)."""
    if settings["models_dir"]:
        return settings["models_dir"]
    try:
        from ..ui.preferences import get_preferences, resolved_models_dir

        return resolved_models_dir(get_preferences())
    except (KeyError, AttributeError):  # run from scripts/photo3d_batch.py: the add-on is not enabled
        return ""


def _choices_for(photo: Path, settings: dict[str, Any]) -> ImportChoices:
    return ImportChoices(
        representation=settings["representation"],
        layers=int(settings["layers"]),
        depth_source="FILE" if settings["depth"] else "MODEL",
        depth_file=_depth_for(photo, settings["depth"]),
        depth_kind=settings["depth_kind"],
        focal_px=float(settings["focal_px"] or 0.0),
        segmentation=bool(settings["segmentation"]),
        inpaint=settings["inpaint"],
        device=settings["device"],
        models_dir=_models_dir(settings),
    )


def _convert(photo: Path, settings: dict[str, Any], out_dir: Path, python: str) -> Path:
    """The photo through the import service (the one the import operator uses), blocking; its package."""
    check_image_path(str(photo))
    launch = launch_for(python)
    options = pipeline_options(_choices_for(photo, settings))
    chosen = {photo: Path(settings["package_out"]).absolute()} if settings["package_out"] else {}
    service = ImportService([photo], options, out_dir / "packages", lambda: shared_worker(launch), package_dirs=chosen)
    last = [""]

    def show(share: float, text: str) -> None:
        stage = text.split(": ", 1)[-1].rsplit(" ", 1)[0]
        if stage and stage != "starting" and stage != last[0]:
            _say(f"{photo.name}: {stage} ({share:.0%})")
            last[0] = stage

    run_blocking(service, on_progress=show)
    (outcome,) = service.outcomes
    if not outcome.ok:
        code = EXIT_FOR_ERROR_CODE.get(outcome.state.error_code or "", EXIT_WORKER)
        raise PhotoFailed(code, outcome.state.describe_error())
    return outcome.package


def _outputs(
    package_dir: Path, photo: Path | None, settings: dict[str, Any], out_dir: Path, result: PhotoResult
) -> None:
    """Build the scene of ``package_dir``, move the camera, add the effects, render and save. Anything that
    stops it half-way (an error, a signal) removes what it had written for this photo."""
    scene = bpy.context.scene
    footage = (package_dir / VIDEO_MANIFEST_NAME).is_file()
    try:
        package = read_video_package(package_dir) if footage else read_package(package_dir)
    except PackageError as exc:
        if photo is not None:  # the worker wrote it, so this is the worker's failure, not the photo's
            raise PhotoFailed(EXIT_WORKER, f"the worker's package cannot be read: {exc}") from exc
        raise PhotoFailed(EXIT_BAD_PACKAGE, str(exc)) from exc
    stem = photo.stem if photo is not None else (Path(package.manifest.source.path).stem or package_dir.name)
    name = photo.name if photo is not None else package_dir.name
    if photo is not None:
        result.outputs.append(str(package_dir))
    if not settings["video"] and not settings["blend"] and settings["export"] is None:
        return  # convert only (a farm's convert task): the package is the output
    if footage and settings["export"] is not None:
        raise PhotoFailed(EXIT_EXPORT, "comp exports are made from photos; footage has none yet")
    _clear_scene(scene)
    chunk = frame_chunk(settings)
    imported = None
    if footage:
        build_video_scene(package, scene)
        frames = scene.frame_end - scene.frame_start + 1
        # Footage plays from its own camera: the camera path and effects settings are a photo's.
        _say(f"{name}: footage scene built ({frames} frames, {len(package.manifest.shots)} shots)")
        if chunk is not None:
            if chunk[1] > scene.frame_end:
                raise PhotoFailed(EXIT_BAD_INPUT, f"frames {chunk[0]}-{chunk[1]}: the footage has {frames} frames")
            scene.frame_start, scene.frame_end = chunk
    else:
        imported = build_scene(package, scene, BuildSettings(photo=str(photo) if photo is not None else None))
        scene.frame_start, scene.frame_end = 1, shot_frames(settings)
        _say(f"{name}: scene built")
        _animate(imported, settings, name)
        if chunk is not None:
            scene.frame_start, scene.frame_end = chunk  # the camera path and effects stay the whole shot's
    if chunk is not None:
        _say(f"{name}: frames {chunk[0]}-{chunk[1]}")
    if chunk is None:
        written = [out_dir / f"{stem}.mp4", out_dir / f"{stem}_frames", out_dir / f"{stem}.blend"]
    else:  # other chunks of the shot may be rendering into the same folder: only this chunk's frames are ours
        written = [_frame_path(out_dir, stem, frame) for frame in range(chunk[0], chunk[1] + 1)]
    comp_dir = out_dir / f"{stem}_comp"
    try:
        if settings["video"]:
            result.outputs += [str(p) for p in _render(scene, settings, out_dir, stem)]
            _stop.check()
        if settings["blend"]:
            blend = out_dir / f"{stem}.blend"
            with _paths_relative_to(blend.parent):
                bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True, check_existing=False)
            _stop.check()
            result.outputs.append(str(blend))
            _say(f"{name}: saved {blend}")
        if settings["export"] is not None:
            # Removed on a failure only if this run made it: an existing folder is the user's (or an earlier
            # comp package, which export_comp replaces), and export_comp leaves a foreign one untouched.
            if not os.path.lexists(comp_dir):
                written.append(comp_dir)
            # The comp package is of the same shot as the video: its resolution, and its quality for EXR frames.
            _render_settings(scene, settings, out_dir / f"{stem}_")
            try:
                formats = parse_formats(settings["export"], comp_export.FORMATS)
                comp = comp_export.export_comp(imported, comp_dir, formats, progress=_export_progress(name))
            except ExportError as exc:
                raise PhotoFailed(EXIT_EXPORT, f"comp export: {exc}") from exc
            except OutputError as exc:
                raise PhotoFailed(EXIT_OUTPUT, f"comp export: {exc}") from exc
            _stop.check()
            result.outputs.append(str(comp.folder))
            _say(f"{name}: comp package {comp.folder} ({', '.join(formats)})")
            for warning in comp.warnings:
                _say(f"{name}: warning: {warning}")
    except BaseException:
        result.outputs = [str(package_dir)] if photo is not None else []  # the package is complete and kept
        for path in written:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        raise


def _frame_path(out_dir: Path, stem: str, frame: int) -> Path:
    """Where frame ``frame`` of a PNG render goes (``_render``'s target; Blender pads the number to 4 digits)."""
    return out_dir / f"{stem}_frames" / f"{stem}_{frame:04d}.png"


@contextlib.contextmanager
def _paths_relative_to(folder: Path):
    """The render output and every image's file path relative to ``folder`` ("//...") while the block saves a
    .blend there, so the file names no absolute path of this machine (a farm's nodes mount storage elsewhere);
    put back afterwards, since this session has no .blend of its own for "//" to start from."""
    render = bpy.context.scene.render
    saved = [(render, "filepath", render.filepath)]
    saved += [(image, "filepath", image.filepath) for image in bpy.data.images if image.filepath]
    try:
        for owner, attribute, path in saved:
            if not path.startswith("//"):
                absolute = os.path.abspath(bpy.path.abspath(path))
                try:
                    relative = os.path.relpath(absolute, folder)
                except ValueError:  # another drive on Windows: it cannot be relative
                    continue
                setattr(owner, attribute, "//" + relative.replace(os.sep, "/"))
        yield
    finally:
        for owner, attribute, path in saved:
            setattr(owner, attribute, path)


def _export_progress(name: str) -> Progress:
    """A line per EXR frame of a comp export, and a stop between frames (a signal during a render is only
    noted by Blender)."""

    def show(_stage: str, _share: float, text: str) -> None:
        _stop.check()
        if text.startswith("Photo3D export: EXR"):
            _say(f"{name}: {text.removeprefix('Photo3D export: ')}")

    return Progress(callback=show)


def _animate(imported: PhotoScene, settings: dict[str, Any], name: str) -> None:
    scene = bpy.context.scene
    if settings["path"] != "NONE":
        path = replace(
            PATH_DEFAULTS,
            preset=settings["path"],
            amplitude=settings["amplitude"],
            duration_frames=scene.frame_end,
            loop=bool(settings["loop"]),
            fps=float(settings["fps"]),
        )
        try:
            apply_preset(imported, path, scene, frame_start=1)
        except ValueError as exc:
            raise PhotoFailed(EXIT_BAD_INPUT, f"camera path {settings['path']}: {exc}") from exc
        scene.frame_start, scene.frame_end = 1, shot_frames(settings)
        _say(f"{name}: camera path {settings['path']}")
    effects = parse_effects(settings["effects"])
    if effects:
        try:
            apply_effects(imported, effects)
        except ValueError as exc:
            raise PhotoFailed(EXIT_BAD_INPUT, f"effects: {exc}") from exc
        _say(f"{name}: effects {', '.join(e.kind.lower() for e in effects)}")


def convert_one(photo: Path, settings: dict[str, Any], out_dir: Path, python: str) -> PhotoResult:
    """Convert, build, render and save one photo; failures become a PhotoResult, never an exception."""
    return _one(str(photo), lambda result: _outputs(_convert(photo, settings, out_dir, python), photo, settings,
                                                     out_dir, result))  # fmt: skip


def render_package(package_dir: Path, settings: dict[str, Any], out_dir: Path) -> PhotoResult:
    """Build, render and save an existing package (``--package``); no worker is started."""
    return _one(str(package_dir), lambda result: _outputs(package_dir, None, settings, out_dir, result))


def _one(item: str, work) -> PhotoResult:
    started = time.monotonic()
    result = PhotoResult(item)
    try:
        work(result)
    except ChoiceError as exc:
        result.status, result.exit_code, result.message = "failed", EXIT_BAD_INPUT, str(exc)
    except EffectError as exc:
        result.status, result.exit_code, result.message = "failed", EXIT_BAD_INPUT, str(exc)
    except PhotoFailed as exc:
        result.status, result.exit_code, result.message = "failed", exc.code, str(exc)
    except RenderError as exc:
        result.status, result.exit_code, result.message = "failed", EXIT_RENDER, str(exc)
    except MemoryError:
        message = "out of memory: retry on a machine with more memory, or with fewer layers"
        result.status, result.exit_code, result.message = "failed", EXIT_OUT_OF_MEMORY, message
    except Exception as exc:  # a bug must cost one photo, not the batch and its summary
        traceback.print_exc()
        message = f"internal error (a bug): {type(exc).__name__}: {exc}"
        result.status, result.exit_code, result.message = "failed", EXIT_INTERNAL, message
    result.seconds = time.monotonic() - started
    return result


def _render_settings(scene: bpy.types.Scene, settings: dict[str, Any], target: Path) -> None:
    """The batch's resolution, frame rate, quality and samples on ``scene`` (the video's and the EXR frames')."""
    render = RenderSettings(
        resolution=settings["resolution"],
        fps=int(settings["fps"]),
        quality=settings["quality"],
        output=settings["output"],
        motion_blur=bool(settings["motion_blur"]),
        filepath=str(target),
    )
    apply_render_settings(scene, render)
    if settings["samples"]:
        scene.eevee.taa_render_samples = int(settings["samples"])
    if bpy.app.background:
        # No window means no GPU context to ask; software GL (llvmpipe) mis-samples anisotropic filtering.
        bpy.context.preferences.system.anisotropic_filter = "FILTER_0"


def _render(scene: bpy.types.Scene, settings: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    target = out_dir / (f"{stem}_" if settings["output"] == "MP4" else f"{stem}_frames/{stem}_")
    _render_settings(scene, settings, target)

    def frame_done(frame: int, done: int, total: int) -> None:
        _say(f"{stem}: frame {done}/{total}", "frame", frame=frame, done=done, total=total)

    try:
        written = render_frames(scene, on_frame=frame_done, should_stop=lambda: _stop.signum is not None)
    except RuntimeError as exc:  # bpy.ops errors arrive as RuntimeError
        raise RenderError(f"render failed: {exc}") from exc
    _stop.check()
    if settings["output"] == "MP4":
        # Blender names a video after its frame range; one video per photo reads better as <photo>.mp4.
        video = out_dir / f"{stem}.mp4"
        written[0].replace(video)
        written = [video]
    return written


def run(argv: list[str]) -> int:
    """The batch's entry point: 0 when every item worked (or was already done, with --resume), else an exit code
    that tells a farm what to do (``core.farm.records.job_exit_code``); a signal or Ctrl-C stops it cleanly (the
    item in flight cancelled, nothing half-written) with 128 + the signal."""
    _reporter.json, _reporter.item, _reporter.log = False, "", None
    try:
        settings = resolve_settings(argv)
    except PhotoFailed as exc:
        _say(f"error: {exc}", "error", exit_code=exc.code)
        return exc.code
    except SystemExit as exc:  # argparse: --help or a usage error
        return int(exc.code or 0)
    _reporter.json = settings["progress"] == "json"
    found = _worker_python(settings) if settings["photos"] else ("", Path())
    if not found:
        _say(f"error: {missing_worker_message()}", "error", exit_code=EXIT_WORKER)
        return EXIT_WORKER
    out_dir = Path(settings["out"]).absolute()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _say(f"error: cannot create the output folder {out_dir}: {exc}", "error", exit_code=EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT
    if settings["ray"] is not None:
        return _hand_to_ray(settings, found[1], out_dir)
    work = [("photo", Path(p).absolute()) for p in settings["photos"]]
    work += [("package", Path(p).absolute()) for p in settings["packages"]]
    ledger = ItemLedger(out_dir)
    made_by = versions(blender=bpy.app.version_string)
    shape = settings_sha256({k: v for k, v in settings.items() if k not in NOT_IN_OUTPUTS})
    results: list[PhotoResult] = []
    names: set[str] = set()
    stopped: int | None = None
    _stop.signum = None
    with _stop.installed():
        try:
            for kind, item in work:
                result = _run_item(kind, item, settings, out_dir, str(found[1]), ledger, made_by, shape, names)
                results.append(result)
        except (SignalReceived, KeyboardInterrupt) as exc:
            stopped = exc.exit_code if isinstance(exc, SignalReceived) else EXIT_CANCELLED
            results.append(PhotoResult(str(item), "cancelled", stopped, "stopped before it finished"))
        finally:
            _reporter.item, _reporter.log = "", None
            stop_shared_worker()
    _summarise(results, settings, out_dir)
    if stopped is not None:
        _say(f"stopped (exit {stopped}): the item in flight was cancelled and left nothing behind", "stopped")
        return stopped
    return job_exit_code([(r.status, r.exit_code) for r in results])


NOT_IN_OUTPUTS = frozenset(
    {"out", "photos", "packages", "resume", "force", "progress", "worker_python", "models_dir", "package_out"}
)
"""Settings that do not change what an item's outputs hold, so changing them does not redo an item."""


def _input_sha256(kind: str, item: Path, settings: dict[str, Any]) -> str:
    """What the item is made from: the photo's bytes and its depth file's, or the package's manifest (which
    holds its photo's hash and names every file in it)."""
    if kind == "package":
        try:
            footage = (item / VIDEO_MANIFEST_NAME).is_file()
            return file_sha256(item / (VIDEO_MANIFEST_NAME if footage else "manifest.json"))
        except OSError:
            return ""  # not a package: reading it says why, with the invalid package's exit code
    hashes = [file_sha256(item)]
    if settings["depth"]:
        hashes.append(path_sha256(_depth_for(item, settings["depth"])))
    return "+".join(hashes)


def _package_stem(package_dir: Path) -> str:
    """The stem of the photo a package was made from (its outputs are named after it), else the folder's name."""
    try:
        footage = (package_dir / VIDEO_MANIFEST_NAME).is_file()
        manifest = package_dir / (VIDEO_MANIFEST_NAME if footage else "manifest.json")
        data = read_json_file(str(manifest), 64 * MAX_SETTINGS_BYTES)
        stem = Path(str(data["source"]["path"])).stem
    except (OSError, JSONRejected, KeyError, TypeError):
        return package_dir.name
    return stem or package_dir.name


def _run_item(
    kind: str,
    item: Path,
    settings: dict[str, Any],
    out_dir: Path,
    python: str,
    ledger: ItemLedger,
    made_by: dict[str, str],
    shape: str,
    names: set[str],
) -> PhotoResult:
    """One photo or package: skipped when --resume finds it done, else redone with its own log and, once every
    output is complete, its record."""
    name = item_name(item.stem if kind == "photo" else _package_stem(item), frame_chunk(settings))
    _reporter.item = name
    _say(f"{item}: starting", "start")
    if name in names:  # its outputs would overwrite the other's
        message = f"another item of this batch is also named {name}: rename one or give them separate --out folders"
        return _failed(PhotoResult(str(item), "failed", EXIT_BAD_INPUT, message), item)
    names.add(name)
    try:
        input_sha = _input_sha256(kind, item, settings)
    except (OSError, PhotoFailed) as exc:
        code = exc.code if isinstance(exc, PhotoFailed) else EXIT_BAD_INPUT
        return _failed(PhotoResult(str(item), "failed", code, f"cannot read {item}: {exc}"), item)
    if settings["resume"] and not settings["force"]:
        record = ledger.finished(name, input_sha, shape, made_by)
        if record is not None:
            outputs = [str(out_dir / output) for output in record.outputs]
            _say(f"{item.name}: already done ({ledger.record_path(name).name}), skipped", "skipped")
            return PhotoResult(str(item), "skipped", EXIT_OK, "already done", outputs, 0.0, name)
    ledger.forget(name)
    with ItemLog(ledger.log_path(name)) as log:
        _reporter.log = log
        try:
            if kind == "photo":
                result = convert_one(item, settings, out_dir, python)
            else:
                result = render_package(item, settings, out_dir)
            result.name = name
            result.log = str(ledger.log_path(name))
            if result.status != "ok":
                return _failed(result, item)
            relative = [ledger.relative(output) for output in result.outputs]
            ledger.write(ItemRecord(name, str(item), input_sha, shape, made_by, relative, round(result.seconds, 3)))
            _say(f"{item.name}: done in {result.seconds:.1f} s", "done", outputs=relative)
            return result
        finally:
            _reporter.log = None


def _failed(result: PhotoResult, item: Path) -> PhotoResult:
    result.failure = failure_class(result.exit_code)
    _say(f"{item.name}: FAILED (exit {result.exit_code}, {result.failure}): {result.message}", "failed",
         exit_code=result.exit_code, failure=result.failure)  # fmt: skip
    return result


def _summarise(results: list[PhotoResult], settings: dict[str, Any], out_dir: Path) -> None:
    """The job's summary: printed, and in ``summary.json`` (one entry per item, in order)."""
    ok = [r for r in results if r.status in ("ok", "skipped")]
    skipped = sum(r.status == "skipped" for r in results)
    noun = "photos" if not settings["packages"] else "items"
    _say(f"summary: {len(ok)} of {len(results)} {noun} succeeded", "summary",
         done=len(ok) - skipped, skipped=skipped, failed=len(results) - len(ok))  # fmt: skip
    for r in results:
        detail = ", ".join(r.outputs) if r.status in ("ok", "skipped") else r.message
        _say(f"  {r.status:<9} {r.photo} ({r.seconds:.1f} s): {detail}", "item", status=r.status)
    # Atomic: the chunks of a shot rendered at once on a farm each write the summary of their own run.
    temporary = out_dir / f".summary.json.{os.getpid()}.tmp"
    temporary.write_text(json.dumps([r.__dict__ for r in results], indent=2), encoding="utf-8")
    os.replace(temporary, out_dir / "summary.json")


LOOK_KEYS = ("fps", "motion_blur", "path", "amplitude", "loop", "effects")
"""The settings of a render's look that the distributed batch's render chunks take from a settings file."""


def _hand_to_ray(settings: dict[str, Any], python: Path, out_dir: Path) -> int:
    """``--ray``: the photos go to ``python -m core batch --ray`` (run with the worker's Python, on the same
    options this batch would convert with), and every chunk of frames renders with this batch's look; its
    exit code, or 128 + a signal that stopped it (passed on to it)."""
    chunk = settings["chunk_size"]
    refused = [("packages", settings["packages"]), ("frames", frame_chunk(settings)), ("export", settings["export"])]
    for key, value in refused:
        if value:
            _say(f"error: setting {key}: --ray converts photos and renders their frames (PNG) only", "error")
            return EXIT_BAD_INPUT
    try:
        options = pipeline_options(_choices_for(Path(settings["photos"][0]), settings))
    except (PhotoFailed, ChoiceError) as exc:
        code = exc.code if isinstance(exc, PhotoFailed) else EXIT_BAD_INPUT
        _say(f"error: {exc}", "error", exit_code=code)
        return code
    options["depth"].pop("depth_file", None)
    (out_dir / "ray").mkdir(exist_ok=True)
    config, look = out_dir / "ray" / "options.json", out_dir / "ray" / "look.json"
    config.write_text(json.dumps(options, indent=2), encoding="utf-8")
    look.write_text(json.dumps({key: settings[key] for key in LOOK_KEYS}, indent=2), encoding="utf-8")
    arguments = ["batch", *[str(Path(p).absolute()) for p in settings["photos"]], "--out", str(out_dir),
                 "--config", str(config), "--render", "--frames", str(shot_frames(settings)), "--look", str(look),
                 "--resolution", settings["resolution"], "--quality", settings["quality"],
                 "--progress", settings["progress"]]  # fmt: skip
    for flag, value in (("--samples", settings["samples"]), ("--chunk-size", chunk), ("--depth", settings["depth"])):
        if value is not None:
            arguments += [flag, str(value)]
    if settings["resume"] and not settings["force"]:
        arguments.append("--resume")
    if bpy.app.binary_path and Path(bpy.app.binary_path).name.lower().startswith("blender"):
        arguments += ["--blender", bpy.app.binary_path]  # a Blender binary renders the chunks, as this batch runs
    arguments.append(f"--ray={settings['ray']}" if settings["ray"] else "--ray")
    launch = launch_for(str(python))
    command = launch.core_command(EXTENSION_ROOT, arguments)
    env = launch.environment(EXTENSION_ROOT, os.environ, {})
    # Its outputs are PNG frames per photo (a farm encodes them): no .blend and no video are made.
    _say(f"handing {len(settings['photos'])} photos to the distributed batch (Ray): PNG frames, no .blend", "start")
    try:
        process = subprocess.Popen(command, cwd=str(EXTENSION_ROOT), env=env)
    except OSError as exc:
        _say(f"error: cannot start the distributed batch with {python}: {exc}", "error", exit_code=EXIT_WORKER)
        return EXIT_WORKER
    with _stop.installed():
        while True:
            try:
                return process.wait()
            except SignalReceived as exc:  # stop it the same way; it cancels its items and shuts Ray down
                process.send_signal(exc.signum)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=60)
                if process.poll() is None:
                    process.kill()
                return exc.exit_code
            except KeyboardInterrupt:
                process.send_signal(signal.SIGINT)
                process.wait()
                return EXIT_CANCELLED


def _worker_python(settings: dict[str, Any]) -> tuple[str, Path] | None:
    """--worker-python, else the add-on's preferences when it is enabled, else the usual search."""
    if settings["worker_python"]:
        return "--worker-python", Path(settings["worker_python"])
    try:
        from ..ui.preferences import get_preferences, resolve_worker_python

        return resolve_worker_python(get_preferences())
    except (KeyError, AttributeError):  # run from scripts/photo3d_batch.py: the add-on is not enabled
        return find_worker_python("", None)


_cli_handle = None


def register() -> None:
    global _cli_handle
    if hasattr(bpy.utils, "register_cli_command"):
        _cli_handle = bpy.utils.register_cli_command("photo3d", run)


def unregister() -> None:
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None


def main() -> int:
    """``python scripts/photo3d_batch.py ...`` with the bpy module."""
    return run(sys.argv[1:])

"""The import's choices: what the operator, the preferences and the batch offer, their defaults, and how
they become the worker's pipeline options. Plain Python, no bpy.

Every choice and default is derived from ``core.options`` (the pipeline's one source): the add-on spells
choices in upper case as Blender enums do, the pipeline in lower case, and the mapping is ``str.upper``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.models.catalog import CatalogModel, active_catalog
from ...core.options import LIMITS, PipelineOptions
from ...core.video.reader import VIDEO_SUFFIXES

# Quality presets: working resolution, triangle budget per layer mesh, MPI planes.
QUALITY_PRESETS = {
    "DRAFT": {"work_size": 640, "max_triangles": 4000, "mpi_planes": 24},
    "STANDARD": {"work_size": 1024, "max_triangles": 10000, "mpi_planes": 32},
    "HIGH": {"work_size": 1536, "max_triangles": 30000, "mpi_planes": 48},
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".exr", ".bmp")
FOOTAGE_EXTENSIONS = VIDEO_SUFFIXES
"""Footage the import takes as well: it becomes a layered video package."""

_CORE = PipelineOptions()
REPRESENTATIONS = tuple(c.upper() for c in LIMITS["geometry.representation"].choices)
INPAINTS = tuple(c.upper() for c in LIMITS["inpaint.method"].choices)
DEPTH_KINDS = tuple(c.upper() for c in LIMITS["depth.depth_kind"].choices)
DEVICES = LIMITS["runtime.device"].choices
"""Devices keep the pipeline's spelling: ``auto``, ``cpu``, ``cuda``."""
MIN_LAYERS, MAX_LAYERS = int(LIMITS["layers.max_layers"].low), int(LIMITS["layers.max_layers"].high)
"""The operator, the preferences and the batch offer every layer count the pipeline takes."""


@dataclass
class ImportChoices:
    representation: str = _CORE.geometry.representation.upper()
    layers: int = _CORE.layers.max_layers
    quality: str = "STANDARD"
    depth_source: str = "MODEL"
    """``MODEL`` (the depth network) or ``FILE`` (``depth_file``)."""
    depth_file: str = ""
    depth_kind: str = _CORE.depth.depth_kind.upper()
    depth_scale: float = _CORE.depth.depth_scale
    segmentation: bool = True
    inpaint: str = _CORE.inpaint.method.upper()
    device: str = _CORE.runtime.device
    models_dir: str = ""
    allow_download: bool = False
    focal_px: float = 0.0
    """The photo's focal length in pixels when known (calibrated cameras); 0 = from EXIF or a default."""


DEFAULTS = ImportChoices()
"""What an import uses when nothing is chosen: the operator's, the preferences' and the batch's defaults."""

# Blender enum items (identifier, label, description), one entry per choice above: a choice core adds without
# a label here fails at import (KeyError), not silently in the UI.
_LABELS = {
    "MESH": ("Mesh Layers", "One textured mesh per depth layer: sharp edges, few objects"),
    "MPI": ("MPI Planes", "A stack of fronto-parallel textured planes (multi-plane image)"),
    "DRAFT": ("Draft", "640 px working size, 4K triangles per layer: fastest"),
    "STANDARD": ("Standard", "1024 px working size, 10K triangles per layer"),
    "HIGH": ("High", "1536 px working size, 30K triangles per layer: slowest"),
    "TELEA": ("Telea (fast)", "OpenCV Telea fill, no weights needed"),
    "NS": ("Navier-Stokes", "OpenCV Navier-Stokes fill, no weights needed"),
    "LAMA": ("LaMa", "big-lama network: the most believable hidden parts (needs big-lama.pt)"),
    "DEPTH": ("Depth", "Distance along the view axis, in metres"),
    "DISPARITY": ("Disparity", "Inverse depth, as stereo matchers and relative depth networks give"),
    "auto": ("Auto", "GPU when available"),
    "cpu": ("CPU", ""),
    "cuda": ("CUDA", "NVIDIA GPU"),
    "MODEL": ("Depth Model", "Estimate depth with the depth network"),
    "FILE": ("Depth File", "Use a depth or disparity map you have (PNG, PFM, EXR, NPY, ...)"),
}
# Fast, no-weights methods first: the order the menus show.
_INPAINT_ORDER = sorted(INPAINTS, key=lambda c: c == "LAMA")


def _items(choices: tuple[str, ...] | list[str]) -> list[tuple[str, str, str]]:
    return [(c, *_LABELS[c]) for c in choices]


REPRESENTATION_ITEMS = _items(REPRESENTATIONS)
QUALITY_ITEMS = _items(tuple(QUALITY_PRESETS))
INPAINT_ITEMS = _items(_INPAINT_ORDER)
DEPTH_KIND_ITEMS = _items(DEPTH_KINDS)
DEVICE_ITEMS = _items(DEVICES)
DEPTH_SOURCE_ITEMS = _items(("MODEL", "FILE"))


class ChoiceError(ValueError):
    """A choice that cannot work, said in words the user knows."""


def _finite(value: object) -> bool:
    """A real number, not NaN or infinite (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)  # math.isfinite overflows on a 400-digit int


def check_image_path(path: str) -> Path:
    """The photo's path, or a ChoiceError naming what is wrong with it."""
    if not path:
        raise ChoiceError("no image was chosen")
    image = Path(path)
    if not image.is_file():
        raise ChoiceError(f"the image {image} does not exist")
    if image.suffix.lower() not in IMAGE_EXTENSIONS + FOOTAGE_EXTENSIONS:
        raise ChoiceError(
            f"{image.name} is not a supported image ({', '.join(IMAGE_EXTENSIONS)}) or video "
            f"({', '.join(FOOTAGE_EXTENSIONS)})"
        )
    return image


def catalog_models(choices: ImportChoices) -> list[CatalogModel]:
    """The model manager's models an import with ``choices`` needs: the pipeline's default networks are its
    ONNX files (``core.options``), so the operator can name the button that fetches any that are missing."""
    core = PipelineOptions()
    wanted = []
    if choices.depth_source != "FILE":
        wanted.append(core.depth.model)
    if choices.segmentation:
        wanted.append(core.segment.model)
    if choices.inpaint == "LAMA":
        wanted.append(core.inpaint.lama_model)
    by_option = {model.option: model for model in active_catalog()}
    return [by_option[option] for option in wanted if option in by_option]


def pipeline_options(choices: ImportChoices) -> dict[str, Any]:
    """Nested options for ``core.options.PipelineOptions.from_dict``, sent to the worker as JSON."""
    if choices.quality not in QUALITY_PRESETS:
        raise ChoiceError(f"unknown quality {choices.quality!r}")
    layers = choices.layers
    if isinstance(layers, bool) or not isinstance(layers, int) or not MIN_LAYERS <= layers <= MAX_LAYERS:
        raise ChoiceError(f"the number of layers must be between {MIN_LAYERS} and {MAX_LAYERS}, not {layers}")
    preset = QUALITY_PRESETS[choices.quality]
    options: dict[str, Any] = {
        "load": {"work_size": preset["work_size"]},
        "depth": {},
        "segment": {},
        "layers": {"max_layers": int(choices.layers)},
        "inpaint": {"method": choices.inpaint.lower()},
        "geometry": {
            "representation": choices.representation.lower(),
            "max_triangles": preset["max_triangles"],
            "mpi_planes": preset["mpi_planes"],
        },
        "runtime": {"device": choices.device, "offline": not choices.allow_download},
    }
    if choices.depth_source == "FILE":
        depth_file = Path(choices.depth_file) if choices.depth_file else None
        # Footage takes a folder of per-frame depth files; a photo one file.
        if depth_file is None or not (depth_file.is_file() or depth_file.is_dir()):
            raise ChoiceError(f"the depth file {choices.depth_file or '(none chosen)'} does not exist")
        # NaN passes "<= 0" and infinity divides every depth to zero: both must be refused here.
        if not _finite(choices.depth_scale) or choices.depth_scale <= 0:
            raise ChoiceError(f"the depth scale must be positive and finite, not {choices.depth_scale}")
        options["depth"] = {
            "depth_file": str(depth_file),
            "depth_kind": choices.depth_kind.lower(),
            "depth_scale": float(choices.depth_scale),
        }
    if not _finite(choices.focal_px) or choices.focal_px < 0:
        raise ChoiceError(f"the focal length must be positive pixels, not {choices.focal_px}")
    if choices.focal_px > 0:
        options["load"]["focal_px"] = float(choices.focal_px)
    if not choices.segmentation:
        options["segment"]["model"] = "none"
    if choices.models_dir:
        options["runtime"]["models_dir"] = choices.models_dir
    return options

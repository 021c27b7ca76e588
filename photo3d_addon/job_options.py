"""The operator's choices turned into the worker's pipeline options; plain Python, no bpy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Quality presets: working resolution, triangle budget per layer mesh, MPI planes.
QUALITY_PRESETS = {
    "DRAFT": {"work_size": 640, "max_triangles": 4000, "mpi_planes": 24},
    "STANDARD": {"work_size": 1024, "max_triangles": 10000, "mpi_planes": 32},
    "HIGH": {"work_size": 1536, "max_triangles": 30000, "mpi_planes": 48},
}
MAX_LAYERS = 16
"""Most layers the import operator (its Layers property) and the batch offer; the pipeline takes up to 32."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".exr", ".bmp")


@dataclass
class ImportChoices:
    representation: str = "MESH"
    layers: int = 5
    quality: str = "STANDARD"
    depth_source: str = "MODEL"
    """``MODEL`` (the depth network) or ``FILE`` (``depth_file``)."""
    depth_file: str = ""
    depth_kind: str = "DEPTH"
    depth_scale: float = 1.0
    segmentation: bool = True
    inpaint: str = "TELEA"
    device: str = "auto"
    models_dir: str = ""
    allow_download: bool = False
    focal_px: float = 0.0
    """The photo's focal length in pixels when known (calibrated cameras); 0 = from EXIF or a default."""


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
    if image.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ChoiceError(f"{image.name} is not a supported image ({', '.join(IMAGE_EXTENSIONS)})")
    return image


def pipeline_options(choices: ImportChoices) -> dict[str, Any]:
    """Nested options for ``core.options.PipelineOptions.from_dict``, sent to the worker as JSON."""
    if choices.quality not in QUALITY_PRESETS:
        raise ChoiceError(f"unknown quality {choices.quality!r}")
    if isinstance(choices.layers, bool) or not isinstance(choices.layers, int) or not 1 <= choices.layers <= MAX_LAYERS:
        raise ChoiceError(f"the number of layers must be between 1 and {MAX_LAYERS}, not {choices.layers}")
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
        if depth_file is None or not depth_file.is_file():
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

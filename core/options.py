"""Every tunable of the pipeline in one typed object, serialisable to JSON for the worker and manifest.

Each field's accepted values are declared once, in ``LIMITS`` below the dataclasses, and checked by
``PipelineOptions.validate`` for config files, worker requests and command-line flags alike.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .safe_json import json_kind, short_repr

TORCH_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
"""The same network for the torch backends (a Hugging Face id): a choice, no longer the default."""
TORCH_SAM_MODEL = "facebook/sam-vit-base"
"""SAM ViT-B for the torch backends: the accurate, slow choice (15-17 s per photo on 2 CPU cores)."""
DEFAULT_DEPTH_MODEL = "depth-anything-v2-small/model.onnx"
"""Depth Anything V2 Small in ONNX, inside the models folder (the model manager's ``depth-small``)."""
DEFAULT_LAMA_MODEL = "lama/lama_fp32.onnx"
"""LaMa in ONNX (512 x 512), inside the models folder (the model manager's ``inpaint-lama``)."""
TORCH_LAMA_MODEL = "big-lama.pt"
"""big-lama as TorchScript (simple-lama-inpainting's file) for the torch backend: a choice."""
"""Depth Anything V2 Small in ONNX, inside the models folder (the model manager's ``depth-small``)."""
DEFAULT_SAM_MODEL = "slimsam-77/vision_encoder.onnx"
"""SlimSAM-77 in ONNX, inside the models folder (the model manager's ``segment-slimsam``): CPU-friendly."""
MAX_TEXT_CHARS = 4096
"""Longest path or model id accepted (Linux's PATH_MAX)."""


@dataclass
class LoadOptions:
    work_size: int = 1024
    """Longest side of the working resolution; textures keep the source resolution."""
    max_pixels: int = 100_000_000
    """Inputs larger than this are refused as absurd (100 MP)."""
    fov_deg: float = 60.0
    """Horizontal field of view used when neither EXIF nor ``focal_px`` gives the focal length."""
    focal_px: float | None = None
    """Focal length in source pixels; overrides EXIF."""


@dataclass
class DepthOptions:
    model: str = DEFAULT_DEPTH_MODEL
    """Transformers model id or local folder; ignored when ``depth_file`` is given."""
    depth_file: str | None = None
    depth_kind: str = "depth"
    """``depth`` or ``disparity``: what ``depth_file`` holds."""
    depth_scale: float = 1.0
    """Stored values are divided by this (Middlebury PGMs store 4 x disparity: scale 4)."""
    near: float = 1.0
    """Depth given to the nearest content when the source is relative (affine-invariant disparity)."""
    far: float = 20.0
    """Depth given to the farthest content when the source is relative."""
    input_size: int = 518
    """Resolution the depth network sees (its native size for Depth Anything)."""


GPU_POINTS_PER_SIDE = 16
CPU_POINTS_PER_SIDE = 8


@dataclass
class SegmentOptions:
    model: str = DEFAULT_SAM_MODEL
    """SAM-family model id or folder, or ``none`` for the weights-free superpixel fallback."""
    points_per_side: int | None = None
    """Prompts per side of the SAM point grid; None: ``GPU_POINTS_PER_SIDE`` on a GPU, ``CPU_POINTS_PER_SIDE``
    on the CPU, where the prompt decoder is most of a still's time (16 x 16 prompts: about 12 s of SlimSAM
    decoding on 2 cores, ``scripts/bench_models.py``)."""
    points_per_batch: int = 64
    pred_iou_threshold: float = 0.80
    stability_threshold: float = 0.85
    nms_iou_threshold: float = 0.70
    min_region_fraction: float = 0.0005
    """Regions smaller than this share of the image are merged into a neighbour."""
    superpixels: int = 1000
    """Number of superpixels in the fallback."""

    def grid_points_per_side(self, device: str) -> int:
        """The point grid's side for a run on ``device`` (resolved: ``cpu``, ``cuda``...)."""
        if self.points_per_side is not None:
            return int(self.points_per_side)
        return CPU_POINTS_PER_SIDE if device == "cpu" else GPU_POINTS_PER_SIDE


@dataclass
class HarmonizeOptions:
    enabled: bool = True
    data_weight_interior: float = 1.0
    data_weight_edge: float = 0.05
    smoothness: float = 4.0
    boundary_weight: float = 1.0
    iterations: int = 30
    tolerance: float = 5e-4
    trust_depth_file: bool = True
    """A depth map the user supplies is usually sharp and metric: harmonize then only nudges it (data weights
    at least 4 inside masks and 2 at their edges, boundary weight at most 0.5). On Motorcycle and Cones with
    ground-truth depth the default weights moved exact disparities by 0.3-0.7 px and cost 1.7 dB in novel
    views."""


RETIRED = frozenset({"harmonize.grid_downsample", "layers.feather_px"})
"""Options earlier versions took but no stage ever read: accepted and ignored, so old config files still load."""


@dataclass
class LayerOptions:
    max_layers: int = 5
    overlap_factor: float = 1.0
    """Masks may share a layer when their median disparities are within this many robust sigmas..."""
    min_gap: float = 0.02
    """...or closer than this share of the scene's disparity range."""


@dataclass
class InpaintOptions:
    method: str = "telea"
    """``lama``, ``telea`` or ``ns``."""
    lama_model: str = DEFAULT_LAMA_MODEL
    """Path or file name (looked up in the models folder) of the big-lama TorchScript file."""
    band_fraction: float = 0.08
    """Width of the filled band behind nearer layers, as a share of the image width."""
    radius: int = 5
    border_fraction: float = 0.08
    """How far the backdrop (the farthest layer of a mesh package), and every layer the photo's frame cuts,
    reach past each edge of the photo, as a share of its width, filled outward from the photo: a camera move
    sees no empty frame. 0: they end at the photo's edge. MPI packages and photos with transparency never get
    a border."""


@dataclass
class GeometryOptions:
    representation: str = "mesh"
    """``mesh`` (one triangulated mesh per layer) or ``mpi`` (fronto-parallel planes)."""
    max_triangles: int = 10_000
    mpi_planes: int = 32


@dataclass
class RuntimeOptions:
    device: str = "auto"
    models_dir: str | None = None
    offline: bool = True
    """Never download weights unless this is False (``--online``)."""


@dataclass
class PipelineOptions:
    load: LoadOptions = field(default_factory=LoadOptions)
    depth: DepthOptions = field(default_factory=DepthOptions)
    segment: SegmentOptions = field(default_factory=SegmentOptions)
    harmonize: HarmonizeOptions = field(default_factory=HarmonizeOptions)
    layers: LayerOptions = field(default_factory=LayerOptions)
    inpaint: InpaintOptions = field(default_factory=InpaintOptions)
    geometry: GeometryOptions = field(default_factory=GeometryOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dicts, as ``from_dict`` reads them and the manifest stores them."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PipelineOptions:
        """Build options from nested dicts; unknown sections or keys are an error, not silently ignored."""
        options = cls()
        if data is None:
            data = {}
        sections = [f.name for f in dataclasses.fields(cls)]
        # Worker requests and config files are untrusted JSON: anything but an object of objects is refused.
        if not isinstance(data, dict):
            raise InputError(f"options must be an object of sections ({', '.join(sections)}), got {json_kind(data)}")
        for section_name, values in data.items():
            if not isinstance(section_name, str) or section_name not in sections:
                raise InputError(f"unknown option section {short_repr(section_name)}; expected {', '.join(sections)}")
            if not isinstance(values, dict):
                raise InputError(f"option section {section_name!r} must be an object, got {json_kind(values)}")
            section = getattr(options, section_name)
            known = [f.name for f in dataclasses.fields(section)]
            for key, value in values.items():
                if f"{section_name}.{key}" in RETIRED:
                    continue  # an older config or add-on may still send it; it never changed anything
                if not isinstance(key, str) or key not in known:
                    expected = ", ".join(known)
                    raise InputError(f"unknown option {section_name}.{short_repr(key)}; expected one of {expected}")
                setattr(section, key, value)
        options.validate()
        return options

    def validate(self) -> None:
        """Check every field against ``LIMITS`` (type, finite, range or choice), then the cross-field rules.

        Ints in float fields are widened in place; the first bad option raises an InputError naming it.
        """
        for section_field in dataclasses.fields(self):
            section = getattr(self, section_field.name)
            for option in dataclasses.fields(section):
                name = f"{section_field.name}.{option.name}"
                setattr(section, option.name, _check(name, option.type, getattr(section, option.name)))
        if not self.depth.near < self.depth.far:
            message = f"option depth.near ({self.depth.near:g}) must be below depth.far ({self.depth.far:g})"
            raise _refused("depth.near", message)


@dataclass(frozen=True)
class Limit:
    """What one option accepts: a closed range for numbers, a choice set or a length bound for text."""

    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    max_chars: int = MAX_TEXT_CHARS


def _between(low: float, high: float) -> Limit:
    return Limit(low=low, high=high)


def _one_of(*choices: str) -> Limit:
    return Limit(choices=choices)


TEXT = Limit()
"""A path or model id: at most ``MAX_TEXT_CHARS`` characters, no NUL."""
SWITCH = Limit()
"""A bool: true or false only (never 0 or 1)."""

# Every option's accepted values, in one place. The types come from the dataclasses' annotations; the ranges
# keep any valid run bounded (minutes on a laptop CPU at the largest working size) while holding every
# default, quality preset and tuned benchmark setting. Open bounds are avoided on purpose: a "positive"
# number gets a small positive floor, so the message states a range a person can act on.
LIMITS: dict[str, Limit] = {
    # Every stage's cost grows with the working pixels: 2048 px is 4x the default (HIGH uses 1536), and the
    # textures keep the photo's own resolution anyway.
    "load.work_size": _between(16, 2048),
    # A config may lower the photo limit, never raise it past 100 MP.
    "load.max_pixels": _between(1, 100_000_000),
    "load.fov_deg": _between(1.0, 179.0),
    # 1 px (a fisheye on a thumbnail) to 1e6 px (a 1000 mm lens on a 100 MP sensor is about 3e5).
    "load.focal_px": _between(1.0, 1e6),
    "depth.model": TEXT,
    "depth.depth_file": TEXT,
    "depth.depth_kind": _one_of("depth", "disparity"),
    # Micrometres to megametres per stored unit.
    "depth.depth_scale": _between(1e-6, 1e6),
    "depth.near": _between(1e-3, 1e6),
    "depth.far": _between(1e-3, 1e6),
    # The network's short side; ViT attention grows with its square, and the long side may be 4x this.
    "depth.input_size": _between(16, 1024),
    "segment.model": TEXT,
    # 64 x 64 = 4096 prompts, 16x the default; 1000 per side ran past 9 minutes.
    "segment.points_per_side": _between(1, 64),
    # Each prompt keeps 3 low-resolution masks (0.8 MB) in flight; 0 used to mean one at a time, silently.
    "segment.points_per_batch": _between(1, 256),
    "segment.pred_iou_threshold": _between(0.0, 1.0),
    "segment.stability_threshold": _between(0.0, 1.0),
    "segment.nms_iou_threshold": _between(0.0, 1.0),
    # At most 1 / fraction regions reach the layer clustering, whose distance matrices grow with its square:
    # 2e-4 allows 5000 regions (hundreds of MB), the default 0.0005 allows 2000.
    "segment.min_region_fraction": _between(2e-4, 0.25),
    # SLIC with 1e8 superpixels ran 298 s.
    "segment.superpixels": _between(16, 20_000),
    "harmonize.enabled": SWITCH,
    # Data weights above zero keep the system positive definite: without them it is singular.
    "harmonize.data_weight_interior": _between(1e-3, 1e3),
    "harmonize.data_weight_edge": _between(1e-3, 1e3),
    "harmonize.smoothness": _between(0.0, 1e3),
    "harmonize.boundary_weight": _between(0.0, 1e3),
    # The coarse levels run at least 60 iterations anyway; 500 with tolerance 0 took 2.7 s at 1024 px.
    "harmonize.iterations": _between(1, 500),
    "harmonize.tolerance": _between(0.0, 1.0),
    "harmonize.trust_depth_file": SWITCH,
    "layers.max_layers": _between(1, 32),
    "layers.overlap_factor": _between(0.0, 10.0),
    "layers.min_gap": _between(0.0, 1.0),
    "inpaint.method": _one_of("lama", "telea", "ns"),
    "inpaint.lama_model": TEXT,
    "inpaint.band_fraction": _between(0.0, 1.0),
    # OpenCV's inpainting radius, the costliest bound: a 400 px wide hole at 1024 px takes 0.8 s at radius 5,
    # 3.5 s at 8, 12 s at 16, 37 s at 32, per layer. 32 layers, band 1 and radius 16 took 5 minutes at 1024 px
    # on two cores; at radius 8 the same case at 2048 px comes to about 6 minutes (estimated). 1e5 ran 58 s.
    "inpaint.radius": _between(1, 8),
    # Half the width on each side doubles a bordered texture each way: beyond that no camera move stays sensible.
    "inpaint.border_fraction": _between(0.0, 0.5),
    "geometry.representation": _one_of("mesh", "mpi"),
    # Per layer mesh, and up to 32 layers: 1e6 each is 32 million triangles for Blender to draw.
    "geometry.max_triangles": _between(16, 1_000_000),
    "geometry.mpi_planes": _between(2, 128),
    "runtime.device": _one_of("auto", "cpu", "cuda"),
    "runtime.models_dir": TEXT,
    "runtime.offline": SWITCH,
}


def _missing_limits() -> list[str]:
    """Fields without an entry in ``LIMITS`` (there must be none)."""
    names = []
    for section_field in dataclasses.fields(PipelineOptions):
        section = section_field.default_factory()
        names += [f"{section_field.name}.{f.name}" for f in dataclasses.fields(section)]
    return [name for name in names if name not in LIMITS] + [name for name in LIMITS if name not in names]


# A new option without a declared range would pass unchecked: refuse to import instead.
if _missing_limits():
    raise TypeError(f"core.options.LIMITS and the dataclasses disagree on {', '.join(_missing_limits())}")


def default_of(name: str) -> Any:
    """The default of option ``section.key`` (help texts read it here instead of repeating numbers)."""
    section_name, key = name.split(".")
    return getattr(getattr(PipelineOptions(), section_name), key)


def format_number(value: float) -> str:
    """1000000 rather than 1e+06 for whole numbers, %g otherwise."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def describe(name: str) -> str:
    """What option ``section.key`` accepts, in words: ``an integer in 16..20000``."""
    section_name, key = name.split(".")
    section = getattr(PipelineOptions(), section_name)
    annotation = next(f.type for f in dataclasses.fields(section) if f.name == key)
    return _describe(LIMITS[name], *_parse_annotation(annotation))


def _parse_annotation(annotation: str) -> tuple[str, bool]:
    """("float", True) for ``float | None``."""
    allowed = annotation.replace(" ", "").split("|")
    return next(t for t in allowed if t != "None"), "None" in allowed


def _describe(limit: Limit, kind: str, optional: bool) -> str:
    if kind == "bool":
        text = "true or false"
    elif kind == "str" and limit.choices:
        text = "one of " + ", ".join(limit.choices)
    elif kind == "str":
        text = f"text of at most {limit.max_chars} characters without NUL"
    else:
        noun = "an integer" if kind == "int" else "a finite number"
        text = f"{noun} in {format_number(limit.low)}..{format_number(limit.high)}"
    return text + (" or null" if optional else "")


def _refused(name: str, message: str) -> InputError:
    error = InputError(message)
    error.option = name  # the CLI names the flag too when one set this option
    return error


def _check(name: str, annotation: str, value: Any) -> Any:
    """``value`` if option ``name`` accepts it (ints widened to float for float fields), else InputError."""
    kind, optional = _parse_annotation(annotation)
    limit = LIMITS[name]
    if value is None and optional:
        return None
    ok = False
    # bool is an int in Python, but never a sensible number of layers.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int" and number and isinstance(value, int):
        ok = limit.low <= value <= limit.high
    elif kind == "float" and number:
        # An int is compared before it is converted: float() of a 400-digit integer overflows.
        ok = (isinstance(value, int) or math.isfinite(value)) and limit.low <= value <= limit.high
        value = float(value) if ok else value
    elif kind == "str" and isinstance(value, str):
        ok = len(value) <= limit.max_chars and "\x00" not in value and (not limit.choices or value in limit.choices)
    if not ok:
        raise _refused(name, f"option {name} must be {_describe(limit, kind, optional)}, got {short_repr(value)}")
    return value

"""Every tunable of the pipeline in one typed object, serialisable to JSON for the worker and manifest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DEFAULT_SAM_MODEL = "facebook/sam-vit-base"


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _checked(name: str, annotation: str, value: Any) -> Any:
    """Check a JSON value against a field's annotation ("float | None" style); ints widen to float."""
    allowed = annotation.replace(" ", "").split("|")
    if value is None and "None" in allowed:
        return None
    for type_name in allowed:
        types = _TYPES.get(type_name, ())
        # bool is an int in Python, but never a sensible number of layers.
        if isinstance(value, types) and not (isinstance(value, bool) and type_name != "bool"):
            return float(value) if type_name == "float" else value
    raise InputError(f"option {name} must be {' or '.join(allowed)}, got {value!r}")


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


@dataclass
class SegmentOptions:
    model: str = DEFAULT_SAM_MODEL
    """SAM-family model id or folder, or ``none`` for the weights-free superpixel fallback."""
    points_per_side: int = 16
    points_per_batch: int = 64
    pred_iou_threshold: float = 0.80
    stability_threshold: float = 0.85
    nms_iou_threshold: float = 0.70
    min_region_fraction: float = 0.0005
    """Regions smaller than this share of the image are merged into a neighbour."""
    superpixels: int = 1000
    """Number of superpixels in the fallback."""


@dataclass
class HarmonizeOptions:
    enabled: bool = True
    data_weight_interior: float = 1.0
    data_weight_edge: float = 0.05
    smoothness: float = 4.0
    boundary_weight: float = 1.0
    iterations: int = 30
    tolerance: float = 5e-4
    grid_downsample: int = 2
    """Solve on a grid this many times coarser, then slice back to full working resolution."""
    trust_depth_file: bool = True
    """A depth map the user supplies is usually sharp and metric: harmonize then only nudges it (data weights
    at least 4 inside masks and 2 at their edges, boundary weight at most 0.5). On Motorcycle and Cones with
    ground-truth depth the default weights moved exact disparities by 0.3-0.7 px and cost 1.7 dB in novel
    views."""


@dataclass
class LayerOptions:
    max_layers: int = 5
    overlap_factor: float = 1.0
    """Masks may share a layer when their median disparities are within this many robust sigmas..."""
    min_gap: float = 0.02
    """...or closer than this share of the scene's disparity range."""
    feather_px: float = 1.0
    """Width of the anti-aliased alpha edge, in source pixels."""


@dataclass
class InpaintOptions:
    method: str = "telea"
    """``lama``, ``telea`` or ``ns``."""
    lama_model: str = "big-lama.pt"
    """Path or file name (looked up in the models folder) of the big-lama TorchScript file."""
    band_fraction: float = 0.08
    """Width of the filled band behind nearer layers, as a share of the image width."""
    radius: int = 5


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
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PipelineOptions:
        """Build options from nested dicts; unknown sections or keys are an error, not silently ignored."""
        options = cls()
        for section_name, values in (data or {}).items():
            if section_name not in {f.name for f in dataclasses.fields(cls)}:
                raise InputError(f"unknown option section {section_name!r}")
            if not isinstance(values, dict):
                raise InputError(f"option section {section_name!r} must be an object")
            section = getattr(options, section_name)
            known = {f.name: f for f in dataclasses.fields(section)}
            for key, value in values.items():
                if key not in known:
                    raise InputError(f"unknown option {section_name}.{key}")
                setattr(section, key, _checked(f"{section_name}.{key}", known[key].type, value))
        options.validate()
        return options

    def validate(self) -> None:
        """Reject values that cannot work, naming the option."""
        checks = [
            (self.load.work_size >= 16, "load.work_size must be at least 16"),
            (self.load.fov_deg > 1 and self.load.fov_deg < 179, "load.fov_deg must be in (1, 179)"),
            (self.load.focal_px is None or self.load.focal_px > 0, "load.focal_px must be positive"),
            (self.depth.depth_kind in ("depth", "disparity"), "depth.depth_kind must be depth or disparity"),
            (self.depth.depth_scale > 0, "depth.depth_scale must be positive"),
            (0 < self.depth.near < self.depth.far, "depth.near must be positive and below depth.far"),
            (1 <= self.layers.max_layers <= 32, "layers.max_layers must be between 1 and 32"),
            (self.layers.min_gap >= 0, "layers.min_gap must be non-negative"),
            (self.inpaint.method in ("lama", "telea", "ns"), "inpaint.method must be lama, telea or ns"),
            (0 <= self.inpaint.band_fraction <= 1, "inpaint.band_fraction must be in [0, 1]"),
            (self.geometry.representation in ("mesh", "mpi"), "geometry.representation must be mesh or mpi"),
            (self.geometry.max_triangles >= 16, "geometry.max_triangles must be at least 16"),
            (2 <= self.geometry.mpi_planes <= 128, "geometry.mpi_planes must be between 2 and 128"),
            (self.runtime.device in ("auto", "cpu", "cuda"), "runtime.device must be auto, cpu or cuda"),
            (self.harmonize.iterations >= 1, "harmonize.iterations must be at least 1"),
            (self.segment.points_per_side >= 1, "segment.points_per_side must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

"""Novel-view benchmark: build the scene from the left photo of a stereo pair, render the right camera, score it.

Pairs: ``motorcycle`` (the Middlebury 2014 pair that ships with scikit-image) or any folder laid out like
Middlebury 2003 (im2.png, im6.png, disp2.pgm, disp6.pgm). Each pair runs the pipeline on the left photo with
its ground-truth depth, builds the Blender scene with the add-on's scene builder, renders the right camera
with Eevee and scores PSNR and SSIM against the true right photo over two masks (``view_masks``):

- overlap: right pixels that some left pixel with known disparity lands on (pixel-exact forward warping,
  rounded to the nearest pixel, larger disparity wins);
- disoccluded: right pixels nothing lands on, except pixels outside the left camera's view and holes that
  come only from unknown ground truth.

Methods rendered in Eevee: ``layers`` (the default pipeline with ground-truth depth; ``--layers``, ``--band``,
``--triangles``, ``--representation`` and ``--set`` change it), ``stretched_mesh`` (the same with one layer:
one mesh stretched over every depth edge), optionally ``mpi``, the ``--tuned`` presets and any ``--variant``.
Two numpy references are computed as DESIGN.md names them (``reference_splat_telea``,
``reference_rubber_numpy``) and scored with the same masks. The report also carries, per method, the numbers
over cruder masks (``loose_score``: whole frame, every pixel nothing lands on), with which the numpy splat +
Telea reproduces DESIGN.md's Motorcycle row.

    .venv/bin/python scripts/bench_novel_view.py [motorcycle] [FOLDER ...] [--tuned] \\
        --json out/novel_view.json --png out/novel_view.png

The pure functions (camera, warping, masks, metrics, references) import without bpy.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONES = ROOT.parent / "shared" / "data" / "middlebury" / "cones"
EXTENSION = "bl_ext.user_default.photo3d"

PSNR_CAP_DB = 100.0
"""PSNR of identical pixels (zero error) is reported as this instead of infinity, so JSON stays plain."""

MIDDLEBURY_2003_FOCAL_FACTOR = 1.0
"""Middlebury 2003 has no calibration: focal length = this x the image width (any value works)."""
MIDDLEBURY_2003_BASELINE_M = 0.1
MIDDLEBURY_2003_DISPARITY_SCALE = 4.0
"""disp2.pgm / disp6.pgm store 4 x disparity; 0 is unknown."""

# DESIGN.md, "Evaluation on real data": (overlap PSNR, overlap SSIM, disoccluded PSNR, disoccluded SSIM).
DESIGN_REFERENCE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "motorcycle": {"rubber_sheet": (17.3, 0.74, 10.4, 0.25), "splat_telea": (22.5, 0.85, 16.3, 0.58)},
    "cones": {"rubber_sheet": (22.7, 0.80, 12.9, 0.38), "splat_telea": (24.2, 0.79, 15.6, 0.44)},
}
TARGET_DISOCCLUDED_GAIN_DB = 1.0
TARGET_OVERLAP_LOSS_DB = 1.0
TUNED_OPTIONS: dict[str, dict[str, Any]] = {
    "harmonize": {"data_weight_edge": 2.0, "data_weight_interior": 4.0, "boundary_weight": 0.5},
    "segment": {"superpixels": 1000},
    "layers": {"max_layers": 8, "min_gap": 0.02, "overlap_factor": 1.0},
}
"""Best pipeline settings found on Motorcycle and Cones with ground-truth depth; ``--tuned`` renders them as a
mesh (``layers_tuned``) and as an MPI (``mpi_tuned``)."""
TUNED_MPI_PLANES = 96
PICTURED = ("layers", "stretched_mesh", "mpi", "layers_tuned", "mpi_tuned")
METRICS = ("overlap_psnr", "overlap_ssim", "disoccluded_psnr", "disoccluded_ssim")


# ------------------------------------------------------------------------------------------------ pairs


@dataclass
class StereoPair:
    """A rectified stereo pair with ground-truth disparity of the left view (NaN = unknown)."""

    name: str
    left: np.ndarray
    """(h, w, 3) uint8."""
    right: np.ndarray
    """(h, w, 3) uint8."""
    disparity: np.ndarray
    """(h, w) float64 left disparity in pixels: left pixel u shows up at u - d in the right view."""
    focal_px: float
    baseline_m: float
    doffs_px: float
    """Difference of the principal points, cx_right - cx_left, in pixels (Middlebury's ``doffs``)."""
    right_disparity: np.ndarray | None = None
    """(h, w) float64 right disparity (NaN = unknown) when the pair has it: right u shows left u + d."""

    @property
    def depth(self) -> np.ndarray:
        """Metric depth Z = f B / (d + doffs); NaN where the disparity is unknown."""
        return depth_from_disparity(self.disparity, self.focal_px, self.baseline_m, self.doffs_px)


def depth_from_disparity(disparity: np.ndarray, focal_px: float, baseline_m: float, doffs_px: float) -> np.ndarray:
    """Z = f B / (d + doffs), NaN where ``disparity`` is NaN or not positive."""
    d = np.asarray(disparity, np.float64)
    known = np.isfinite(d) & (d > 0)
    depth = np.full(d.shape, np.nan)
    depth[known] = focal_px * baseline_m / (d[known] + doffs_px)
    return depth


def load_motorcycle() -> StereoPair:
    """scikit-image's Motorcycle pair (741x500) with the calibration of scripts/make_example.py."""
    from skimage.data import stereo_motorcycle

    example = _load_script_module("make_example")
    left, right, disparity = stereo_motorcycle()
    d = np.asarray(disparity, np.float64)
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return StereoPair("motorcycle", left, right, d, example.FOCAL_PX, example.BASELINE_M, example.DOFFS_PX)


def load_middlebury_2003(folder: str | os.PathLike) -> StereoPair:
    """A Middlebury 2003 folder: im2.png (left), im6.png (right), disp2.pgm and disp6.pgm (4 x disparity)."""
    import cv2

    folder = Path(folder)
    images = {}
    for name in ("im2.png", "im6.png", "disp2.pgm", "disp6.pgm"):
        path = folder / name
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if data is None:
            raise SystemExit(f"{path}: missing or unreadable (a Middlebury 2003 folder needs {name})")
        images[name] = data
    left = cv2.cvtColor(images["im2.png"], cv2.COLOR_BGR2RGB)
    right = cv2.cvtColor(images["im6.png"], cv2.COLOR_BGR2RGB)

    def disparity(raw: np.ndarray) -> np.ndarray:
        d = raw.astype(np.float64) / MIDDLEBURY_2003_DISPARITY_SCALE
        d[raw == 0] = np.nan
        return d

    width = left.shape[1]
    return StereoPair(
        name=folder.name,
        left=left,
        right=right,
        disparity=disparity(images["disp2.pgm"]),
        focal_px=MIDDLEBURY_2003_FOCAL_FACTOR * width,
        baseline_m=MIDDLEBURY_2003_BASELINE_M,
        doffs_px=0.0,
        right_disparity=disparity(images["disp6.pgm"]),
    )


def _load_script_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class RightCamera:
    """The right camera of a rectified pair, relative to the left camera of the package."""

    focal_px: float
    cx: float
    cy: float
    baseline_m: float
    """Translation along the left camera's +x (camera space: x right, y up, looking down -z)."""
    shift_x: float
    """Blender lens shift (in units of the longer image side) that puts the principal point at ``cx``."""
    shift_y: float


def right_camera(
    width: int, height: int, focal_px: float, cx: float, cy: float, baseline_m: float, doffs_px: float
) -> RightCamera:
    """Right camera for a left camera (f, cx, cy): same f and cy, moved by B along +x, cx_r = cx + doffs.

    With Z = f B / (d + doffs), a left pixel u_l at depth Z projects to u_r = u_l - d exactly.
    """
    cx_r = cx + doffs_px
    longer = max(width, height)
    return RightCamera(
        focal_px=float(focal_px),
        cx=float(cx_r),
        cy=float(cy),
        baseline_m=float(baseline_m),
        shift_x=(width / 2.0 - cx_r) / longer,
        shift_y=(cy - height / 2.0) / longer,
    )


def project_right(points: np.ndarray, camera: RightCamera) -> np.ndarray:
    """(N, 2) pixel coordinates (u, v) in the right view of (N, 3) left-camera-space points."""
    p = np.asarray(points, np.float64)
    x, y, z = p[:, 0] - camera.baseline_m, p[:, 1], -p[:, 2]
    return np.stack([camera.focal_px * x / z + camera.cx, camera.cy - camera.focal_px * y / z], axis=1)


# ------------------------------------------------------------------------------------------ warping


def forward_splat(image: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-exact forward warp of the left view to the right: left (v, u) lands on (v, round(u - d)).

    Pixels with unknown (NaN) disparity are not warped. Where several land on one pixel the largest
    disparity (nearest) wins. Returns the warped image (zeros where nothing lands), the hit mask and
    the winning disparity (NaN where nothing lands).
    """
    image = np.asarray(image)
    d = np.asarray(disparity, np.float64)
    h, w = d.shape
    vs, us = np.nonzero(np.isfinite(d))
    ur = np.floor(us - d[vs, us] + 0.5).astype(np.int64)
    inside = (ur >= 0) & (ur < w)
    vs, us, ur = vs[inside], us[inside], ur[inside]
    target = vs * w + ur
    values = d[vs, us]
    # Sort by target, then disparity: the last entry of each target run is the winner.
    order = np.lexsort((values, target))
    target, vs, us, values = target[order], vs[order], us[order], values[order]
    last = np.r_[target[1:] != target[:-1], True]
    target, vs, us, values = target[last], vs[last], us[last], values[last]
    warped = np.zeros((h * w,) + image.shape[2:], image.dtype)
    warped[target] = image[vs, us]
    hit = np.zeros(h * w, bool)
    hit[target] = True
    winner = np.full(h * w, np.nan)
    winner[target] = values
    return warped.reshape(image.shape), hit.reshape(h, w), winner.reshape(h, w)


def background_disparity(disparity: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per pixel, the smaller disparity of the nearest ``known`` pixels to its left and right on its row.

    A hole in a forward warp shows what lies behind its two sides, so the farther side (smaller
    disparity) estimates its disparity. Pixels with a known side only take that side; rows with no
    known pixel stay NaN. Known pixels keep their own disparity.
    """
    d = np.where(known, disparity, np.nan)
    h, w = d.shape
    cols = np.broadcast_to(np.arange(w), (h, w))
    left_idx = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
    right_idx = np.fliplr(np.minimum.accumulate(np.fliplr(np.where(known, cols, w)), axis=1))
    rows = np.arange(h)[:, None]
    from_left = np.where(left_idx >= 0, d[rows, np.clip(left_idx, 0, w - 1)], np.nan)
    from_right = np.where(right_idx < w, d[rows, np.clip(right_idx, 0, w - 1)], np.nan)
    return np.fmin(from_left, from_right)


@dataclass
class ViewMasks:
    """Masks over the right image; ``overlap`` and ``disoccluded`` are scored, the others are excluded."""

    overlap: np.ndarray
    disoccluded: np.ndarray
    out_of_view: np.ndarray
    unknown: np.ndarray
    """Holes explained by unknown ground truth in the left view."""

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name).sum()) for name in ("overlap", "disoccluded", "out_of_view", "unknown")}


def view_masks(disparity: np.ndarray, right_disparity: np.ndarray | None = None) -> ViewMasks:
    """Overlap, disoccluded and excluded right pixels from the left ground-truth disparity (NaN = unknown).

    Rules, for a right pixel u that no left pixel lands on (``forward_splat``):

    - its disparity d is the right ground truth where the pair has it (Middlebury 2003's disp6), otherwise the
      background estimate of the hole (``background_disparity``: the farther of the nearest hit pixels to
      its left and right on the row);
    - out of view when the left camera cannot see it: u + d >= w - 0.5 (the right image's right border, about
      d pixels wide; with no estimate at all, e.g. an empty row, it is out of view too);
    - unknown when the left pixel it shows, round(u + d_bg) with the background estimate, or one of its two
      row neighbours has unknown disparity: the hole may come from missing ground truth rather than from
      parallax, so it is not scored;
    - disoccluded otherwise.
    """
    d = np.asarray(disparity, np.float64)
    h, w = d.shape
    _, hit, warped_d = forward_splat(np.zeros((h, w), np.uint8), d)
    estimate = background_disparity(warped_d, hit)
    own = estimate
    if right_disparity is not None:
        rd = np.asarray(right_disparity, np.float64)
        own = np.where(np.isfinite(rd) & (rd > 0), rd, estimate)
    cols = np.broadcast_to(np.arange(w, dtype=np.float64), (h, w))
    with np.errstate(invalid="ignore"):
        out_of_view = ~hit & ~(cols + own < w - 0.5)
    source = np.floor(cols + np.nan_to_num(estimate, nan=0.0) + 0.5).astype(np.int64)
    unknown_left = ~np.isfinite(d)
    rows = np.arange(h)[:, None]
    source_unknown = np.zeros((h, w), bool)
    for offset in (-1, 0, 1):
        s = np.clip(source + offset, 0, w - 1)
        source_unknown |= unknown_left[rows, s]
    unknown = ~hit & ~out_of_view & source_unknown
    disoccluded = ~hit & ~out_of_view & ~unknown
    return ViewMasks(overlap=hit, disoccluded=disoccluded, out_of_view=out_of_view, unknown=unknown)


# ------------------------------------------------------------------------------------------- metrics


def masked_psnr(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the masked pixels and all channels, 8-bit range; ``PSNR_CAP_DB`` when equal, NaN if empty."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    diff = np.asarray(image, np.float64)[mask] - np.asarray(truth, np.float64)[mask]
    mse = float(np.mean(diff**2))
    if mse <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def ssim_map(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (7x7 windows, 8-bit range) averaged over the channels."""
    from skimage.metrics import structural_similarity

    image, truth = np.asarray(image, np.float64), np.asarray(truth, np.float64)
    multichannel = image.ndim == 3
    _, full = structural_similarity(image, truth, channel_axis=2 if multichannel else None, data_range=255, full=True)
    return full.mean(axis=2) if multichannel else full


def masked_ssim(image: np.ndarray, truth: np.ndarray, mask: np.ndarray, full: np.ndarray | None = None) -> float:
    """Mean of the SSIM map over ``mask`` (NaN if empty); pass ``full`` to reuse a computed map."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    full = ssim_map(image, truth) if full is None else full
    return float(full[mask].mean())


def score(image: np.ndarray, truth: np.ndarray, masks: ViewMasks) -> dict[str, float]:
    """The four numbers of the report for one rendered right view."""
    full = ssim_map(image, truth)
    return {
        "overlap_psnr": masked_psnr(image, truth, masks.overlap),
        "overlap_ssim": masked_ssim(image, truth, masks.overlap, full),
        "disoccluded_psnr": masked_psnr(image, truth, masks.disoccluded),
        "disoccluded_ssim": masked_ssim(image, truth, masks.disoccluded, full),
    }


# ---------------------------------------------------------------------------------------- references


def fill_unknown_disparity(disparity: np.ndarray) -> np.ndarray:
    """Unknown (NaN) disparity from the nearest known pixel (Euclidean), as the pipeline fills depth."""
    import cv2

    d = np.asarray(disparity, np.float64)
    known = np.isfinite(d)
    if known.all() or not known.any():
        return np.nan_to_num(d, nan=0.0)
    _, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lut = np.zeros(labels.max() + 1)
    lut[labels[known]] = d[known]
    return lut[labels]


def reference_splat_telea(left: np.ndarray, disparity: np.ndarray, radius: int = 5) -> np.ndarray:
    """Per-pixel splat of the known-disparity pixels (``forward_splat``), holes filled by OpenCV Telea."""
    import cv2

    warped, hit, _ = forward_splat(left, disparity)
    return cv2.inpaint(np.ascontiguousarray(warped), (~hit).astype(np.uint8), radius, cv2.INPAINT_TELEA)


def reference_rubber_sheet(left: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """One stretched sheet: consecutive left pixels of a row stay joined, colour and disparity interpolated.

    Unknown disparity is filled from the nearest known pixel first. Each row's pixel centres move to
    u - d; every right pixel centre between two consecutive moved centres takes the linear interpolation of
    their colours (so depth edges become stretched smears), and where sheet parts overlap the larger
    interpolated disparity wins. Pixels the sheet does not reach (beyond its ends) are black.
    """
    d = fill_unknown_disparity(disparity)
    image = np.asarray(left, np.float64)
    h, w = d.shape
    channels = image.shape[2] if image.ndim == 3 else 1
    flat = image.reshape(h, w, channels)
    x = np.arange(w)[None, :] - d  # moved centres, (h, w)
    x0, x1 = x[:, :-1], x[:, 1:]
    lo = np.ceil(np.minimum(x0, x1) - 1e-9).astype(np.int64)
    hi = np.floor(np.maximum(x0, x1) + 1e-9).astype(np.int64)
    lo, hi = np.clip(lo, 0, w), np.clip(hi, -1, w - 1)
    count = np.maximum(hi - lo + 1, 0)
    rows, segs = np.nonzero(count)
    n = count[rows, segs]
    starts = np.repeat(np.cumsum(n) - n, n)
    pixel = np.repeat(lo[rows, segs], n) + (np.arange(n.sum()) - starts)
    rows, segs = np.repeat(rows, n), np.repeat(segs, n)
    a, b = x0[rows, segs], x1[rows, segs]
    span = b - a
    t = np.where(np.abs(span) > 1e-12, (pixel - a) / np.where(np.abs(span) > 1e-12, span, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    disp = d[rows, segs] * (1 - t) + d[rows, segs + 1] * t
    colour = flat[rows, segs] * (1 - t)[:, None] + flat[rows, segs + 1] * t[:, None]
    target = rows * w + pixel
    order = np.lexsort((disp, target))
    target, colour = target[order], colour[order]
    last = np.r_[target[1:] != target[:-1], True]
    out = np.zeros((h * w, channels))
    out[target[last]] = colour[last]
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(h, w, channels)
    return out if image.ndim == 3 else out[..., 0]


def loose_score(image: np.ndarray, truth: np.ndarray, masks: ViewMasks) -> dict[str, float]:
    """Cruder masks, for comparison with DESIGN.md's table: the whole frame, and every pixel nothing lands on.

    With these, the numpy splat + Telea reproduces DESIGN.md's Motorcycle figures (22.5 / 0.85, 16.3 / 0.58).
    """
    full = ssim_map(image, truth)
    everything = np.ones(masks.overlap.shape, bool)
    return {
        "all_psnr": masked_psnr(image, truth, everything),
        "all_ssim": masked_ssim(image, truth, everything, full),
        "unhit_psnr": masked_psnr(image, truth, ~masks.overlap),
        "unhit_ssim": masked_ssim(image, truth, ~masks.overlap, full),
    }


# ------------------------------------------------------------------------------------- pipeline + render


@dataclass
class Method:
    """One way of making the right view: pipeline option overrides rendered in Eevee."""

    name: str
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def merge_options(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Section-wise merge of two nested option dicts (``extra`` wins)."""
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in extra.items():
        merged.setdefault(section, {}).update(values)
    return merged


def parse_assignments(text: str) -> dict[str, dict[str, Any]]:
    """``section.key=value,section.key=value`` to nested option dicts; values are JSON where they parse."""
    out: dict[str, dict[str, Any]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise SystemExit(f"option {item!r} must look like section.key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(section, {})[name] = value
    return out


def pair_options(pair: StereoPair, depth_file: Path) -> dict[str, dict[str, Any]]:
    """Options every pipeline method shares: full resolution, the pair's focal length, ground-truth depth."""
    h, w = pair.disparity.shape
    return {
        "load": {"focal_px": float(pair.focal_px), "work_size": int(max(h, w))},
        "depth": {"depth_file": str(depth_file), "depth_kind": "depth"},
        "segment": {"model": "none"},
        "inpaint": {"method": "telea"},
        "geometry": {"representation": "mesh"},
    }


def run_pipeline(image: Path, options: dict[str, dict[str, Any]], out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Convert ``image`` with ``options``; returns the package path and its manifest."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from core.options import PipelineOptions
    from core.pipeline import convert_image

    result = convert_image(image, out_dir, PipelineOptions.from_dict(options))
    return result.package_path, result.manifest


def render_right_view(
    package_dir: Path,
    camera: RightCamera,
    out_png: Path,
    samples: int = 1,
    check_points: list | None = None,
) -> tuple[np.ndarray, float]:
    """Build the package's scene in a fresh Blender file, render ``camera`` with Eevee to ``out_png``.

    Returns the render as (h, w, 3) uint8 and the largest error, in pixels, of Blender's projection of
    ``check_points`` (``camera_check_points``) against where they must land.
    """
    import bpy
    import cv2
    from bpy_extras.object_utils import world_to_camera_view

    _load_script_module("extension_loader").import_checkout_as_extension(EXTENSION)
    scene_builder = importlib.import_module(f"{EXTENSION}.photo3d_addon.scene_builder")
    package_module = importlib.import_module(f"{EXTENSION}.core.package")

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # llvmpipe's anisotropic filtering speckles and ghosts the layer textures.
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"
    scene = bpy.context.scene
    package = package_module.read_package(package_dir)
    scene_builder.build_scene(package, scene)
    cam = scene.camera
    cam.location = (camera.baseline_m, 0.0, 0.0)  # camera-local space of the root = package camera space
    cam.data.shift_x = camera.shift_x
    cam.data.shift_y = camera.shift_y
    render = scene.render
    render.engine = "BLENDER_EEVEE_NEXT"
    scene.eevee.taa_render_samples = samples
    if samples > 1:
        render.filter_size = 0.3
    render.dither_intensity = 0.0
    render.film_transparent = False
    render.resolution_percentage = 100
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    render.filepath = str(out_png)
    bpy.context.view_layer.update()

    error = float("nan")
    if check_points is not None and len(check_points):
        from mathutils import Vector

        root = cam.parent
        width, height = render.resolution_x, render.resolution_y
        worst = 0.0
        for point, expected_u, expected_v in check_points:
            ndc = world_to_camera_view(scene, cam, root.matrix_world @ Vector(tuple(float(c) for c in point)))
            u, v = ndc.x * width, (1.0 - ndc.y) * height
            worst = max(worst, abs(u - expected_u), abs(v - expected_v))
        error = worst

    bpy.ops.render.render(write_still=True)
    image = cv2.imread(str(out_png), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"Eevee wrote no image to {out_png}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), error


def camera_check_points(pair: StereoPair, manifest: dict[str, Any], count: int = 16) -> list:
    """Left-camera-space points of known pixels and where the right view must see them (u_l - d, v).

    Pixel centres are at +0.5 (core.camera), so u_l - d is in the same pixel-edge coordinates.
    """
    cam = manifest["camera"]
    f, cx, cy = float(cam["focal_px"]), float(cam["cx"]), float(cam["cy"])
    rng = np.random.default_rng(0)
    vs, us = np.nonzero(np.isfinite(pair.disparity))
    pick = rng.choice(len(vs), size=min(count, len(vs)), replace=False)
    out = []
    for v, u in zip(vs[pick], us[pick], strict=True):
        d = float(pair.disparity[v, u])
        z = pair.focal_px * pair.baseline_m / (d + pair.doffs_px)
        ul, vl = u + 0.5, v + 0.5
        point = ((ul - cx) * z / f, -(vl - cy) * z / f, -z)
        out.append((point, ul - d, vl))
    return out


# ------------------------------------------------------------------------------------------ reporting


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(image.copy())
    scale = max(0.4, out.shape[1] / 900)
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def mask_overlay(image: np.ndarray, masks: ViewMasks) -> np.ndarray:
    """The true right view with disoccluded pixels red, out-of-view darkened and unknown-GT holes blue."""
    out = np.asarray(image, np.float64).copy()
    out[masks.out_of_view] *= 0.25
    out[masks.disoccluded] = 0.35 * out[masks.disoccluded] + 0.65 * np.array([255.0, 0.0, 0.0])
    out[masks.unknown] = 0.35 * out[masks.unknown] + 0.65 * np.array([0.0, 80.0, 255.0])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def side_by_side(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    """Labelled panels side by side per row; rows scaled to the widest one and stacked."""
    import cv2

    strips = [np.concatenate([_label(img, text) for text, img in row], axis=1) for row in rows]
    width = max(s.shape[1] for s in strips)
    scaled = []
    for strip in strips:
        if strip.shape[1] != width:
            height = int(round(strip.shape[0] * width / strip.shape[1]))
            strip = cv2.resize(strip, (width, height), interpolation=cv2.INTER_LINEAR)
        scaled.append(strip)
    return np.concatenate(scaled, axis=0)


def targets(pairs: dict[str, dict[str, dict[str, float]]], methods: list[str]) -> dict[str, Any]:
    """Pass/fail per pair and method against DESIGN.md's figures and against the same-mask numpy splat + Telea.

    Target: disoccluded PSNR at least 1 dB above the best reference, overlap PSNR at most 1 dB below it
    (the best reference on disoccluded pixels is splat + Telea in both DESIGN.md rows).
    """
    out: dict[str, Any] = {}
    for name, scores in pairs.items():
        design = DESIGN_REFERENCE.get(name)
        same = scores.get("reference_splat_telea")
        entry: dict[str, Any] = {}
        for method in methods:
            got = scores.get(method)
            if got is None:
                continue
            verdicts: dict[str, Any] = {}
            if design is not None:
                best = max(design.values(), key=lambda ref: ref[2])
                verdicts["vs_design"] = _target_entry(got, best[0], best[2])
            if same is not None:
                verdicts["vs_same_masks"] = _target_entry(got, same["overlap_psnr"], same["disoccluded_psnr"])
            entry[method] = verdicts
        out[name] = entry
    return out


def _target_entry(got: dict[str, float], overlap_ref: float, disoccluded_ref: float) -> dict[str, Any]:
    need_dis = disoccluded_ref + TARGET_DISOCCLUDED_GAIN_DB
    need_overlap = overlap_ref - TARGET_OVERLAP_LOSS_DB
    # NaN (a failed method) compares False: no pass.
    ok_dis = got["disoccluded_psnr"] >= need_dis
    ok_overlap = got["overlap_psnr"] >= need_overlap
    return {
        "disoccluded_psnr_needed": round(need_dis, 3),
        "disoccluded_psnr": round(got["disoccluded_psnr"], 3),
        "overlap_psnr_needed": round(need_overlap, 3),
        "overlap_psnr": round(got["overlap_psnr"], 3),
        "pass": bool(ok_dis and ok_overlap),
    }


def markdown_table(pairs: dict[str, dict[str, dict[str, float]]]) -> str:
    """Both masks' numbers per pair and method, with DESIGN.md's figures where it has them."""
    lines = [
        "| pair | method | overlap PSNR / SSIM | disoccluded PSNR / SSIM | DESIGN.md overlap | DESIGN.md disoccluded |",
        "|---|---|---|---|---|---|",
    ]
    design_name = {"reference_splat_telea": "splat_telea", "reference_rubber_numpy": "rubber_sheet"}
    for pair, methods in pairs.items():
        for method, m in methods.items():
            ref = DESIGN_REFERENCE.get(pair, {}).get(design_name.get(method, ""))
            design = (f"{ref[0]:.1f} / {ref[1]:.2f}", f"{ref[2]:.1f} / {ref[3]:.2f}") if ref else ("", "")
            lines.append(
                f"| {pair} | {method} | {m['overlap_psnr']:.2f} / {m['overlap_ssim']:.3f} "
                f"| {m['disoccluded_psnr']:.2f} / {m['disoccluded_ssim']:.3f} | {design[0]} | {design[1]} |"
            )
    return "\n".join(lines)


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in values.items()}


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python numbers, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _load_pair(spec: str) -> StereoPair:
    if spec == "motorcycle":
        return load_motorcycle()
    return load_middlebury_2003(spec)


def bench_pair(pair: StereoPair, methods: list[Method], args: argparse.Namespace, work: Path):
    """Run every method on one pair; returns per-method scores, extra details and the PNG row."""
    import cv2

    h, w = pair.disparity.shape
    folder = work / pair.name
    folder.mkdir(parents=True, exist_ok=True)
    image_path, depth_path = folder / "left.png", folder / "depth.npy"
    cv2.imwrite(str(image_path), cv2.cvtColor(pair.left, cv2.COLOR_RGB2BGR))
    np.save(depth_path, pair.depth.astype(np.float32))
    masks = view_masks(pair.disparity, pair.right_disparity)
    scores: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {"size": [w, h], "masks": masks.counts(), "methods": {}}

    started = time.perf_counter()
    references = {
        "reference_splat_telea": reference_splat_telea(pair.left, pair.disparity),
        "reference_rubber_numpy": reference_rubber_sheet(pair.left, pair.disparity),
    }
    renders: dict[str, np.ndarray] = {}
    for name, image in references.items():
        scores[name] = _rounded(score(image, pair.right, masks))
        details["methods"][name] = {"loose": _rounded(loose_score(image, pair.right, masks))}
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    details["reference_seconds"] = round(time.perf_counter() - started, 3)

    pair_base = pair_options(pair, depth_path)
    for method in methods:
        options = merge_options(pair_base, method.options)
        t0 = time.perf_counter()
        try:
            package, manifest = run_pipeline(image_path, options, folder / f"{method.name}_package")
        except Exception as error:  # one failing setting must not lose the others' numbers
            print(f"  {pair.name} {method.name}: pipeline failed: {error}", flush=True)
            scores[method.name] = dict.fromkeys(METRICS, float("nan"))
            details["methods"][method.name] = {"options": options, "error": f"{type(error).__name__}: {error}"}
            continue
        t1 = time.perf_counter()
        cam = manifest["camera"]
        right = right_camera(w, h, cam["focal_px"], cam["cx"], cam["cy"], pair.baseline_m, pair.doffs_px)
        check = camera_check_points(pair, manifest)
        out_png = folder / f"{method.name}_right.png"
        image, error = render_right_view(package, right, out_png, args.samples, check)
        t2 = time.perf_counter()
        renders[method.name] = image
        scores[method.name] = _rounded(score(image, pair.right, masks))
        details["methods"][method.name] = {
            "options": options,
            "layers": len(manifest["layers"]),
            "triangles": sum(int(layer.get("triangles", 0)) for layer in manifest["layers"]),
            "pipeline_seconds": round(t1 - t0, 2),
            "render_seconds": round(t2 - t1, 2),
            "camera_error_px": round(error, 5),
            "loose": _rounded(loose_score(image, pair.right, masks)),
        }
        print(f"  {pair.name} {method.name}: {scores[method.name]} ({t1 - t0:.1f} s + {t2 - t1:.1f} s)", flush=True)

    # The picture shows the named methods; --variant renders stay in the work folder.
    row = [("left photo", pair.left), ("true right", pair.right)]
    row.extend((f"{name} (Eevee)", renders[name]) for name in PICTURED if name in renders)
    row.append(("disoccluded red / unknown blue / out of view dark", mask_overlay(pair.right, masks)))
    return scores, details, row


def layered_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Options of the layered method: the ``--layers/--band/--triangles/--representation`` flags, then ``--set``."""
    options: dict[str, dict[str, Any]] = {
        "layers": {},
        "inpaint": {},
        "geometry": {"representation": args.representation},
    }
    if args.layers is not None:
        options["layers"]["max_layers"] = args.layers
    if args.band is not None:
        options["inpaint"]["band_fraction"] = args.band
    if args.triangles is not None:
        options["geometry"]["max_triangles"] = args.triangles
    for text in args.set:
        options = merge_options(options, parse_assignments(text))
    return options


def build_methods(args: argparse.Namespace) -> list[Method]:
    """The Eevee methods asked for: layers, stretched_mesh, optionally mpi, ``--tuned`` and ``--variant`` ones.

    Every method but the tuned ones starts from the layered options; stretched_mesh then forces one layer,
    mpi the MPI representation, a variant its own overrides. The tuned ones are fixed presets
    (``TUNED_OPTIONS``, as a mesh and as a ``TUNED_MPI_PLANES``-plane MPI).
    """
    layered = layered_options(args)
    fixed = {
        "layers": {},
        "stretched_mesh": {"layers": {"max_layers": 1}},
        "mpi": {"geometry": {"representation": "mpi"}},
    }
    methods = []
    for name in filter(None, (part.strip() for part in args.methods.split(","))):
        if name not in fixed:
            raise SystemExit(f"unknown method {name!r} (layers, stretched_mesh, mpi)")
        methods.append(Method(name, merge_options(layered, fixed[name])))
    if args.tuned:
        methods.append(Method("layers_tuned", TUNED_OPTIONS))
        mpi = {"geometry": {"representation": "mpi", "mpi_planes": TUNED_MPI_PLANES}}
        methods.append(Method("mpi_tuned", merge_options(TUNED_OPTIONS, mpi)))
    for variant in args.variant:
        name, sep, assignments = variant.partition(":")
        if not sep or not name:
            raise SystemExit(f"--variant {variant!r} must look like NAME:section.key=value,...")
        methods.append(Method(name, merge_options(layered, parse_assignments(assignments))))
    return methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "pairs", nargs="*", help=f"motorcycle and/or Middlebury 2003 folders (default: both, {DEFAULT_CONES})"
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--png", type=Path, help="write the side-by-side picture here (one row per pair)")
    # Unset flags keep the pipeline's own defaults, so the benchmark measures what users get.
    parser.add_argument("--layers", type=int, help="layers.max_layers of the layered method")
    parser.add_argument("--band", type=float, help="inpaint.band_fraction")
    parser.add_argument("--triangles", type=int, help="geometry.max_triangles per layer")
    parser.add_argument("--representation", default="mesh", choices=["mesh", "mpi"])
    parser.add_argument("--methods", default="layers,stretched_mesh", help="comma list of layers, stretched_mesh, mpi")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE,...",
        help="pipeline options for the layered method and every method built from it",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SECTION.KEY=VALUE,...",
        help="an extra method: the layered options plus these overrides",
    )
    parser.add_argument("--tuned", action="store_true", help="also run the tuned presets (layers_tuned, mpi_tuned)")
    parser.add_argument("--samples", type=int, default=1, help="Eevee TAA render samples")
    parser.add_argument("--work-dir", type=Path, help="keep packages and renders here (default: a temporary folder)")
    args = parser.parse_args(argv)

    methods = build_methods(args)
    specs = args.pairs or ["motorcycle", str(DEFAULT_CONES)]
    started = time.perf_counter()
    report: dict[str, Any] = {"pairs": {}, "details": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="photo3d_novel_") as tmp:
        work = args.work_dir or Path(tmp)
        for spec in specs:
            pair = _load_pair(spec)
            print(f"{pair.name}: {pair.left.shape[1]}x{pair.left.shape[0]}", flush=True)
            scores, details, row = bench_pair(pair, methods, args, work)
            report["pairs"][pair.name] = scores
            report["details"][pair.name] = details
            rows.append(row)
    report["settings"] = {
        "methods": {m.name: m.options for m in methods},
        "samples": args.samples,
        "engine": "BLENDER_EEVEE_NEXT",
        "masks": view_masks.__doc__.split("Rules, ")[1].strip() if view_masks.__doc__ else "",
        "psnr_cap_db": PSNR_CAP_DB,
    }
    report["design_reference"] = {
        pair: {m: dict(zip(METRICS, v, strict=True)) for m, v in refs.items()}
        for pair, refs in DESIGN_REFERENCE.items()
    }
    report["targets"] = targets(report["pairs"], [m.name for m in methods])
    report["seconds"] = round(time.perf_counter() - started, 1)

    print()
    print(markdown_table(report["pairs"]))
    print()
    for pair, entry in report["targets"].items():
        for method, verdicts in entry.items():
            for against, t in verdicts.items():
                print(
                    f"{pair} {method} {against}: {'PASS' if t['pass'] else 'FAIL'} (disoccluded "
                    f"{t['disoccluded_psnr']:.2f} >= {t['disoccluded_psnr_needed']:.2f}, overlap "
                    f"{t['overlap_psnr']:.2f} >= {t['overlap_psnr_needed']:.2f})"
                )
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=2))
    if args.png:
        import cv2

        args.png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.png), cv2.cvtColor(side_by_side(rows), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy may hang at interpreter exit.
    os._exit(code)

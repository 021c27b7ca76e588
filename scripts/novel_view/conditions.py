"""Depth conditions: what depth the pipeline gets for the left photo (``--depth-condition``).

- ``gt``: the ground-truth depth as a metric depth file (the benchmark's original path, trusted by harmonize).
- ``blurN`` (``blur2``, ``blur4``, ``blur8``): ground-truth disparity with its unknown pixels filled
  (``fill_disparity``), Gaussian-blurred with sigma N px (``blurred_disparity``), then made relative.
- ``sgbm``: OpenCV StereoSGBM disparity of the pair (``sgbm_disparity``, parameters in ``SGBM_PARAMETERS``),
  invalid pixels filled the same way, then made relative.

Every non-gt condition is made relative with the fixed affine change ``RELATIVE_SCALE * d + RELATIVE_SHIFT *
range`` (``relative_disparity``) and goes to the pipeline as a disparity file (``depth.depth_kind
disparity``): ``core.depth.load_depth_file`` turns it into depth with ``disparity_to_depth``, the same
near/far policy a relative depth network's output goes through, and the full harmonize runs
(``harmonize.trust_depth_file`` off, so the default weights a network's depth gets). Segmentation stays the
weights-free one (``segment.model none``).

A relative scene has no metric scale, so the right camera is placed by an affine alignment of the scene's
inverse depth to the true disparity (``fit_disparity_affine``, least squares over known pixels: the usual
scale-and-shift alignment of monocular depth evaluation): with ``d ~ a / Z + b`` the right camera is moved by
``a / f`` with principal-point offset ``-b``, so a scene point of depth Z shows up at ``u - (a / Z + b)``.
Scoring always uses the ground-truth masks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .metrics import background_disparity
from .pairs import StereoPair

CONDITIONS = ("gt", "blur2", "blur4", "blur8", "sgbm")
RELATIVE_SCALE = 0.7
RELATIVE_SHIFT = 0.1
"""The affine change of every non-gt condition: ``0.7 * d + 0.1 * (max(d) - min(d))``."""
SGBM_BLOCK = 5
SGBM_PARAMETERS = {
    "minDisparity": 0,
    "blockSize": SGBM_BLOCK,
    "P1": 8 * 3 * SGBM_BLOCK**2,
    "P2": 32 * 3 * SGBM_BLOCK**2,
    "disp12MaxDiff": 1,
    "uniquenessRatio": 10,
    "speckleWindowSize": 100,
    "speckleRange": 2,
    "preFilterCap": 63,
}
"""StereoSGBM settings (OpenCV's documented starting point, 3-way mode); ``numDisparities`` is the smallest
multiple of 16 above the ground truth's largest disparity plus 16 (``sgbm_disparity``)."""


def parse_conditions(text: str) -> list[str]:
    """``gt,blur4,sgbm`` to a list, in the given order, each known."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in CONDITIONS:
            raise SystemExit(f"unknown depth condition {name!r} ({', '.join(CONDITIONS)})")
    if not names:
        raise SystemExit("--depth-condition needs at least one of " + ", ".join(CONDITIONS))
    return list(dict.fromkeys(names))


def fill_disparity(disparity: np.ndarray) -> np.ndarray:
    """Unknown (NaN or <= 0) disparity filled: per row, the farther of the nearest known pixels on each side.

    Unknown ground truth sits mostly in occlusions, which show the background, so the farther side
    (``metrics.background_disparity``) puts the jump at the foreground's edge. What a row cannot fill (a row
    with no known pixel) takes the nearest known pixel.
    """
    from scipy import ndimage

    d = np.asarray(disparity, np.float64)
    known = np.isfinite(d) & (d > 0)
    if known.all():
        return d.copy()
    if not known.any():
        raise ValueError("no known disparity to fill from")
    filled = np.where(known, d, background_disparity(np.where(known, d, 0.0), known))
    rest = ~np.isfinite(filled)
    if rest.any():
        _, (rows, cols) = ndimage.distance_transform_edt(rest, return_indices=True)
        filled = filled[rows, cols]
    return filled


def blurred_disparity(disparity: np.ndarray, sigma: float) -> np.ndarray:
    """Filled disparity (``fill_disparity``) blurred by a Gaussian of ``sigma`` px (reflected borders)."""
    import cv2

    filled = fill_disparity(disparity).astype(np.float32)
    return cv2.GaussianBlur(filled, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT).astype(np.float64)


def sgbm_disparity(left: np.ndarray, right: np.ndarray, max_disparity: float) -> np.ndarray:
    """StereoSGBM disparity of a rectified RGB pair (``SGBM_PARAMETERS``), invalid pixels filled."""
    import cv2

    num = int(np.ceil((float(max_disparity) + 16.0) / 16.0) * 16)
    matcher = cv2.StereoSGBM_create(numDisparities=num, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY, **SGBM_PARAMETERS)
    gray_l = cv2.cvtColor(np.ascontiguousarray(left), cv2.COLOR_RGB2GRAY)
    gray_r = cv2.cvtColor(np.ascontiguousarray(right), cv2.COLOR_RGB2GRAY)
    raw = matcher.compute(gray_l, gray_r).astype(np.float64) / 16.0
    raw[raw <= SGBM_PARAMETERS["minDisparity"]] = np.nan
    return fill_disparity(raw)


def relative_disparity(disparity: np.ndarray) -> np.ndarray:
    """The fixed affine change that makes a disparity relative: ``0.7 d + 0.1 (max - min)`` (positive)."""
    d = np.asarray(disparity, np.float64)
    spread = float(np.nanmax(d) - np.nanmin(d))
    return RELATIVE_SCALE * d + RELATIVE_SHIFT * max(spread, 1.0)


def condition_disparity(pair: StereoPair, name: str) -> np.ndarray | None:
    """The relative disparity the pipeline gets under condition ``name``; None for ``gt`` (metric depth)."""
    if name == "gt":
        return None
    if name.startswith("blur"):
        return relative_disparity(blurred_disparity(pair.disparity, float(name[4:])))
    if name == "sgbm":
        return relative_disparity(sgbm_disparity(pair.left, pair.right, float(np.nanmax(pair.disparity))))
    raise ValueError(f"unknown depth condition {name!r}")


@dataclass(frozen=True)
class Alignment:
    """``disparity = a / depth + b``: a scene's depth in the pair's disparity pixels."""

    a: float
    b: float

    def disparity(self, depth: np.ndarray) -> np.ndarray:
        return self.a / np.asarray(depth, np.float64) + self.b


def metric_alignment(pair: StereoPair) -> Alignment:
    """The exact one of metric depth: ``d = f B / Z - doffs``."""
    return Alignment(pair.focal_px * pair.baseline_m, -pair.doffs_px)


def fit_disparity_affine(depth: np.ndarray, truth: np.ndarray) -> Alignment:
    """Least-squares ``truth ~ a / depth + b`` over pixels where both are finite (and depth > 0)."""
    z = np.asarray(depth, np.float64)
    t = np.asarray(truth, np.float64)
    ok = np.isfinite(z) & (z > 0) & np.isfinite(t)
    if ok.sum() < 2:
        raise ValueError("too few known pixels to align the depth")
    x = 1.0 / z[ok]
    design = np.stack([x, np.ones_like(x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, t[ok], rcond=None)
    if not a > 0:
        raise ValueError(f"depth does not grow with disparity (scale {a:.4g})")
    return Alignment(float(a), float(b))


def aligned_pair(pair: StereoPair, alignment: Alignment) -> StereoPair:
    """``pair`` with the baseline and doffs under which the scene's depth Z projects to ``a / Z + b``."""
    return replace(pair, baseline_m=alignment.a / pair.focal_px, doffs_px=-alignment.b)

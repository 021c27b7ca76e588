"""Depth stable over time within a shot.

A monocular network's relative disparity "breathes" from frame to frame: each frame has its own unknown scale
and shift, plus noise. :class:`TemporalDepthFilter` follows a shot frame by frame:

1. dense optical flow both ways between the previous and the current frame (OpenCV DIS);
2. a forward-backward check marks the pixels whose correspondence can be trusted (occlusions and pixels
   leaving the frame fail it);
3. the previous *filtered* disparity is warped into the current frame;
4. the current raw disparity is fitted (robust scale and shift) to that warped disparity on trusted pixels,
   so every frame keeps the first frame's scale and shift: one near/far mapping per shot
   (``core.depth.disparity_to_depth`` must be applied once per shot, never per frame). The fit is built
   not to drift along the chain (see ``TemporalDepthFilter._fit``);
5. trusted pixels that also agree in value get an exponential moving average of the aligned and the warped
   disparity, the others the aligned disparity alone, so nothing smears across a moving object's edge.

Everything is disparity in, disparity out. Flow convention throughout: ``flow`` from frame A to frame B,
defined on A's pixel grid, means ``A(x) ~ B(x + flow(x))``. Gray frames are (h, w) uint8, or float 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
"""DIS MEDIUM rather than FAST: MEDIUM searches to a finer pyramid level with smaller patch strides and more
refinement, and the filter warps its history with the flow every frame, so flow error becomes disparity error
at every edge. Measured on a textured 1.3 px translation: mean error 0.03 px (MEDIUM) vs 0.17 px (FAST) at
160x120, 0.04 vs 0.06 px at 924x518, for about 50 ms vs 13 ms a pair at 924x518 on one CPU core: still well
under a depth network's time per frame."""

RELATIVE_TOLERANCE = 0.01
"""Relative term of the forward-backward check (Sundaram et al. 2010): fast motion may err more."""

MIN_FIT_FRACTION = 0.01
MIN_FIT_PIXELS = 100
"""Below max(1 % of the frame, 100 px) a scale/shift fit is not trusted."""

_MAX_FIT_SAMPLES = 200_000
"""A regular subsample is plenty for two unknowns and keeps the fit cheap at full HD."""
_PAIRS = 4000
"""Random pairs for the robust (Theil-Sen-like) initial slope."""
_IRLS_ITERATIONS = 8
_FIT_WINDOW = 7
"""Box window over which the filter averages both maps before fitting (pixel noise / 49)."""
_TUKEY_C = 4.685
_MAD_TO_SIGMA = 1.4826


def _to_uint8(gray: np.ndarray) -> np.ndarray:
    """uint8 as is; float taken as 0..1 (as in ``core.video.shots``). DIS works on 8-bit single-channel images."""
    image = np.asarray(gray)
    if image.ndim != 2:
        raise ValueError(f"a gray frame must be (h, w), not {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return (np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def optical_flow(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """Dense flow (h, w, 2) float32 (x, y) from ``prev_gray`` to ``next_gray``: ``prev(x) ~ next(x + flow(x))``.

    Frames are (h, w), uint8 or float 0..1. OpenCV DIS with the MEDIUM preset (see :data:`DIS_PRESET`).
    """
    prev8, next8 = _to_uint8(prev_gray), _to_uint8(next_gray)
    if prev8.shape != next8.shape:
        raise ValueError(f"frames differ in size: {prev8.shape} and {next8.shape}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    flow = dis.calc(prev8, next8, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _sampling_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(x) = image(x + flow(x))``, bilinear, border replicated, float32.

    To bring frame A's values onto frame B's grid, pass the flow from B to A (defined on B's grid):
    ``warp(A, optical_flow(B, A))`` ~ B. ``image`` is (h, w) or (h, w, c) and shares ``flow``'s (h, w).
    """
    values = np.asarray(image, dtype=np.float32)
    flow = np.asarray(flow, dtype=np.float32)
    if values.shape[:2] != flow.shape[:2] or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"image {values.shape} and flow {flow.shape} do not match")
    map_x, map_y = _sampling_maps(flow)
    out = cv2.remap(values, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # remap drops a trailing channel axis of size 1; keep the caller's shape.
    return out.reshape(values.shape).astype(np.float32, copy=False)


def consistent(flow_fw: np.ndarray, flow_bw: np.ndarray, tolerance_px: float = 1.0) -> np.ndarray:
    """Forward-backward check on A's grid: (h, w) bool, True where a correspondence can be trusted.

    ``flow_fw`` goes from A to B (on A's grid), ``flow_bw`` from B to A (on B's grid). Pixel x of A passes
    when going to ``x + f`` in B and back by ``b = flow_bw(x + f)`` lands within the tolerance of x:
    ``|f + b|^2 <= tolerance_px^2 + 0.01 (|f|^2 + |b|^2)``, and ``x + f`` lies inside B. Pixels of A that B
    does not show (occluded, moved out of frame) and those the two flows disagree on fail it.
    """
    f = np.asarray(flow_fw, dtype=np.float32)
    if f.shape != np.shape(flow_bw):
        raise ValueError(f"flows differ in shape: {f.shape} and {np.shape(flow_bw)}")
    b = warp(flow_bw, f)
    gap = np.sum((f + b) ** 2, axis=2)
    bound = tolerance_px**2 + RELATIVE_TOLERANCE * (np.sum(f**2, axis=2) + np.sum(b**2, axis=2))
    h, w = f.shape[:2]
    map_x, map_y = _sampling_maps(f)
    # Border replication would invent a match for content that left the frame: it has none.
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return (gap <= bound) & inside & np.isfinite(gap)


def _enough_pixels(count: int, size: int) -> bool:
    return count >= max(MIN_FIT_PIXELS, MIN_FIT_FRACTION * size)


def _slope(sxx: float, syy: float, sxy: float, noise_ratio: float) -> float | None:
    """Slope s of y ~ s x from (co)variances, for noise in both: ``noise_ratio`` = target's noise variance over
    the source's, the latter in target units (s^2 times its own).

    Method of moments: with V the variance of the noise-free source and e its noise, Sxy = s V, Sxx = V + e and
    Syy = s^2 (V + noise_ratio e), so ``noise_ratio Sxx s^2 + (1 - noise_ratio) Sxy s - Syy = 0``. Infinite
    ratio: ordinary least squares (exact source); 1: the geometric-mean slope; 0: regression of x on y.
    """
    if sxx <= 0 or syy < 0 or abs(sxy) <= 1e-12 * np.sqrt(sxx * max(syy, 0.0)) or sxy == 0:
        return None
    # The equation is symmetric under (s, Sxy) -> (-s, -Sxy): solve for |Sxy| and restore the sign.
    c = abs(sxy)
    if np.isinf(noise_ratio):
        slope = c / sxx
    elif noise_ratio <= 0:
        slope = syy / c
    else:
        b = (1.0 - noise_ratio) * c
        root = np.sqrt(b * b + 4.0 * noise_ratio * sxx * syy)
        # The positive root, in whichever form does not cancel.
        slope = (root - b) / (2.0 * noise_ratio * sxx) if b < 0 else 2.0 * syy / (b + root)
    return float(np.copysign(slope, sxy))


def _weighted_line(x: np.ndarray, y: np.ndarray, weights: np.ndarray, noise_ratio: float) -> tuple[float, float] | None:
    total = float(weights.sum())
    if total <= 0:
        return None
    mx, my = float(weights @ x) / total, float(weights @ y) / total
    dx, dy = x - mx, y - my
    wdx = weights * dx
    slope = _slope(float(wdx @ dx) / total, float(weights @ (dy * dy)) / total, float(wdx @ dy) / total, noise_ratio)
    if slope is None:
        return None
    return slope, my - slope * mx


def fit_scale_shift(
    source: np.ndarray, target: np.ndarray, mask: np.ndarray, noise_ratio: float = float("inf")
) -> tuple[float, float]:
    """Robust (s, t) minimising ``|s * source + t - target|`` over ``mask``.

    Start: the median slope of random pixel pairs (robust to ~30 % outliers) and the median offset; then
    iteratively reweighted fits with Tukey's biweight (scale from the residuals' MAD), which ignores outliers
    entirely. ``noise_ratio`` is the target's noise variance over the source's (in target units): the default,
    infinite, takes the source as exact (least squares); a noisy source otherwise biases the scale towards 0
    (regression dilution), which a frame-to-frame chain would compound (see :func:`_slope`). Returns (1, 0)
    when the mask holds too few finite pixels (< 1 % of the frame or < 100) or the source has no spread there.
    """
    if noise_ratio < 0 or np.isnan(noise_ratio):
        raise ValueError(f"noise_ratio must be >= 0, not {noise_ratio}")
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or np.shape(mask) != src.shape:
        raise ValueError(f"source {src.shape}, target {dst.shape} and mask {np.shape(mask)} must match")
    valid = np.asarray(mask, dtype=bool) & np.isfinite(src) & np.isfinite(dst)
    count = int(valid.sum())
    if not _enough_pixels(count, src.size):
        return 1.0, 0.0
    x, y = src[valid], dst[valid]
    if count > _MAX_FIT_SAMPLES:
        step = -(-count // _MAX_FIT_SAMPLES)
        x, y = x[::step], y[::step]
    if float(np.ptp(x)) <= 1e-6 * max(1.0, float(np.abs(x).max())):
        return 1.0, 0.0

    # Fixed seed: the same frames must always give the same fit.
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, x.size, _PAIRS), rng.integers(0, x.size, _PAIRS)
    dx = x[i] - x[j]
    # Pairs too close in source value give wild slopes: keep those a quarter of the source's robust span apart.
    # A share of the pairs would not do: where most pixels are one flat surface (a wall, a floor; a piecewise
    # flat scene), most pairs differ only by noise, and their slopes' median is noise too, even negative.
    low, high = np.percentile(x, [2.0, 98.0])
    separated = np.abs(dx) >= max(0.25 * float(high - low), 1e-12)
    if separated.sum() < 10:
        separated = (np.abs(dx) >= np.median(np.abs(dx))) & (np.abs(dx) > 0)
    s = float(np.median((y[i] - y[j])[separated] / dx[separated])) if separated.sum() >= 10 else 1.0
    t = float(np.median(y - s * x))

    for _ in range(_IRLS_ITERATIONS):
        residual = y - (s * x + t)
        sigma = _MAD_TO_SIGMA * float(np.median(np.abs(residual - np.median(residual))))
        if sigma <= 1e-12:
            # Exact fit on the majority: one plain fit on those pixels settles it.
            weights = (np.abs(residual) <= 1e-9 * max(1.0, float(np.abs(y).max()))).astype(np.float64)
        else:
            u = residual / (_TUKEY_C * sigma)
            weights = np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)
        line = _weighted_line(x, y, weights, noise_ratio)
        if line is None:
            break
        converged = abs(line[0] - s) <= 1e-9 * max(1.0, abs(s)) and abs(line[1] - t) <= 1e-9 * max(1.0, abs(t))
        s, t = line
        if converged:
            break
    if not (np.isfinite(s) and np.isfinite(t)):
        return 1.0, 0.0
    if not _determined(x, y, s, t):
        # The pixels span too little depth for a scale (one flat surface, its spread only noise): any slope
        # fits them, and a wrong one would flip or shrink the shot's scale. Keep the scale, match the level.
        return 1.0, float(np.median(y - x))
    return float(s), float(t)


MIN_FIT_CORRELATION = 0.7
"""Below this correlation between source and target (on the fit's inliers), the scale is noise."""


def _determined(x: np.ndarray, y: np.ndarray, s: float, t: float) -> bool:
    """Whether the line (s, t) is set by the data rather than by their noise: a positive slope and a clear
    correlation on the inliers (within 3 robust sigmas of it)."""
    residual = y - (s * x + t)
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(residual - np.median(residual))))
    # An exact majority (sigma 0): its own pixels are the inliers.
    inliers = np.abs(residual) <= max(3.0 * sigma, 1e-9 * max(1.0, float(np.abs(y).max())))
    if s <= 0 or inliers.sum() < 10:
        return False
    xi, yi = x[inliers] - x[inliers].mean(), y[inliers] - y[inliers].mean()
    denominator = float(np.sqrt((xi @ xi) * (yi @ yi)))
    return denominator > 0 and float(xi @ yi) / denominator >= MIN_FIT_CORRELATION


def _match_statistics(source: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(s, t) mapping source's median and p10-p90 spread onto target's: no correspondence needed."""
    s_lo, s_med, s_hi = np.nanpercentile(source, [10.0, 50.0, 90.0])
    t_lo, t_med, t_hi = np.nanpercentile(target, [10.0, 50.0, 90.0])
    if not (s_hi > s_lo and t_hi > t_lo):
        return 1.0, float(t_med - s_med)
    s = float((t_hi - t_lo) / (s_hi - s_lo))
    return s, float(t_med - s * s_med)


class TemporalDepthFilter:
    """Per-shot temporal stabiliser of relative disparity (see the module docstring). Call :meth:`reset` at a cut."""

    def __init__(self, alpha: float = 0.3, tolerance_px: float = 1.0, outlier_sigmas: float = 4.0) -> None:
        """``alpha``: weight of the new frame in the moving average (1 = no smoothing); ``tolerance_px``: of the
        forward-backward check; ``outlier_sigmas``: how far (robust sigmas of the frame's disagreement) the
        aligned disparity may differ from the warped history before a pixel is treated as changed."""
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        if tolerance_px < 0:
            raise ValueError(f"tolerance_px must be >= 0, not {tolerance_px}")
        if outlier_sigmas <= 0:
            raise ValueError(f"outlier_sigmas must be > 0, not {outlier_sigmas}")
        self.alpha = float(alpha)
        self.tolerance_px = float(tolerance_px)
        self.outlier_sigmas = float(outlier_sigmas)
        self.reset()

    def reset(self) -> None:
        """Forget the shot: the next frame becomes the new reference."""
        self._prev_gray: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None
        # The previous output's noise variance over one raw frame's (see update): 1 while it is a raw frame.
        self._noise_ratio = 1.0
        # Diagnostics of the last update: (s, t) applied to the raw disparity (s * raw + t); the share of pixels
        # that passed the forward-backward check; the share that was averaged (passed it and agreed in value);
        # whether too few pixels passed for a fit and the frame was aligned by matching statistics instead.
        self.last_scale_shift: tuple[float, float] = (1.0, 0.0)
        self.last_consistent_fraction: float = 1.0
        self.last_trusted_fraction: float = 1.0
        self.last_fit_fallback: bool = False
        # The flow from the current frame to the previous one (on the current grid) and where the forward-backward
        # check passed: what mask propagation and fill reuse warp with. None on a shot's first frame.
        self.last_flow_to_prev: np.ndarray | None = None
        self.last_consistent: np.ndarray | None = None

    def update(self, gray: np.ndarray, disparity: np.ndarray) -> np.ndarray:
        """Filter the next frame: ``gray`` (h, w) uint8 or float 0..1, ``disparity`` its raw relative disparity
        (finite).

        Returns (h, w) float32 disparity on the shot's (first frame's) scale and shift.
        """
        raw = np.asarray(disparity, dtype=np.float32)
        gray8 = _to_uint8(gray)
        if raw.shape != gray8.shape:
            raise ValueError(f"disparity {raw.shape} and frame {gray8.shape} differ in size")
        if not np.isfinite(raw).all():
            # A non-finite pixel would enter the history and spread with every warp.
            raise ValueError("disparity must be finite everywhere")
        if self._prev_gray is None or self._prev_out is None:
            self.last_flow_to_prev, self.last_consistent = None, None
            self.last_trusted_fraction = 1.0
            self._noise_ratio = 1.0
            return self._keep(gray8, raw.copy(), (1.0, 0.0), 1.0, False)
        if self._prev_gray.shape != gray8.shape:
            raise ValueError(f"frame size changed within a shot ({self._prev_gray.shape} -> {gray8.shape}): reset()")

        flow_to_prev = optical_flow(gray8, self._prev_gray)
        flow_to_cur = optical_flow(self._prev_gray, gray8)
        trusted = consistent(flow_to_prev, flow_to_cur, self.tolerance_px)
        warped = warp(self._prev_out, flow_to_prev)
        fraction = float(trusted.mean())
        self.last_flow_to_prev, self.last_consistent = flow_to_prev, trusted.copy()

        if _enough_pixels(int(trusted.sum()), trusted.size):
            s, t = self._fit(raw, warped, trusted)
            fallback = False
        else:
            # Almost nothing corresponds (an undetected cut, a whip pan): (1, 0) would bring back this frame's
            # own scale, so match robust statistics to the previous output to stay near the shot's mapping.
            s, t = _match_statistics(raw, self._prev_out)
            fallback = True
        aligned = (s * raw + t).astype(np.float32)
        if not fallback:
            trusted &= self._agrees(aligned, warped, trusted)
        # Untrusted pixels (disoccluded, occluded, changed) take the new frame alone: averaging them with the
        # warped previous frame would smear a moving object's disparity over what it uncovers.
        out = np.where(trusted, self.alpha * aligned + (1.0 - self.alpha) * warped, aligned).astype(np.float32)
        self.last_trusted_fraction = float(trusted.mean())
        # Frames' errors are independent, so averaged pixels carry alpha^2 + (1 - alpha)^2 ratio of one frame's
        # noise variance and the others a whole frame's. (Bilinear warping smooths pixel noise a little more,
        # which the fit's box filter mostly undoes; the ratio errs, if at all, high, towards least squares.)
        averaged = self.alpha**2 + (1.0 - self.alpha) ** 2 * self._noise_ratio
        self._noise_ratio = self.last_trusted_fraction * averaged + (1.0 - self.last_trusted_fraction)
        return self._keep(gray8, out, (float(s), float(t)), fraction, fallback)

    def _fit(self, raw: np.ndarray, warped: np.ndarray, trusted: np.ndarray) -> tuple[float, float]:
        """Scale and shift of ``raw`` onto ``warped``, made for a chain of frames.

        Any bias of the fit compounds from frame to frame into a drift of the shot's scale, and two biases
        shrink it by a fraction of a per cent per frame:

        - the source (raw) is noisy too, and least squares shrinks the scale by the noise's share of its
          variance (regression dilution). Both maps are box-filtered first (on windows wholly trusted), which
          divides pixel noise by the window's area, and the fit allows for the noise that remains in both, in
          the ratio the moving average predicts (``noise_ratio``);
        - bilinear warping (and the moving average of warped frames) blurs the history's disparity edges, while
          the raw frame's are sharp: across an edge the history varies less, which reads as a smaller scale.
          Warping and box filtering keep planes exact, so the fit leaves out the windows near non-planar
          pixels of the history (a Laplacian above its noise).
        """
        kernel = np.ones((_FIT_WINDOW, _FIT_WINDOW), np.uint8)
        whole = cv2.erode(trusted.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
        if not _enough_pixels(int(whole.sum()), whole.size):
            # Trusted pixels too scattered for whole windows: fit them one by one.
            return fit_scale_shift(raw, warped, trusted, noise_ratio=self._noise_ratio)
        curvature = np.abs(cv2.Laplacian(cv2.blur(warped, (3, 3), borderType=cv2.BORDER_REPLICATE), cv2.CV_32F))
        sample = curvature[whole]
        # Edges are a small share of a frame: the median reflects noise (half-normal: sigma = 1.4826 median).
        low, high = np.percentile(warped[whole], [10.0, 90.0])
        bound = max(6.0 * _MAD_TO_SIGMA * float(np.median(sample)), 1e-4 * float(high - low), 1e-9)
        near_edge = cv2.dilate((curvature > bound).astype(np.uint8), np.ones((_FIT_WINDOW + 4,) * 2, np.uint8))
        planar = whole & ~near_edge.astype(bool)
        if _enough_pixels(int(planar.sum()), planar.size):
            whole = planar
        raw_mean = cv2.blur(raw, (_FIT_WINDOW, _FIT_WINDOW), borderType=cv2.BORDER_REPLICATE)
        warped_mean = cv2.blur(warped, (_FIT_WINDOW, _FIT_WINDOW), borderType=cv2.BORDER_REPLICATE)
        return fit_scale_shift(raw_mean, warped_mean, whole, noise_ratio=self._noise_ratio)

    def _agrees(self, aligned: np.ndarray, warped: np.ndarray, trusted: np.ndarray) -> np.ndarray:
        """Where the aligned disparity is within ``outlier_sigmas`` robust sigmas of the warped history.

        Dense flow is smooth across a moving object's edge, so the few pixels it uncovers can pass the
        forward-backward check while their flow still points into the object: the warped history there is the
        object's disparity. Their disagreement with the new frame gives them away (noise alone stays within a
        few sigmas). The floor (1 % of the disparity spread) keeps a noise-free sequence from rejecting
        everything over round-off.
        """
        difference = aligned - warped
        values = difference[trusted & np.isfinite(difference)]
        if values.size == 0:
            return np.zeros(aligned.shape, dtype=bool)
        sigma = _MAD_TO_SIGMA * float(np.median(np.abs(values - np.median(values))))
        low, high = np.nanpercentile(warped, [10.0, 90.0])
        bound = max(self.outlier_sigmas * sigma, 0.01 * float(high - low), 1e-6)
        return np.abs(difference) <= bound

    def _keep(
        self, gray8: np.ndarray, out: np.ndarray, scale_shift: tuple[float, float], fraction: float, fallback: bool
    ) -> np.ndarray:
        self._prev_gray, self._prev_out = gray8, out
        self.last_scale_shift, self.last_consistent_fraction, self.last_fit_fallback = scale_shift, fraction, fallback
        # A copy: the caller may modify what it gets without disturbing the next step.
        return out.copy()


# --- measures ------------------------------------------------------------------------------------------------


def depth_jitter(disparities: list[np.ndarray]) -> dict[str, float]:
    """Frame-to-frame jitter of a sequence of disparity maps.

    For each map its median and spread (p90 - p10) of the finite values; the jitter is the root mean square
    of the change between consecutive frames (the standard deviation of the change about zero, so a steady
    drift counts as well as flicker). Keys: ``median_jitter``, ``spread_jitter``, and for scale
    ``median_mean``, ``spread_mean``. Fewer than two maps give zero jitter.
    """
    medians, spreads = [], []
    for disparity in disparities:
        values = np.asarray(disparity, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("a disparity map has no finite value")
        p10, p50, p90 = np.percentile(values, [10.0, 50.0, 90.0])
        medians.append(p50)
        spreads.append(p90 - p10)
    medians_arr, spreads_arr = np.asarray(medians), np.asarray(spreads)

    def rms_change(series: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.diff(series) ** 2))) if series.size >= 2 else 0.0

    return {
        "median_jitter": rms_change(medians_arr),
        "spread_jitter": rms_change(spreads_arr),
        "median_mean": float(medians_arr.mean()) if medians_arr.size else 0.0,
        "spread_mean": float(spreads_arr.mean()) if spreads_arr.size else 0.0,
    }


def warped_error(disparities: list[np.ndarray], grays: list[np.ndarray], tolerance_px: float = 1.0) -> float:
    """Flow-warped error ("OPW"): mean over consecutive pairs of ``|d_t - warp(d_{t-1})|`` on trusted pixels.

    The flow is this module's own (:func:`optical_flow`, both ways, :func:`consistent` with ``tolerance_px``),
    computed on ``grays``. Pairs with no trusted pixel are skipped; fewer than two frames give 0.
    """
    if len(disparities) != len(grays):
        raise ValueError(f"{len(disparities)} disparity maps but {len(grays)} frames")
    errors = []
    for t in range(1, len(disparities)):
        flow_to_prev = optical_flow(grays[t], grays[t - 1])
        flow_to_cur = optical_flow(grays[t - 1], grays[t])
        trusted = consistent(flow_to_prev, flow_to_cur, tolerance_px)
        warped = warp(disparities[t - 1], flow_to_prev)
        difference = np.abs(np.asarray(disparities[t], dtype=np.float32) - warped)
        trusted &= np.isfinite(difference)
        if trusted.any():
            errors.append(float(difference[trusted].mean()))
    return float(np.mean(errors)) if errors else 0.0

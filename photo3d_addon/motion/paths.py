"""Camera path presets for an imported photo: plain math with numpy, no bpy.

Poses are in the package's camera space, which is also the camera's local space in Blender (the camera is
parented to the photo's root with an identity transform): x right, y up, the photo's camera at the origin
looking down -z. A pose is therefore relative to the photo's camera; ``CameraPose()`` is the photo itself.

Time and loops. A path has ``duration_frames`` = N poses, for frames 0..N-1. Without a loop, frame 0 is the
start and frame N-1 the end of the move. With a loop the path is periodic with period N: ``pose_at_frame(N)``
equals frame 0, so playing frames 0..N-1 over and over has no jump and no repeated frame. A loop of DOLLY,
ZOOM, the swings, ORBIT, DOLLY_ZOOM and KEN_BURNS starts at the photo's own pose; CIRCLE and HANDHELD are
centred on it.

Amplitude units, per preset (``safe_amplitude`` gives each one's default):

- DOLLY: metres (scene units) of travel along the view axis, toward the scene for a positive amplitude.
- ZOOM: the zoom factor at the far end of the move (focal multiplier; above 1 zooms in).
- SWING_H, SWING_V: metres of sideways (x) or vertical (y) travel either side of the photo's camera.
- CIRCLE: radius in metres of the circle the camera travels in the x-y plane, always facing forward.
- ORBIT: radians the camera swings either side around a vertical axis through the pivot, aimed at it.
- DOLLY_ZOOM: metres the camera backs away (+z) while zooming in so the pivot plane keeps its size.
- KEN_BURNS: metres of sideways pan; the zoom goes from 1 to ``KEN_BURNS_ZOOM`` meanwhile.
- HANDHELD: metres of the largest positional wobble; the rotation wobble is scaled from it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from ...core.camera import Camera, euler_matrix
from ...core.package import Manifest

PRESETS = ("DOLLY", "ZOOM", "SWING_H", "SWING_V", "CIRCLE", "ORBIT", "DOLLY_ZOOM", "KEN_BURNS", "HANDHELD")
EASINGS = ("LINEAR", "EASE_IN_OUT", "EASE_IN", "EASE_OUT")

SAFE_MARGIN = 0.8
"""Share of the inpainted band a default move may reveal: the band's outer edge is its least reliable part."""
ZOOM_DEFAULT = 1.15
"""A zoom reveals nothing behind the layers, so its default is a matter of taste, not of the band."""
KEN_BURNS_ZOOM = 1.2
HANDHELD_GENTLE = 0.25
"""The default wobble is this share of what the band allows: a wobble, not a move."""
HANDHELD_AIM = 0.5
"""The rotation wobble's amplitude is ``HANDHELD_AIM * amplitude / pivot_depth`` radians: half the turn that
would keep the pivot centred, as a hand framing a subject turns a little toward it."""
HANDHELD_HZ = (0.25, 0.45, 0.8)
"""Typical frequencies of a hand's sway; each is rounded to whole cycles per duration so loops close."""
MAX_OVERSCAN = 2.0
"""``cover_scale`` never zooms in further: past it the move, not the framing, is the problem."""
MAX_AMPLITUDE = 1000.0
"""Largest amplitude magnitude accepted, in the preset's unit: the scene's size is not known up front, and
anything past this (a kilometre, a 1000x zoom, 1000 radians) is a typo, not a camera move."""
MIN_ZOOM = 1e-3
"""ZOOM's amplitude is a focal multiplier raised to a power: zero or negative has no zoom to give."""


@dataclass(frozen=True)
class SceneInfo:
    """What a path needs to know about the photo: its pinhole camera, depth range and inpainted band."""

    width: int
    height: int
    focal_px: float
    depth_min: float
    depth_max: float
    band_fraction: float = 0.08
    """Width of the inpainted band behind nearer layers, as a share of the image width."""
    cx: float | None = None
    """Principal point in source pixels; None = the image centre."""
    cy: float | None = None
    pivot_depth: float | None = None
    """Default pivot/focus depth; None = the harmonic mean of the depth range (see ``default_pivot``)."""
    border_depth: float | None = None
    """Nearest depth of the backdrop along the photo's border, for ``overscan``; None = ``depth_max``."""
    border_px: int = 0
    """Source pixels the backdrop reaches past each edge of the photo (the package's layer 0 ``border``):
    ``overscan`` only zooms in as far as a move would see past that."""

    @property
    def principal_point(self) -> tuple[float, float]:
        return (
            self.width / 2.0 if self.cx is None else float(self.cx),
            self.height / 2.0 if self.cy is None else float(self.cy),
        )

    @property
    def default_pivot(self) -> float:
        """The pivot when none is picked: the harmonic mean of near and far, the depth halfway in parallax,
        so an orbit or dolly-zoom moves the foreground and the background by the same amount."""
        if self.pivot_depth is not None:
            return float(self.pivot_depth)
        near, far = float(self.depth_min), float(self.depth_max)
        return 2.0 * near * far / (near + far)

    @property
    def camera(self) -> Camera:
        """The photo's pinhole camera (``core.camera``), which does every projection here."""
        cx, cy = self.principal_point
        return Camera(int(self.width), int(self.height), float(self.focal_px), cx, cy)

    @property
    def band_px(self) -> float:
        return float(self.band_fraction) * float(self.width)

    @classmethod
    def from_manifest(cls, manifest: Manifest, pivot_depth: float | None = None) -> SceneInfo:
        """What a path needs from a package's typed manifest: camera, depth range, the backdrop layer's
        nearest depth and the inpainted band."""
        camera = manifest.camera
        # The backmost layer fills the frame; the nearest of its depths is where its border can be nearest.
        border = float(manifest.layers[0].depth_range[0]) if manifest.layers else None
        band = manifest.band_fraction
        return cls(
            width=camera.width,
            height=camera.height,
            focal_px=camera.focal_px,
            cx=camera.cx,
            cy=camera.cy,
            depth_min=manifest.depth.min,
            depth_max=manifest.depth.max,
            band_fraction=0.08 if band is None else float(band),
            pivot_depth=pivot_depth,
            border_depth=border,
            border_px=int(manifest.layers[0].border or 0) if manifest.layers else 0,
        )


@dataclass(frozen=True)
class PathSettings:
    """A preset and its options, as the user picks them."""

    preset: str
    amplitude: float | None = None
    """In the preset's unit (see the module docstring); None = ``safe_amplitude``. Larger values are honoured."""
    duration_frames: int = 120
    easing: str = "EASE_IN_OUT"
    loop: bool = False
    pivot_depth: float | None = None
    """Depth of the pivot/focus point on the view axis; None = the scene's default pivot."""
    seed: int = 0
    """HANDHELD only: which wobble."""
    fps: float = 24.0
    """HANDHELD only: the wobble's frequencies are in Hz."""
    overscan: bool = False
    """Zoom in by a constant factor (``cover_scale``) so the photo's frame edges never come into view."""


DEFAULTS = PathSettings("SWING_H", loop=True, overscan=True)
"""What a user gets without choosing: the sidebar's and the batch's camera path."""


@dataclass(frozen=True)
class CameraPose:
    """The camera relative to the photo's camera, in camera-rig space (Blender's camera-local axes).

    ``rotation_euler`` is Blender's XYZ Euler (radians); ``lens_scale`` multiplies the photo's focal length.
    """

    location: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_euler: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lens_scale: float = 1.0


def easing(t: float | np.ndarray, kind: str) -> float | np.ndarray:
    """Map progress ``t`` in [0, 1] to eased progress in [0, 1]: 0 -> 0, 1 -> 1, monotonic.

    Sine-based curves: EASE_IN_OUT is (1 - cos(pi t)) / 2, which makes a looping swing an exact sinusoid.
    """
    t = np.clip(t, 0.0, 1.0)
    if kind == "LINEAR":
        out = t
    elif kind == "EASE_IN_OUT":
        out = (1.0 - np.cos(np.pi * t)) / 2.0
    elif kind == "EASE_IN":
        out = 1.0 - np.cos(np.pi * t / 2.0)
    elif kind == "EASE_OUT":
        out = np.sin(np.pi * t / 2.0)
    else:
        raise ValueError(f"unknown easing {kind!r}; expected one of {', '.join(EASINGS)}")
    return float(out) if np.ndim(out) == 0 else out


def project(pose: CameraPose, info: SceneInfo, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (source resolution, v down) of camera-rig ``points`` (..., 3) seen from ``pose``."""
    return info.camera.project(points, pose.location, euler_matrix(pose.rotation_euler), pose.lens_scale)


def check_amplitude(preset: str, amplitude: float | None) -> None:
    """Refuse an amplitude no path can use: not a number, NaN or infinite (a grey frame, not an error, once
    rendered), past ``MAX_AMPLITUDE``, or a ZOOM factor that is not positive. None means the safe default."""
    if amplitude is None:
        return
    if isinstance(amplitude, bool) or not isinstance(amplitude, numbers.Real):  # numpy floats are Real too
        raise ValueError(f"the amplitude must be a number, not {amplitude!r}")
    # An int is compared before float(): float() of a 400-digit integer overflows.
    if not (isinstance(amplitude, int) or math.isfinite(amplitude)) or abs(amplitude) > MAX_AMPLITUDE:
        raise ValueError(
            f"the amplitude must be finite and within -{MAX_AMPLITUDE:g}..{MAX_AMPLITUDE:g}, not {amplitude}"
        )
    if preset == "ZOOM" and amplitude < MIN_ZOOM:
        raise ValueError(f"a ZOOM amplitude is a zoom factor in {MIN_ZOOM:g}..{MAX_AMPLITUDE:g}, not {amplitude}")


def _validate(settings: PathSettings, info: SceneInfo) -> None:
    if settings.preset not in PRESETS:
        raise ValueError(f"unknown camera path preset {settings.preset!r}; expected one of {', '.join(PRESETS)}")
    check_amplitude(settings.preset, settings.amplitude)
    if settings.easing not in EASINGS:
        raise ValueError(f"unknown easing {settings.easing!r}; expected one of {', '.join(EASINGS)}")
    if settings.duration_frames < 2:
        raise ValueError("a camera path needs at least 2 frames")
    if not 0.0 < info.depth_min <= info.depth_max:
        raise ValueError(f"bad depth range {info.depth_min}..{info.depth_max}")
    if not _pivot(settings, info) > 0.0:
        raise ValueError("the pivot depth must be positive")


def _pivot(settings: PathSettings, info: SceneInfo) -> float:
    return float(settings.pivot_depth) if settings.pivot_depth is not None else info.default_pivot


def _progress(settings: PathSettings, frames: np.ndarray) -> np.ndarray:
    """Path time in [0, 1): frame / N for a loop (periodic), frame / (N - 1) clamped otherwise."""
    n = settings.duration_frames
    if settings.loop:
        return np.mod(frames / n, 1.0)
    return np.clip(frames / (n - 1), 0.0, 1.0)


def _triangle(t: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 over one period."""
    return 1.0 - np.abs(1.0 - 2.0 * np.mod(t, 1.0))


def _one_way(settings: PathSettings, t: np.ndarray) -> np.ndarray:
    """0 at the photo, 1 at the far end; a loop goes there and back."""
    return easing(_triangle(t) if settings.loop else t, settings.easing)


def _two_way(settings: PathSettings, t: np.ndarray) -> np.ndarray:
    """-1 .. 1 symmetric around the photo; a loop starts at 0 (the photo), with EASE_IN_OUT a sinusoid."""
    phase = _triangle(t + 0.25) if settings.loop else t
    return 2.0 * easing(phase, settings.easing) - 1.0


def _handheld_channels(settings: PathSettings, t: np.ndarray) -> np.ndarray:
    """(n, 6) smooth seeded noise in [-1, 1]: x, y, z, rx, ry, rz. Whole cycles per duration, so periodic."""
    rng = np.random.default_rng(settings.seed)
    seconds = settings.duration_frames / max(settings.fps, 1e-6)
    out = np.zeros((t.size, 6))
    for channel in range(6):
        total = 0.0
        for hz in HANDHELD_HZ:
            cycles = max(1, round(hz * rng.uniform(0.7, 1.4) * seconds))
            weight = 1.0 / cycles**0.5
            out[:, channel] += weight * np.sin(2.0 * np.pi * cycles * t + rng.uniform(0.0, 2.0 * np.pi))
            total += weight
        out[:, channel] /= total  # the sum of the weights bounds the sum of the sines
    return out


def _path_arrays(
    settings: PathSettings, info: SceneInfo, frames: np.ndarray, amplitude: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locations (n, 3), XYZ Eulers (n, 3) and lens scales (n,) at ``frames`` for ``amplitude``."""
    t = _progress(settings, np.asarray(frames, dtype=np.float64))
    n = t.size
    location, rotation, lens = np.zeros((n, 3)), np.zeros((n, 3)), np.ones(n)
    pivot = _pivot(settings, info)
    preset, a = settings.preset, float(amplitude)
    if preset == "DOLLY":
        location[:, 2] = -a * _one_way(settings, t)
    elif preset == "ZOOM":
        lens = a ** _one_way(settings, t)  # geometric: a steady zoom rate reads as steady
    elif preset == "SWING_H":
        location[:, 0] = a * _two_way(settings, t)
    elif preset == "SWING_V":
        location[:, 1] = a * _two_way(settings, t)
    elif preset == "CIRCLE":
        # One revolution whatever the loop setting: a circle is closed by nature. Easing shapes its speed.
        angle = 2.0 * np.pi * easing(t, settings.easing)
        location[:, 0], location[:, 1] = a * np.cos(angle), a * np.sin(angle)
    elif preset == "ORBIT":
        theta = a * _two_way(settings, t)
        # Around the vertical axis through (0, 0, -pivot), turned by the same angle: the pivot stays centred.
        location[:, 0], location[:, 2] = pivot * np.sin(theta), pivot * (np.cos(theta) - 1.0)
        rotation[:, 1] = theta
    elif preset == "DOLLY_ZOOM":
        # Backing away while zooming in: the zoom then crops instead of showing past the photo's edges.
        location[:, 2] = a * _one_way(settings, t)
        lens = (pivot + location[:, 2]) / pivot
    elif preset == "KEN_BURNS":
        progress = _one_way(settings, t)
        location[:, 0] = a * progress
        lens = KEN_BURNS_ZOOM**progress
    elif preset == "HANDHELD":
        noise = _handheld_channels(settings, t)
        location[:] = a * noise[:, :3] * np.array([1.0, 1.0, 0.5])
        rotation[:] = HANDHELD_AIM * a / pivot * noise[:, 3:] * np.array([1.0, 1.0, 0.3])
    return location, rotation, lens


def path_amplitude(settings: PathSettings, info: SceneInfo) -> float:
    """The amplitude a path of ``settings`` uses: the one given, else ``safe_amplitude`` for its settings."""
    if settings.amplitude is not None:
        return float(settings.amplitude)
    return safe_amplitude(settings.preset, info, settings)


def _overscan(settings: PathSettings, info: SceneInfo, amplitude: float) -> float:
    """The constant zoom of ``settings.overscan`` (1 without it), from the whole sampled path."""
    if not settings.overscan:
        return 1.0
    frames = np.arange(settings.duration_frames, dtype=np.float64)
    return _cover_scale(*_path_arrays(settings, info, frames, amplitude), info)


def pose_at_frame(settings: PathSettings, info: SceneInfo, frame: float) -> CameraPose:
    """The pose at any (also fractional or out-of-range) frame; a loop's frame N equals frame 0."""
    _validate(settings, info)
    amplitude = path_amplitude(settings, info)
    location, rotation, lens = _path_arrays(settings, info, np.array([float(frame)]), amplitude)
    lens = lens * _overscan(settings, info, amplitude)
    return CameraPose(tuple(location[0].tolist()), tuple(rotation[0].tolist()), float(lens[0]))


def camera_path(settings: PathSettings, info: SceneInfo) -> list[CameraPose]:
    """One pose per frame, frames 0..duration-1, relative to the photo's camera (see the module docstring)."""
    _validate(settings, info)
    amplitude = path_amplitude(settings, info)
    frames = np.arange(settings.duration_frames, dtype=np.float64)
    location, rotation, lens = _path_arrays(settings, info, frames, amplitude)
    lens = lens * _overscan(settings, info, amplitude)
    rows = zip(location.tolist(), rotation.tolist(), lens.tolist(), strict=True)
    return [CameraPose(tuple(p), tuple(r), float(s)) for p, r, s in rows]


def _cover_scale(location: np.ndarray, rotation: np.ndarray, lens: np.ndarray, info: SceneInfo) -> float:
    border = float(info.border_depth) if info.border_depth is not None else float(info.depth_max)
    camera = info.camera
    centre = np.array(camera.principal_point)
    image = np.array([[0.0, 0.0], [info.width, 0.0], [info.width, info.height], [0.0, info.height]])
    frame = np.array(camera.extended(info.border_px).frustum_corners(border))
    scale = 1.0
    for c, r, s in zip(location, rotation, lens, strict=True):
        quad = project(CameraPose(tuple(c), tuple(r), float(s)), info, frame)
        middle = quad.mean(axis=0)
        for q0, q1 in zip(quad, np.roll(quad, -1, axis=0), strict=True):
            normal = np.array([q0[1] - q1[1], q1[0] - q0[0]])
            if normal @ (middle - q0) < 0.0:
                normal = -normal  # point it into the frame
            inside = normal @ (centre - q0)
            if inside <= 0.0:
                return MAX_OVERSCAN  # the view's centre has left the photo's frame
            # Image corner r, scaled by 1/k about the centre, is inside this edge when k >= -n.(r - c) / n.(c - q0).
            scale = max(scale, float(np.max(-(image - centre) @ normal)) / inside)
    return min(scale, MAX_OVERSCAN)


def cover_scale(poses: Iterable[CameraPose], info: SceneInfo) -> float:
    """The constant lens multiplier (>= 1, at most ``MAX_OVERSCAN``) that keeps the photo's frame, at the
    backdrop's border depth, filling the view in every pose: no empty strip past the photo's edges."""
    poses = list(poses)
    location = np.array([p.location for p in poses], dtype=np.float64).reshape(-1, 3)
    rotation = np.array([p.rotation_euler for p in poses], dtype=np.float64).reshape(-1, 3)
    lens = np.array([p.lens_scale for p in poses], dtype=np.float64)
    return _cover_scale(location, rotation, lens, info)


def reveal_px(locations: np.ndarray, info: SceneInfo) -> np.ndarray:
    """For camera centres (n, 3), the widest strip of the farthest content uncovered behind the nearest, in
    photo pixels (the unit of the inpainted band).

    For a photo pixel, the near point and the far point behind it line up from the photo's camera; from a
    camera centre C they part. The far point now seen past the near one's edge, projected back into the photo,
    lies this many pixels from the original: f * |t| * (1/z_near - 1/z_far) for a sideways move t. Rotation and
    zoom only turn the rays about C and uncover nothing, so only C matters. Sampled over a grid of the image.
    """
    centres = np.asarray(locations, dtype=np.float64).reshape(-1, 1, 3)
    near, far = float(info.depth_min), float(info.depth_max)
    camera = info.camera
    u, v = np.meshgrid(np.linspace(0.0, info.width, 7), np.linspace(0.0, info.height, 5))
    u, v = u.ravel(), v.ravel()
    near_points = camera.unproject(u, v, np.full_like(u, near))
    # Where the ray from C through the near point meets the far plane z = -far.
    scale = (far + centres[..., 2]) / np.maximum(near + centres[..., 2], 1e-9)
    hits = centres + scale[..., None] * (near_points[None] - centres)
    # Back into the photo: the hit on the far plane, seen from the photo's own camera.
    moved = camera.project(hits) - np.stack([u, v], axis=-1)[None]
    return np.hypot(moved[..., 0], moved[..., 1]).max(axis=1)


def max_reveal_px(poses: Iterable[CameraPose], info: SceneInfo) -> float:
    """The widest uncovered strip over a path, in photo pixels; compare with ``info.band_px``."""
    locations = np.array([pose.location for pose in poses], dtype=np.float64)
    return float(reveal_px(locations, info).max()) if len(locations) else 0.0


def reveal_ratio(settings: PathSettings, info: SceneInfo) -> float:
    """How much of the inpainted band a path uncovers at most (1.0 = all of it); above 1 shows unfilled gaps."""
    if info.band_px <= 0.0:
        return math.inf
    return max_reveal_px(camera_path(settings, info), info) / info.band_px


_SEARCH_LIMITS = {
    # Upper ends for the search, per unit of the near depth (or radians): past these a move stops making sense.
    "DOLLY": 0.9,
    "SWING_H": 4.0,
    "SWING_V": 4.0,
    "CIRCLE": 4.0,
    "DOLLY_ZOOM": 4.0,
    "KEN_BURNS": 4.0,
    "HANDHELD": 4.0,
}


def safe_amplitude(
    preset: str, info: SceneInfo, settings: PathSettings | None = None, margin: float = SAFE_MARGIN
) -> float:
    """The default amplitude (in the preset's unit): the largest move whose uncovered strips stay within
    ``margin`` of the inpainted band (``band_fraction * width`` photo pixels), found by bisection on the
    sampled path. ZOOM uncovers nothing and gets ``ZOOM_DEFAULT``; HANDHELD gets ``HANDHELD_GENTLE`` of it.

    It shrinks as the near content comes closer or the depth range widens; ``settings`` (duration, loop,
    easing, seed, pivot) are those of the path it is for, defaults otherwise.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown camera path preset {preset!r}")
    if preset == "ZOOM":
        return ZOOM_DEFAULT
    base = replace(settings, preset=preset, amplitude=None) if settings else PathSettings(preset)
    _validate(base, info)
    budget = margin * info.band_px
    frames = np.arange(base.duration_frames, dtype=np.float64)

    def reveal(amplitude: float) -> float:
        return float(reveal_px(_path_arrays(base, info, frames, amplitude)[0], info).max())

    high = math.pi / 3.0 if preset == "ORBIT" else _SEARCH_LIMITS[preset] * float(info.depth_min)
    if budget <= 0.0:
        return 0.0
    if reveal(high) <= budget:
        found = high
    else:
        low = 0.0
        for _ in range(60):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if reveal(middle) <= budget else (low, middle)
        found = low
    return found * HANDHELD_GENTLE if preset == "HANDHELD" else found


def focus_distances(poses: Iterable[CameraPose], point: Iterable[float]) -> list[float]:
    """Distance along each pose's view axis to ``point`` (camera-rig space): what Blender's DoF focus
    distance must be for the point to stay sharp while the camera moves."""
    target = np.asarray(list(point), dtype=np.float64)
    out = []
    for pose in poses:
        local = euler_matrix(pose.rotation_euler).T @ (target - np.asarray(pose.location))
        out.append(float(max(-local[2], 1e-6)))
    return out


def sample_depth(depth: np.ndarray, info: SceneInfo, u: float, v: float) -> float:
    """Depth of the working-resolution map ``depth`` (h, w) at source pixel (u, v) (origin top-left, v down)."""
    h, w = depth.shape[:2]
    col = min(max(int(u * w / info.width), 0), w - 1)
    row = min(max(int(v * h / info.height), 0), h - 1)
    return float(depth[row, col])

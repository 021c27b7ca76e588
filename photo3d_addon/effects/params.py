"""Weather and particle effects as numbers: what each effect is, where its particles start, how they move.

Plain numpy, no bpy. ``effects`` turns these into Blender objects whose motion a geometry-nodes group
computes from the scene time, so the .blend renders the same with or without the add-on.

Scale: a photo's depth may be metric (a depth file) or arbitrary (a monocular model), so sizes and speeds
are in *frame heights at the pivot depth*: rain at speed 1 crosses the frame in about 0.4 s whatever the
scene's units. ``wind`` is in frame heights per second, to the right.

Particles live in the photo camera's frustum between two depths of the scene (``near`` and ``far``, as
fractions of the effect's depth span), so nearer layers hide the ones behind them. A particle's rest
position is stored as (u, v, d): ``u = x / d`` and ``v = y / d`` are its tangent coordinates in the photo
camera and ``d`` its depth; the motion wraps u and v inside the frame (plus a margin for camera moves).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..motion.paths import SceneInfo

EFFECTS = ("RAIN", "SNOW", "FOG", "DUST", "HALOS")
PARTICLE_EFFECTS = ("RAIN", "SNOW", "DUST", "HALOS")


@dataclass(frozen=True)
class EffectKind:
    """An effect's natural look, before the user's multipliers."""

    max_count: int
    """Particles at amount 1."""
    fall_speed: float
    """Frame heights per second, downwards (negative rises)."""
    radius: float
    """Sprite half-width, in frame heights at the pivot depth."""
    stretch: float
    """Sprite length / width. Rain: the distance a drop falls while the shutter is open (baked motion blur)."""
    sway: tuple[float, float]
    """Horizontal and vertical wander, frame heights."""
    sway_rate: float
    """Hz."""
    colour: tuple[float, float, float]
    opacity: float
    softness: float
    """Exponent of the radial falloff: 1 is a cone, larger is softer at the rim."""
    near: float
    far: float
    """Default depth band, as fractions of the effect's depth span."""
    amount: float
    """Default amount: what the sidebar, the batch and ``parse_effect`` start from."""


KINDS: dict[str, EffectKind] = {
    "RAIN": EffectKind(6000, 2.5, 0.0012, 1.0, (0.0, 0.0), 0.0, (0.78, 0.82, 0.9), 0.55, 1.0, 0.0, 1.0, 0.6),
    "SNOW": EffectKind(3000, 0.08, 0.004, 1.0, (0.012, 0.004), 0.35, (1.0, 1.0, 1.0), 0.9, 1.5, 0.0, 1.0, 0.6),
    "FOG": EffectKind(0, 0.0, 0.0, 1.0, (0.0, 0.0), 0.0, (0.8, 0.82, 0.86), 1.0, 1.0, 0.0, 1.0, 0.35),
    "DUST": EffectKind(1500, -0.004, 0.0035, 1.0, (0.02, 0.015), 0.12, (1.0, 0.92, 0.75), 1.0, 1.5, 0.0, 0.7, 0.6),
    "HALOS": EffectKind(40, -0.01, 0.06, 1.0, (0.01, 0.01), 0.05, (1.0, 0.85, 0.6), 0.6, 2.5, 0.0, 0.12, 0.5),
}

LIMITS: dict[str, tuple[float, float]] = {
    "amount": (0.0, 1.0),
    "speed": (0.0, 20.0),
    "size": (0.01, 50.0),
    "wind": (-20.0, 20.0),
}
"""Every effect's number ranges: the sidebar's properties and ``validate`` both use them."""

FRAME_MARGIN = 0.2
"""Extra frame, each side, as a share of the frame's size: camera moves and overscan stay covered."""
NEAR_START = 0.35
"""Effects begin at this share of the scene's nearest depth: some rain falls in front of everything."""
RAIN_FALL_SHUTTER = 1.0 / 48.0
"""A streak is as long as a drop falls in half a 24 fps frame: the look of a 180-degree shutter."""


class EffectError(ValueError):
    """An effect setting that can't be used; the message names it."""


@dataclass(frozen=True)
class EffectSettings:
    """One effect as the user sets it. Multipliers are relative to the effect's natural look (``KINDS``)."""

    kind: str
    amount: float | None = None
    """0-1: particle count as a share of the effect's maximum; for fog, its opacity at the far depth.
    None = the kind's default (``KINDS[kind].amount``)."""
    speed: float = 1.0
    """Multiplies the natural fall speed (fog: its drift)."""
    size: float = 1.0
    """Multiplies the natural sprite size (fog: the size of its wisps)."""
    colour: tuple[float, float, float] | None = None
    """Linear RGB 0-1; None = the effect's natural colour."""
    wind: float = 0.0
    """Frame heights per second to the right (negative: to the left)."""
    near: float | None = None
    far: float | None = None
    """Depth band as fractions (0-1) of the span from in front of the nearest layer to the backdrop."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.amount is None and self.kind in KINDS:
            object.__setattr__(self, "amount", KINDS[self.kind].amount)

    def resolved_colour(self) -> tuple[float, float, float]:
        return tuple(float(c) for c in (self.colour or KINDS[self.kind].colour))  # type: ignore[return-value]

    def band(self) -> tuple[float, float]:
        natural = KINDS[self.kind]
        return (
            natural.near if self.near is None else float(self.near),
            natural.far if self.far is None else float(self.far),
        )


FIELDS = ("amount", "speed", "size", "colour", "wind", "near", "far", "seed")


def validate(settings: EffectSettings) -> EffectSettings:
    """Return ``settings`` if usable, else raise EffectError naming the bad value."""
    if settings.kind not in KINDS:
        raise EffectError(f"unknown effect {settings.kind!r} (choose from {', '.join(EFFECTS)})")
    name = settings.kind.lower()
    for label in ("amount", "speed", "size", "wind"):
        value, (low, high) = getattr(settings, label), LIMITS[label]
        if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
            unit = " frame heights per second" if label == "wind" else ""
            raise EffectError(f"{name} {label} must be between {low:g} and {high:g}{unit}, got {value}")
    if settings.colour is not None:
        colour = tuple(settings.colour)
        if len(colour) != 3 or not all(isinstance(c, (int, float)) and 0.0 <= c <= 1.0 for c in colour):
            raise EffectError(f"{name} colour must be three numbers between 0 and 1, got {settings.colour}")
    near, far = settings.band()
    if not (0.0 <= near < far <= 1.0):
        raise EffectError(f"{name} depth band must satisfy 0 <= near < far <= 1, got near {near}, far {far}")
    if int(settings.seed) != settings.seed or settings.seed < 0:
        raise EffectError(f"{name} seed must be a whole number >= 0, got {settings.seed}")
    return settings


def parse_effect(spec: str | Mapping[str, Any]) -> EffectSettings:
    """An effect from ``"rain"``, ``"rain:amount=0.8:wind=0.3"`` or ``{"kind": "rain", "amount": 0.8}``.

    Colours in a string are ``colour=1,0.9,0.8``. Unknown names and bad values raise EffectError.
    """
    if isinstance(spec, Mapping):
        data = dict(spec)
        kind = str(data.pop("kind", "")).upper()
    elif isinstance(spec, str):
        head, *parts = [p.strip() for p in spec.split(":")]
        kind, data = head.upper(), {}
        for part in parts:
            key, sep, value = part.partition("=")
            if not sep:
                raise EffectError(f"effect option {part!r} in {spec!r} must be name=value")
            data[key.strip()] = value.strip()
    else:
        raise EffectError(f"an effect must be a name or an object, got {spec!r}")
    if kind not in KINDS:
        raise EffectError(f"unknown effect {kind.lower()!r} (choose from {', '.join(e.lower() for e in EFFECTS)})")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise EffectError(f"{kind.lower()}: unknown options {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    values: dict[str, Any] = {}
    try:
        for key, value in data.items():
            if key == "colour":
                parts = value.split(",") if isinstance(value, str) else list(value)
                values[key] = tuple(float(v) for v in parts)
            elif key == "seed":
                values[key] = int(value)
            else:
                values[key] = float(value)
    except (TypeError, ValueError) as exc:
        raise EffectError(f"{kind.lower()}: bad value in {spec!r} ({exc})") from exc
    return validate(EffectSettings(kind, **values))


def parse_effects(specs: Iterable[str | Mapping[str, Any]]) -> list[EffectSettings]:
    """Several effects (see ``parse_effect``); one effect of each kind, the last one given wins."""
    chosen: dict[str, EffectSettings] = {}
    for spec in specs:
        effect = parse_effect(spec)
        chosen[effect.kind] = effect
    return list(chosen.values())


@dataclass(frozen=True)
class Frustum:
    """Where effects may be: the photo camera's tangent-space frame (with margin) and the depth span."""

    u_range: tuple[float, float]
    v_range: tuple[float, float]
    depth_start: float
    depth_end: float
    pivot: float
    frame_height: float
    """Frame height in scene units at the pivot depth."""

    @classmethod
    def from_scene(cls, info: SceneInfo, pivot_depth: float | None = None) -> Frustum:
        left, right, bottom, top = info.camera.slopes()  # the frame at unit depth
        u, v = (left, right), (bottom, top)
        du, dv = FRAME_MARGIN * (u[1] - u[0]), FRAME_MARGIN * (v[1] - v[0])
        pivot = float(pivot_depth if pivot_depth is not None else info.default_pivot)
        # In front of the backdrop (which writes depth) so nothing is buried inside it.
        end = 0.98 * float(info.depth_max)
        start = NEAR_START * float(info.depth_min)
        return cls(
            u_range=(u[0] - du, u[1] + du),
            v_range=(v[0] - dv, v[1] + dv),
            depth_start=start,
            depth_end=max(end, start * 1.01),
            pivot=pivot,
            frame_height=(top - bottom) * pivot,
        )

    def depth_band(self, near: float, far: float) -> tuple[float, float]:
        span = self.depth_end - self.depth_start
        return self.depth_start + near * span, self.depth_start + far * span


@dataclass(frozen=True)
class ParticleLayout:
    """Everything the particle node group and material need for one effect."""

    points: np.ndarray
    """(N, 3) float32 rest positions as (u, v, depth)."""
    velocity: tuple[float, float, float]
    """Scene units per second in camera space (x right, y up)."""
    sway: tuple[float, float, float]
    sway_rate: float
    sprite_size: tuple[float, float, float]
    """Half-width, half-length (scene units, at or nearer than ``size_depth``), 1."""
    sprite_angle: float
    """Radians about the view axis: streaks lie along the velocity."""
    size_depth: float
    """Beyond this depth sprites grow with depth, so far particles keep a visible size on screen."""
    u_range: tuple[float, float]
    v_range: tuple[float, float]
    origin_depth: float
    """Where the object's origin sits on the view axis (its draw order among blended layers)."""
    colour: tuple[float, float, float]
    opacity: float
    softness: float
    seed: int


def _depths(rng: np.random.Generator, count: int, a: float, b: float) -> np.ndarray:
    """Depths with density growing as depth squared: uniform per unit volume of the frustum."""
    cubes = rng.uniform(a**3, b**3, count)
    return np.cbrt(cubes)


def particle_layout(settings: EffectSettings, frustum: Frustum) -> ParticleLayout:
    """Rest positions and motion of one particle effect in ``frustum``, the same for the same seed."""
    settings = validate(settings)
    if settings.kind not in PARTICLE_EFFECTS:
        raise EffectError(f"{settings.kind.lower()} is not a particle effect")
    natural = KINDS[settings.kind]
    rng = np.random.default_rng([int(settings.seed), EFFECTS.index(settings.kind)])
    count = int(round(natural.max_count * settings.amount))
    a, b = frustum.depth_band(*settings.band())
    depth = _depths(rng, count, a, b)
    u = rng.uniform(*frustum.u_range, count)
    v = rng.uniform(*frustum.v_range, count)
    points = np.stack([u, v, depth], axis=1).astype(np.float32)

    unit = frustum.frame_height
    fall = natural.fall_speed * settings.speed * unit
    wind = settings.wind * unit
    velocity = (wind, -fall, 0.0)
    half_width = natural.radius * settings.size * unit
    if settings.kind == "RAIN":
        # The streak is the path of the drop while the shutter is open: motion blur that any renderer shows.
        half_length = max(half_width, 0.5 * math.hypot(wind, fall) * RAIN_FALL_SHUTTER)
        # The sprite's long axis is +y; turned by atan2(wind, fall) it lies along the velocity (wind, -fall).
        angle = math.atan2(wind, fall)
    else:
        half_length = half_width * natural.stretch
        angle = 0.0
    return ParticleLayout(
        points=points,
        velocity=velocity,
        sway=(natural.sway[0] * unit, natural.sway[1] * unit, 0.0),
        sway_rate=natural.sway_rate * max(settings.speed, 1e-3),
        sprite_size=(half_width, half_length, 1.0),
        sprite_angle=angle,
        size_depth=frustum.pivot,
        u_range=frustum.u_range,
        v_range=frustum.v_range,
        origin_depth=float(np.median(depth)) if count else 0.5 * (a + b),
        colour=settings.resolved_colour(),
        opacity=natural.opacity,
        softness=natural.softness,
        seed=int(settings.seed),
    )


def positions_at(layout: ParticleLayout, seconds: float, phases: np.ndarray | None = None) -> np.ndarray:
    """Camera-space particle centres at ``seconds``: the node group's motion, in numpy (for tests and tools).

    ``phases`` are the per-particle sway phases (the node group draws them from its seed); zero if None.
    """
    u, v, d = layout.points[:, 0].astype(np.float64), layout.points[:, 1], layout.points[:, 2]
    phase = np.zeros(len(u)) if phases is None else phases
    angle = 2.0 * math.pi * layout.sway_rate * seconds + phase
    dx = layout.velocity[0] * seconds + layout.sway[0] * np.sin(angle)
    dy = layout.velocity[1] * seconds + layout.sway[1] * np.cos(1.3 * angle)
    nu = _wrap(u + dx / d, *layout.u_range)
    nv = _wrap(v + dy / d, *layout.v_range)
    return np.stack([nu * d, nv * d, -d], axis=1)


def _wrap(value: np.ndarray, low: float, high: float) -> np.ndarray:
    return low + np.mod(value - low, high - low)


@dataclass(frozen=True)
class FogLayout:
    """The fog node group's constants: opacity grows as 1 - exp(-density * (distance - start))."""

    density: float
    start: float
    colour: tuple[float, float, float]
    noise_scale: float
    """Wisps per scene unit."""
    noise_amount: float
    """0: even fog; 1: density varies from nothing to twice the mean."""
    drift: tuple[float, float, float]
    """Scene units per second, camera space."""


FOG_NOISE = 0.6


def fog_layout(settings: EffectSettings, frustum: Frustum) -> FogLayout:
    """Exponential fog reaching opacity ``amount`` at the far end of the effect's depth band."""
    settings = validate(settings)
    if settings.kind != "FOG":
        raise EffectError(f"{settings.kind.lower()} is not fog")
    near, far = frustum.depth_band(*settings.band())
    opacity = min(float(settings.amount), 0.995)
    density = -math.log(1.0 - opacity) / max(far - near, 1e-9)
    unit = frustum.frame_height
    wisp = 0.5 * settings.size * unit  # a wisp about half a frame high at the pivot
    drift_speed = 0.03 * settings.speed * unit
    return FogLayout(
        density=density,
        start=near,
        colour=settings.resolved_colour(),
        noise_scale=1.0 / max(wisp, 1e-9),
        noise_amount=FOG_NOISE,
        drift=(settings.wind * unit + drift_speed, 0.2 * drift_speed, 0.0),
    )


def fog_opacity(layout: FogLayout, distance: float | np.ndarray) -> float | np.ndarray:
    """Opacity of even fog (no wisps) in front of a surface at ``distance`` from the camera."""
    travelled = np.maximum(np.asarray(distance, dtype=np.float64) - layout.start, 0.0)
    return 1.0 - np.exp(-layout.density * travelled)

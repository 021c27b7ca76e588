"""Effects, pure math: settings parsing and checks, seeded particle layouts inside the photo's frustum, the
motion the node group reproduces, streaks along the motion, and fog that reaches its amount at the far end.
No Blender needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.pure_addon import addon

fx = addon("effects.params")
cp = addon("motion.paths")

INFO = cp.SceneInfo(width=741, height=500, focal_px=994.978, depth_min=2.0, depth_max=5.0, cx=380.0, cy=240.0)
FRUSTUM = fx.Frustum.from_scene(INFO)


def test_parse_names_options_and_objects():
    rain = fx.parse_effect("Rain:amount=0.8:wind=-0.3:colour=1,0.5,0.25:seed=4")
    assert (rain.kind, rain.amount, rain.wind, rain.colour, rain.seed) == ("RAIN", 0.8, -0.3, (1.0, 0.5, 0.25), 4)
    fog = fx.parse_effect({"kind": "fog", "amount": 0.3, "near": 0.1, "far": 0.9})
    assert (fog.kind, fog.amount, fog.band()) == ("FOG", 0.3, (0.1, 0.9))
    assert fx.parse_effect("snow").band() == (fx.KINDS["SNOW"].near, fx.KINDS["SNOW"].far)
    # One of each kind; the last one given wins.
    chosen = fx.parse_effects(["rain:amount=0.2", "fog", "rain:amount=0.9"])
    assert [(e.kind, e.amount) for e in chosen] == [("RAIN", 0.9), ("FOG", fx.KINDS["FOG"].amount)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hail", "unknown effect 'hail'"),
        ("rain:gust=2", "unknown options gust"),
        ("rain:amount", "must be name=value"),
        ("rain:amount=1.5", "rain amount must be between 0 and 1"),
        ("snow:speed=-1", "snow speed must be between"),
        ("dust:size=0", "dust size must be between"),
        ("fog:near=0.8:far=0.2", "fog depth band must satisfy"),
        ("halos:colour=1,2,3", "halos colour must be three numbers between 0 and 1"),
        ("rain:wind=abc", "rain: bad value"),
        ("rain:seed=-2", "rain seed must be a whole number"),
        ("rain:amount=nan", "rain amount"),
        (42, "an effect must be a name or an object"),
    ],
)
def test_bad_settings_are_named(spec, message):
    with pytest.raises(fx.EffectError, match=message):
        fx.parse_effect(spec)


def test_frustum_covers_the_frame_with_margin_and_spans_the_depths():
    # Frame edges in tangent space, off-centre principal point included.
    left, right = (0 - 380.0) / 994.978, (741 - 380.0) / 994.978
    bottom, top = -(500 - 240.0) / 994.978, 240.0 / 994.978
    assert FRUSTUM.u_range[0] < left < right < FRUSTUM.u_range[1]
    assert FRUSTUM.v_range[0] < bottom < top < FRUSTUM.v_range[1]
    margin = fx.FRAME_MARGIN * (right - left)
    assert FRUSTUM.u_range[0] == pytest.approx(left - margin)
    # From in front of the nearest layer to just before the backdrop.
    assert FRUSTUM.depth_start == pytest.approx(fx.NEAR_START * 2.0) and FRUSTUM.depth_end == pytest.approx(4.9)
    assert FRUSTUM.pivot == pytest.approx(INFO.default_pivot)
    assert FRUSTUM.frame_height == pytest.approx(500 * INFO.default_pivot / 994.978)


@pytest.mark.parametrize("kind", fx.PARTICLE_EFFECTS)
def test_layout_is_seeded_counted_and_inside_its_band(kind):
    effect = fx.EffectSettings(kind, amount=0.5, near=0.25, far=0.75, seed=3)
    layout = fx.particle_layout(effect, FRUSTUM)
    again = fx.particle_layout(effect, FRUSTUM)
    other = fx.particle_layout(fx.EffectSettings(kind, amount=0.5, near=0.25, far=0.75, seed=4), FRUSTUM)
    assert np.array_equal(layout.points, again.points)
    assert not np.array_equal(layout.points, other.points)
    assert len(layout.points) == round(0.5 * fx.KINDS[kind].max_count)
    low, high = FRUSTUM.depth_band(0.25, 0.75)
    u, v, d = layout.points.T
    assert d.min() >= low - 1e-5 and d.max() <= high + 1e-5
    assert u.min() >= FRUSTUM.u_range[0] and u.max() <= FRUSTUM.u_range[1]
    assert v.min() >= FRUSTUM.v_range[0] and v.max() <= FRUSTUM.v_range[1]
    assert low <= layout.origin_depth <= high
    assert fx.particle_layout(fx.EffectSettings(kind, amount=0.0), FRUSTUM).points.shape == (0, 3)


def test_depths_fill_the_frustum_evenly_by_volume():
    layout = fx.particle_layout(fx.EffectSettings("RAIN", amount=1.0, near=0.0, far=1.0), FRUSTUM)
    a, b = FRUSTUM.depth_start, FRUSTUM.depth_end
    # Half the frustum's volume lies beyond the depth whose cube is halfway between a^3 and b^3.
    half = np.cbrt(0.5 * (a**3 + b**3))
    share = float((layout.points[:, 2] > half).mean())
    assert share == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("wind", [0.0, 0.4, -0.7])
def test_rain_streaks_lie_along_the_motion_and_span_half_a_frame_of_fall(wind):
    layout = fx.particle_layout(fx.EffectSettings("RAIN", wind=wind), FRUSTUM)
    vx, vy, _ = layout.velocity
    assert vy < 0 and vx == pytest.approx(wind * FRUSTUM.frame_height)
    # The sprite's long axis (+y) turned by sprite_angle about z.
    axis = np.array([-math.sin(layout.sprite_angle), math.cos(layout.sprite_angle)])
    direction = np.array([vx, vy]) / math.hypot(vx, vy)
    assert abs(float(axis @ direction)) == pytest.approx(1.0)
    assert layout.sprite_size[1] == pytest.approx(0.5 * math.hypot(vx, vy) * fx.RAIN_FALL_SHUTTER)
    assert layout.sprite_size[1] > 5 * layout.sprite_size[0]


def test_speed_size_and_colour_scale_the_natural_look():
    base = fx.particle_layout(fx.EffectSettings("SNOW"), FRUSTUM)
    faster = fx.particle_layout(fx.EffectSettings("SNOW", speed=2.0, size=3.0, colour=(0.1, 0.2, 0.3)), FRUSTUM)
    assert faster.velocity[1] == pytest.approx(2.0 * base.velocity[1])
    assert faster.sprite_size[0] == pytest.approx(3.0 * base.sprite_size[0])
    assert faster.colour == (0.1, 0.2, 0.3) and base.colour == fx.KINDS["SNOW"].colour


def test_motion_falls_by_the_velocity_and_wraps_inside_the_frame():
    layout = fx.particle_layout(fx.EffectSettings("RAIN", amount=0.1, wind=0.5), FRUSTUM)
    start = fx.positions_at(layout, 0.0)
    u, v, d = layout.points.T.astype(np.float64)
    assert np.allclose(start, np.stack([u * d, v * d, -d], axis=1))
    dt = 0.01  # short enough that few particles wrap
    moved = fx.positions_at(layout, dt)
    step = moved - start
    unwrapped = np.abs(step[:, 1] - layout.velocity[1] * dt) < 1e-9
    assert unwrapped.mean() > 0.9
    assert np.allclose(step[unwrapped, 0], layout.velocity[0] * dt)
    assert np.array_equal(moved[:, 2], start[:, 2])  # particles keep their depth
    # Long after, every particle is still inside the frame (with margin).
    later = fx.positions_at(layout, 123.4)
    assert np.all(later[:, 0] / d >= FRUSTUM.u_range[0] - 1e-9) and np.all(later[:, 0] / d <= FRUSTUM.u_range[1])
    assert np.all(later[:, 1] / d >= FRUSTUM.v_range[0] - 1e-9) and np.all(later[:, 1] / d <= FRUSTUM.v_range[1])


def test_fog_reaches_its_amount_at_the_far_end_and_nothing_before_its_start():
    effect = fx.EffectSettings("FOG", amount=0.4, near=0.2, far=0.8)
    layout = fx.fog_layout(effect, FRUSTUM)
    near, far = FRUSTUM.depth_band(0.2, 0.8)
    assert layout.start == pytest.approx(near)
    assert fx.fog_opacity(layout, near) == pytest.approx(0.0)
    assert fx.fog_opacity(layout, far) == pytest.approx(0.4)
    assert fx.fog_opacity(layout, 0.5 * near) == 0.0
    distances = np.linspace(near, 2 * far, 20)
    assert np.all(np.diff(fx.fog_opacity(layout, distances)) > 0)
    assert 0.0 < layout.noise_amount < 1.0
    with pytest.raises(fx.EffectError, match="not fog"):
        fx.fog_layout(fx.EffectSettings("RAIN"), FRUSTUM)
    with pytest.raises(fx.EffectError, match="not a particle effect"):
        fx.particle_layout(effect, FRUSTUM)

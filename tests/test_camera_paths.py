"""Camera path presets, pure math: each preset moves as named, loops close, the default amplitude keeps what
the camera uncovers inside the inpainted band. No Blender needed."""

from __future__ import annotations

import numpy as np
import pytest

from core.package import parse_manifest
from tests.manifests import manifest_dict
from tests.pure_addon import addon

cp = addon("motion.paths")

# The Motorcycle package's camera and depth range (see out/motorcycle_layers/manifest.json).
INFO = cp.SceneInfo(width=741, height=500, focal_px=994.978, depth_min=2.04, depth_max=5.28, band_fraction=0.08)
N = 48


def _arrays(poses) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([p.location for p in poses]),
        np.array([p.rotation_euler for p in poses]),
        np.array([p.lens_scale for p in poses]),
    )


def _path(preset: str, **kwargs):
    kwargs.setdefault("duration_frames", N)
    return cp.camera_path(cp.PathSettings(preset, **kwargs), INFO)


def _state(pose) -> np.ndarray:
    return np.array([*pose.location, *pose.rotation_euler, pose.lens_scale])


# -- easing -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", cp.EASINGS)
def test_easing_endpoints_and_monotonic(kind):
    assert cp.easing(0.0, kind) == pytest.approx(0.0, abs=1e-12)
    assert cp.easing(1.0, kind) == pytest.approx(1.0, abs=1e-12)
    values = cp.easing(np.linspace(0.0, 1.0, 201), kind)
    assert np.all(np.diff(values) >= -1e-12)
    assert cp.easing(-0.5, kind) == pytest.approx(0.0, abs=1e-12) and cp.easing(2.0, kind) == pytest.approx(1.0)


def test_easing_shapes():
    assert cp.easing(0.5, "EASE_IN_OUT") == pytest.approx(0.5)
    assert cp.easing(0.25, "EASE_IN") < 0.25 < cp.easing(0.25, "EASE_OUT")
    with pytest.raises(ValueError, match="easing"):
        cp.easing(0.5, "BOUNCE")


# -- each preset moves as named -----------------------------------------------------------------------------
def test_dolly_moves_along_the_view_axis_toward_the_scene_first():
    location, rotation, lens = _arrays(_path("DOLLY", amplitude=0.3))
    assert np.allclose(location[:, :2], 0.0) and np.allclose(rotation, 0.0) and np.allclose(lens, 1.0)
    assert location[1, 2] < 0.0 and location[-1, 2] == pytest.approx(-0.3)
    assert np.all(np.diff(location[:, 2]) <= 1e-12)
    looped, _, _ = _arrays(_path("DOLLY", amplitude=0.3, loop=True))
    assert looped[0, 2] == 0.0 and looped[1, 2] < 0.0 and looped[:, 2].min() == pytest.approx(-0.3)
    assert looped[-1, 2] > looped[N // 2, 2]  # and back


def test_zoom_changes_only_the_lens():
    location, rotation, lens = _arrays(_path("ZOOM", amplitude=1.3))
    assert np.allclose(location, 0.0) and np.allclose(rotation, 0.0)
    assert lens[0] == pytest.approx(1.0) and lens[-1] == pytest.approx(1.3)
    assert np.all(np.diff(lens) > 0.0)


@pytest.mark.parametrize(("preset", "axis"), [("SWING_H", 0), ("SWING_V", 1)])
def test_swing_translates_along_its_axis_only(preset, axis):
    location, rotation, lens = _arrays(_path(preset, amplitude=0.2))
    others = [i for i in range(3) if i != axis]
    assert np.allclose(location[:, others], 0.0) and np.allclose(rotation, 0.0) and np.allclose(lens, 1.0)
    # Symmetric around the photo's camera: -a .. a without a loop.
    assert location[0, axis] == pytest.approx(-0.2) and location[-1, axis] == pytest.approx(0.2)
    looped, _, _ = _arrays(_path(preset, amplitude=0.2, loop=True))
    # A loop starts at the photo's camera and goes right (up) first.
    assert looped[0, axis] == pytest.approx(0.0, abs=1e-12) and looped[1, axis] > 0.0
    assert looped[:, axis].max() == pytest.approx(0.2) and looped[:, axis].min() == pytest.approx(-0.2)


def test_circle_keeps_its_radius_and_faces_forward():
    location, rotation, lens = _arrays(_path("CIRCLE", amplitude=0.1, loop=True, easing="LINEAR"))
    assert np.allclose(np.hypot(location[:, 0], location[:, 1]), 0.1)
    assert np.ptp(location[:, 0]) == pytest.approx(0.2, rel=0.01) and np.ptp(location[:, 1]) > 0.19
    assert np.allclose(location[:, 2], 0.0) and np.allclose(rotation, 0.0) and np.allclose(lens, 1.0)


def test_orbit_keeps_the_pivot_centred_at_a_constant_distance():
    pivot = 3.0
    poses = _path("ORBIT", amplitude=0.1, pivot_depth=pivot, loop=True)
    point = np.array([0.0, 0.0, -pivot])
    centre = np.array(INFO.principal_point)
    for pose in poses:
        assert np.allclose(cp.project(pose, INFO, point), centre, atol=1e-9)
        assert np.linalg.norm(point - np.array(pose.location)) == pytest.approx(pivot)
    location, rotation, _ = _arrays(poses)
    assert np.ptp(location[:, 0]) > 0.5 and np.allclose(location[:, 1], 0.0)
    assert np.abs(rotation[:, 1]).max() == pytest.approx(0.1)
    # Things nearer than the pivot move against the camera, farther ones with it.
    extreme = poses[N // 4]
    assert extreme.location[0] > 0.0
    assert cp.project(extreme, INFO, [0.0, 0.0, -2.0])[0] < centre[0] < cp.project(extreme, INFO, [0.0, 0.0, -5.0])[0]


def test_dolly_zoom_holds_the_pivot_plane_still():
    pivot = 3.0
    poses = _path("DOLLY_ZOOM", amplitude=0.5, pivot_depth=pivot)
    location, rotation, lens = _arrays(poses)
    assert np.ptp(location[:, 2]) == pytest.approx(0.5) and np.allclose(location[:, :2], 0.0)
    dz = -location[:, 2]  # toward the scene
    assert np.allclose(lens * pivot / (pivot - dz), 1.0, atol=1e-6)
    # Any point of the pivot plane keeps its pixel; nearer and farther points move (the vertigo effect).
    on_plane = np.array([[0.6, 0.4, -pivot], [-0.9, -0.3, -pivot]])
    near, far = np.array([0.3, 0.2, -2.0]), np.array([1.2, 0.5, -5.0])
    first = poses[0]
    for pose in poses:
        assert np.allclose(cp.project(pose, INFO, on_plane), cp.project(first, INFO, on_plane), atol=1e-6)
    assert np.linalg.norm(cp.project(poses[-1], INFO, near) - cp.project(first, INFO, near)) > 1.0
    assert np.linalg.norm(cp.project(poses[-1], INFO, far) - cp.project(first, INFO, far)) > 1.0


def test_ken_burns_pans_and_zooms_steadily():
    location, rotation, lens = _arrays(_path("KEN_BURNS", amplitude=0.15))
    assert np.all(np.diff(location[:, 0]) > 0.0) and np.all(np.diff(lens) > 0.0)
    assert location[0, 0] == 0.0 and location[-1, 0] == pytest.approx(0.15)
    assert lens[-1] == pytest.approx(cp.KEN_BURNS_ZOOM)
    assert np.allclose(location[:, 1:], 0.0) and np.allclose(rotation, 0.0)


def test_handheld_is_small_smooth_and_seeded():
    a = 0.02
    location, rotation, _ = _arrays(_path("HANDHELD", amplitude=a, seed=3))
    assert np.abs(location).max() <= a and np.abs(location).max() > 0.2 * a
    assert np.abs(rotation).max() <= cp.HANDHELD_AIM * a / INFO.default_pivot
    # Smooth: per-frame steps are a small share of the wobble.
    assert np.abs(np.diff(location, axis=0)).max() < 0.25 * a
    again, _, _ = _arrays(_path("HANDHELD", amplitude=a, seed=3))
    other, _, _ = _arrays(_path("HANDHELD", amplitude=a, seed=4))
    assert np.array_equal(location, again) and not np.allclose(location, other)


# -- loops close --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("easing", ["LINEAR", "EASE_IN_OUT"])
@pytest.mark.parametrize("preset", cp.PRESETS)
def test_loops_are_periodic_without_a_jump(preset, easing):
    settings = cp.PathSettings(preset, duration_frames=N, loop=True, easing=easing)
    poses = cp.camera_path(settings, INFO)
    assert len(poses) == N
    # Periodic with period N: frame N (the one after the last) is frame 0 again.
    assert np.allclose(_state(cp.pose_at_frame(settings, INFO, N)), _state(poses[0]), atol=1e-9)
    assert np.allclose(_state(cp.pose_at_frame(settings, INFO, N + 5)), _state(poses[5]), atol=1e-9)
    states = np.array([_state(p) for p in poses])
    steps = np.linalg.norm(np.diff(states, axis=0), axis=1)
    seam = np.linalg.norm(states[0] - states[-1])
    assert steps.max() > 0.0
    assert seam <= steps.max() * (1.0 + 1e-9)


def test_a_path_has_one_pose_per_frame_and_frame_zero_is_the_photo():
    for preset in ("DOLLY", "ZOOM", "SWING_H", "SWING_V", "ORBIT", "DOLLY_ZOOM", "KEN_BURNS"):
        poses = _path(preset, loop=True, duration_frames=30)
        assert len(poses) == 30
        assert np.allclose(_state(poses[0]), _state(cp.CameraPose()), atol=1e-12), preset


# -- the default amplitude and the inpainted band ------------------------------------------------------------
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("preset", [p for p in cp.PRESETS if p != "ZOOM"])
def test_default_amplitude_keeps_reveals_inside_the_band(preset, loop):
    settings = cp.PathSettings(preset, duration_frames=N, loop=loop)
    poses = cp.camera_path(settings, INFO)
    budget = cp.SAFE_MARGIN * INFO.band_px
    revealed = cp.max_reveal_px(poses, INFO)
    assert revealed <= budget * (1.0 + 1e-9)
    # Not needlessly timid: the default uses the band (a handheld wobble only its gentle share).
    share = cp.HANDHELD_GENTLE if preset == "HANDHELD" else 1.0
    assert revealed >= 0.95 * share * budget
    assert cp.reveal_ratio(settings, INFO) == pytest.approx(revealed / INFO.band_px)


def test_reveal_matches_the_parallax_formula():
    # A sideways move t uncovers f * t * (1/z_near - 1/z_far) pixels behind the nearest content.
    expected = INFO.focal_px * 0.1 * (1.0 / INFO.depth_min - 1.0 / INFO.depth_max)
    assert cp.reveal_px(np.array([[0.1, 0.0, 0.0]]), INFO)[0] == pytest.approx(expected)
    # Turning or zooming in place uncovers nothing.
    assert cp.reveal_px(np.zeros((1, 3)), INFO)[0] == pytest.approx(0.0, abs=1e-9)
    safe = cp.safe_amplitude("SWING_H", INFO, cp.PathSettings("SWING_H", duration_frames=N))
    closed_form = cp.SAFE_MARGIN * INFO.band_px / (INFO.focal_px * (1.0 / INFO.depth_min - 1.0 / INFO.depth_max))
    assert safe == pytest.approx(closed_form, rel=1e-6)


def test_default_amplitude_scales_with_the_depth_range():
    def swing(info):
        return cp.safe_amplitude("SWING_H", info)

    closer = cp.SceneInfo(**{**INFO.__dict__, "depth_min": 1.0})
    deeper = cp.SceneInfo(**{**INFO.__dict__, "depth_max": 50.0})
    wider_band = cp.SceneInfo(**{**INFO.__dict__, "band_fraction": 0.16})
    assert swing(closer) < swing(INFO) and swing(deeper) < swing(INFO)
    assert swing(wider_band) == pytest.approx(2.0 * swing(INFO), rel=1e-6)
    # A scene twice as large (same photo) allows twice the move: the default is in the scene's own units.
    scaled = cp.SceneInfo(**{**INFO.__dict__, "depth_min": 2 * INFO.depth_min, "depth_max": 2 * INFO.depth_max})
    for preset in ("DOLLY", "SWING_H", "DOLLY_ZOOM", "CIRCLE"):
        assert cp.safe_amplitude(preset, scaled) == pytest.approx(2.0 * cp.safe_amplitude(preset, INFO), rel=1e-6)
    assert cp.safe_amplitude("ZOOM", INFO) == cp.ZOOM_DEFAULT > 1.0  # zooming in uncovers nothing


def test_an_explicit_amplitude_past_the_safe_one_is_honoured():
    safe = cp.safe_amplitude("SWING_H", INFO)
    settings = cp.PathSettings("SWING_H", amplitude=3.0 * safe, duration_frames=N)
    location, _, _ = _arrays(cp.camera_path(settings, INFO))
    assert np.abs(location[:, 0]).max() == pytest.approx(3.0 * safe)
    assert cp.reveal_ratio(settings, INFO) == pytest.approx(3.0 * cp.SAFE_MARGIN, rel=1e-6)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="preset"):
        _path("SPIRAL")
    with pytest.raises(ValueError, match="2 frames"):
        _path("DOLLY", duration_frames=1)
    with pytest.raises(ValueError, match="pivot"):
        _path("ORBIT", pivot_depth=-1.0)


# -- overscan: the photo's frame edges stay out of view ------------------------------------------------------
def _frame_overshoot(pose, info) -> float:
    """How far (photo pixels) the view's corners fall outside the photo's frame at the border depth."""
    cx, cy = info.principal_point
    focal = info.focal_px * pose.lens_scale
    rotation, centre = cp.euler_matrix(pose.rotation_euler), np.array(pose.location)
    worst = -np.inf
    for u, v in ((0, 0), (info.width, 0), (info.width, info.height), (0, info.height)):
        direction = rotation @ np.array([(u - cx) / focal, -(v - cy) / focal, -1.0])
        hit = centre + direction * (-info.border_depth - centre[2]) / direction[2]
        pu, pv = cx + info.focal_px * hit[0] / info.border_depth, cy - info.focal_px * hit[1] / info.border_depth
        worst = max(worst, -pu, pu - info.width, -pv, pv - info.height)
    return worst


@pytest.mark.parametrize("preset", ["SWING_H", "SWING_V", "CIRCLE", "ORBIT", "HANDHELD"])
def test_overscan_keeps_the_frame_edges_out_of_view(preset):
    info = cp.SceneInfo(**{**INFO.__dict__, "border_depth": 3.8})
    plain = cp.camera_path(cp.PathSettings(preset, duration_frames=N, loop=True), info)
    covered = cp.camera_path(cp.PathSettings(preset, duration_frames=N, loop=True, overscan=True), info)
    assert max(_frame_overshoot(pose, info) for pose in plain) > 1.0  # without it, empty strips show
    ratios = [b.lens_scale / a.lens_scale for a, b in zip(plain, covered, strict=True)]
    assert np.allclose(ratios, ratios[0]) and ratios[0] > 1.0
    assert ratios[0] == pytest.approx(cp.cover_scale(plain, info))
    assert [b.location for b in covered] == [a.location for a in plain]  # a constant zoom, the same move
    overshoot = [_frame_overshoot(pose, info) for pose in covered]
    assert max(overshoot) <= 1e-6 and max(overshoot) > -1.0  # covered, and no more zoom than needed


def test_overscan_is_not_needed_for_moves_that_show_no_edge():
    for preset in ("DOLLY", "ZOOM", "KEN_BURNS"):
        assert cp.cover_scale(_path(preset), INFO) == pytest.approx(1.0), preset
    wild = _path("SWING_H", amplitude=5.0 * INFO.depth_max)
    assert cp.cover_scale(wild, INFO) == cp.MAX_OVERSCAN


# -- pivot, focus and depth picking -------------------------------------------------------------------------
def test_default_pivot_and_manifest_reading():
    manifest = parse_manifest(manifest_dict(640, 480, 500.0, 300.0, 250.0, (2.0, 6.0), [(4.5, 6.0)], 0.1))
    info = cp.SceneInfo.from_manifest(manifest)
    assert info.principal_point == (300.0, 250.0) and info.band_px == pytest.approx(64.0)
    assert info.default_pivot == pytest.approx(3.0)  # halfway in parallax between 2 and 6
    assert info.border_depth == 4.5  # the backdrop's nearest depth
    unrecorded = parse_manifest(manifest_dict(band_fraction=None))
    assert cp.SceneInfo.from_manifest(unrecorded, pivot_depth=4.0).band_fraction == 0.08
    assert cp.SceneInfo.from_manifest(manifest, pivot_depth=4.0).default_pivot == 4.0


def test_focus_distances_follow_the_pivot():
    pivot = 3.0
    orbit = _path("ORBIT", amplitude=0.2, pivot_depth=pivot)
    assert np.allclose(cp.focus_distances(orbit, (0.0, 0.0, -pivot)), pivot)
    dolly = _path("DOLLY", amplitude=0.5)
    expected = [pivot + pose.location[2] for pose in dolly]
    assert np.allclose(cp.focus_distances(dolly, (0.0, 0.0, -pivot)), expected)


def test_sample_depth_maps_source_pixels_to_the_working_map():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)  # working map at a quarter of 16 x 12
    info = cp.SceneInfo(width=16, height=12, focal_px=20.0, depth_min=1.0, depth_max=2.0)
    assert cp.sample_depth(depth, info, 0.0, 0.0) == 0.0
    assert cp.sample_depth(depth, info, 15.9, 11.9) == 11.0
    assert cp.sample_depth(depth, info, 8.5, 4.5) == depth[1, 2]
    assert cp.sample_depth(depth, info, 100.0, -5.0) == depth[0, 3]  # clamped to the frame

"""Hostile options: every option is checked once, typed, finite and within a range that bounds the work.

A bad value, from a config file, a worker request or a command-line flag, exits 2 naming the option and its
range; never a traceback (exit 1), never minutes of work. The add-on's bpy-free option and camera-path
checks run in plain Python.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from pathlib import Path

import pytest

from core.cli import _FLAG_OPTIONS, _parser, main
from core.errors import InputError
from core.options import LIMITS, PipelineOptions, default_of, describe
from tests.pure_addon import addon
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


jo = addon("importing.choices")
cp = addon("motion.paths")


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    return square_scene().write(tmp_path_factory.mktemp("input"))


def _convert(scene_files, out: Path, *extra: str) -> list[str]:
    image, depth = scene_files
    return ["convert", str(image), "-o", str(out), "--depth", str(depth), "--segment", "none", "-q", *extra]


def _refused(args: list[str], capsys, *words: str) -> str:
    """The command exits 2 (bad input, not a traceback) and its message holds ``words``."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


# -- the config file --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[1, 2]", ["object of option sections", "an array"]),
        (b'"load"', ["object of option sections", "a string"]),
        (b"null", ["object of option sections", "null"]),
        (b'{"load": {"work_size": 1\xff}}', ["not UTF-8"]),
        (b"[" * 100_000 + b"]" * 100_000, ["nested more than"]),
        (b'{"load": {"work_size": ' + b"9" * 5000 + b"}}", ["5000 digits"]),
        (b'{"layers": {"min_gap": NaN}}', ["NaN"]),
        (b'{"harmonize": {"smoothness": Infinity}}', ["Infinity"]),
        (b'{"depth": {"far": -Infinity}}', ["Infinity"]),
        (b'{"depth": {"far": 1e400}}', ["out of range"]),
        (b'{"runtime": 5}', ["'runtime' must be an object"]),
        (b'{"load": {"work_size": 64, "work_size": 128}}', ["appears twice"]),
    ],
    ids=["list", "string", "null", "not-utf8", "deep", "5000-digits", "nan", "inf", "-inf", "1e400", "section", "dup"],
)
def test_hostile_config_files_exit_2(scene_files, tmp_path, capsys, monkeypatch, content, words):
    # The models folder from the environment is merged into the config: it must not trip over its shape.
    monkeypatch.setenv("PHOTO3D_MODELS_DIR", str(tmp_path))
    config = tmp_path / "config.json"
    config.write_bytes(content)
    _refused([*_convert(scene_files, tmp_path / "out"), "--config", str(config)], capsys, str(config), *words)
    assert not (tmp_path / "out").exists()


def test_config_file_size_is_bounded(scene_files, tmp_path, capsys):
    config = tmp_path / "big.json"
    config.write_text('{"load": {"work_size": 64}}' + " " * 1_100_000)  # valid JSON, absurd size
    _refused([*_convert(scene_files, tmp_path / "out"), "--config", str(config)], capsys, "bytes")


def test_config_values_out_of_range_name_the_file_and_the_option(scene_files, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"segment": {"superpixels": 100_000_000}}))
    started = time.monotonic()
    _refused(
        [*_convert(scene_files, tmp_path / "out"), "--config", str(config)],
        capsys,
        f"config {config}",
        "option segment.superpixels must be an integer in 16..20000, got 100000000",
    )
    assert time.monotonic() - started < 10  # refused, not 298 s of SLIC


# -- command-line flags -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "flag", "option"),
    [
        (["--focal-px", "inf"], "--focal-px", "load.focal_px"),
        (["--focal-px", "nan"], "--focal-px", "load.focal_px"),
        (["--far", "inf", "--depth-kind", "disparity"], "--far", "depth.far"),
        (["--near", "nan"], "--near", "depth.near"),
        (["--depth-scale", "inf"], "--depth-scale", "depth.depth_scale"),
        (["--band", "nan"], "--band", "inpaint.band_fraction"),
        (["--fov", "nan"], "--fov", "load.fov_deg"),
        (["--work-size", "100000"], "--work-size", "load.work_size"),
        (["--triangles", "1000000000"], "--triangles", "geometry.max_triangles"),
        (["--layers", "0"], "--layers", "layers.max_layers"),
    ],
)
def test_bad_flags_exit_2_naming_flag_option_and_range(scene_files, tmp_path, capsys, flags, flag, option):
    err = _refused([*_convert(scene_files, tmp_path / "out"), *flags], capsys, flag, f"option {option} must be")
    assert re.search(r"in -?[0-9.e+-]+\.\.[0-9.e+-]+", err), err  # the range is stated


def test_flags_override_a_bad_config_value(scene_files, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"layers": {"max_layers": 1000}}))
    out = tmp_path / "out"
    assert main([*_convert(scene_files, out), "--config", str(config), "--layers", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["manifest"]["layers"]) <= 2


def test_help_reads_every_stated_default_from_the_dataclasses():
    convert = next(a for a in _parser()._actions if a.dest == "command").choices["convert"]
    helps = {action.dest: action.help or "" for action in convert._actions}
    assert "(default 5)" in helps["layers"] and "(default 4)" not in helps["layers"]
    for arg, section, key in _FLAG_OPTIONS:
        default = default_of(f"{section}.{key}")
        if default is not None and not isinstance(default, bool):
            assert f"(default {default})" in helps[arg], (arg, helps[arg])


# -- PipelineOptions.from_dict and validate ---------------------------------------------------------------
BAD_VALUES = [
    # (option, value, what the message must say)
    ("segment.superpixels", 100_000_000, "an integer in 16..20000, got 100000000"),
    ("segment.superpixels", 0, "16..20000"),
    ("segment.points_per_side", 1000, "1..64"),
    ("segment.points_per_batch", 0, "1..256, got 0"),
    ("segment.min_region_fraction", NAN, "got nan"),
    ("segment.pred_iou_threshold", 1.5, "0..1"),
    ("inpaint.radius", 100_000, "1..8"),
    ("inpaint.radius", -1, "1..8"),
    ("load.max_pixels", 10**9, "1..100000000"),
    ("load.work_size", 100_000, "16..2048"),
    ("load.focal_px", INF, "a finite number in 1..1000000 or null, got inf"),
    ("load.focal_px", 10**5000, "more than 30 digits"),
    ("load.fov_deg", NAN, "1..179"),
    ("depth.far", INF, "got inf"),
    ("depth.near", -1.0, "0.001..1000000"),
    ("depth.depth_scale", 0.0, "1e-06..1000000"),
    ("depth.input_size", 100_000, "16..1024"),
    ("depth.depth_kind", "metres", "one of depth, disparity"),
    ("depth.model", "a\x00b", "without NUL"),
    ("depth.depth_file", "x" * 5000, "a text of 5000 characters"),
    ("harmonize.smoothness", INF, "0..1000"),
    ("harmonize.iterations", 10**6, "1..500"),
    ("harmonize.data_weight_edge", 0.0, "0.001..1000"),
    ("harmonize.enabled", 1, "true or false, got 1"),
    ("layers.min_gap", NAN, "0..1"),
    ("layers.overlap_factor", NAN, "0..10"),
    ("layers.max_layers", True, "an integer in 1..32, got True"),
    ("layers.max_layers", 2.0, "an integer"),
    ("layers.max_layers", "many", "got 'many'"),
    ("layers.min_gap", -0.1, "0..1"),
    ("geometry.max_triangles", 10**9, "16..1000000"),
    ("geometry.mpi_planes", 1, "2..128"),
    ("geometry.representation", "voxels", "one of mesh, mpi"),
    ("inpaint.method", "LAMA", "one of lama, telea, ns"),
    ("runtime.device", "tpu", "one of auto, cpu, cuda"),
    ("runtime.models_dir", 5, "text of at most 4096 characters"),
    ("runtime.offline", "yes", "true or false"),
]


@pytest.mark.parametrize(
    ("name", "value", "words"), BAD_VALUES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_VALUES)]
)
def test_each_bad_value_is_refused_naming_option_and_range(name, value, words):
    section, key = name.split(".")
    with pytest.raises(InputError, match=re.escape(f"option {name} must be")) as info:
        PipelineOptions.from_dict({section: {key: value}})
    assert words in str(info.value)


def test_validate_checks_options_built_in_python_too():
    options = PipelineOptions()
    options.segment.points_per_batch = 0
    with pytest.raises(InputError, match="segment.points_per_batch"):
        options.validate()


@pytest.mark.parametrize("data", [[1], "load", 5, True, [["load", {}]]])
def test_options_that_are_not_an_object_are_input_errors(data):
    # The worker hands request["options"] straight to from_dict: a list or string must not be AttributeError.
    with pytest.raises(InputError, match="object of sections"):
        PipelineOptions.from_dict(data)


@pytest.mark.parametrize("data", [{1: {}}, {"load": {2: 3}}, {"load": []}, {"segment": "none"}, {"lod": {}}])
def test_bad_keys_and_sections_are_input_errors(data):
    with pytest.raises(InputError):
        PipelineOptions.from_dict(data)


def test_near_must_stay_below_far():
    with pytest.raises(InputError, match=r"depth\.near \(5\) must be below depth\.far \(1\)"):
        PipelineOptions.from_dict({"depth": {"near": 5, "far": 1}})


def test_every_field_has_a_declared_range_and_every_default_sits_inside():
    options = PipelineOptions()
    names = {
        f"{s.name}.{f.name}" for s in dataclasses.fields(options) for f in dataclasses.fields(getattr(options, s.name))
    }
    assert names == set(LIMITS)
    options.validate()  # the defaults
    for name in names:
        assert describe(name)


def test_ints_widen_to_float_and_values_used_by_presets_and_benchmarks_are_accepted():
    parsed = PipelineOptions.from_dict({"load": {"fov_deg": 60, "focal_px": 995}, "depth": {"depth_scale": 4}})
    assert isinstance(parsed.load.fov_deg, float) and parsed.load.focal_px == 995.0
    for preset in jo.QUALITY_PRESETS.values():
        PipelineOptions.from_dict({"load": {"work_size": preset["work_size"]}, "geometry": {
            "max_triangles": preset["max_triangles"], "mpi_planes": preset["mpi_planes"]}})  # fmt: skip
    PipelineOptions.from_dict({  # scripts/bench_novel_view.py's tuned settings and its 96-plane MPI
        "harmonize": {"data_weight_edge": 2.0, "data_weight_interior": 4.0, "boundary_weight": 0.5},
        "segment": {"superpixels": 1000, "points_per_side": 4, "pred_iou_threshold": 0.0, "stability_threshold": 0.0},
        "layers": {"max_layers": 8, "min_gap": 0.02, "overlap_factor": 1.0},
        "geometry": {"representation": "mpi", "mpi_planes": 96, "max_triangles": 50000},
    })  # fmt: skip


# -- the add-on's choices and camera paths ----------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"depth_scale": NAN},
        {"depth_scale": INF},
        {"focal_px": NAN},
        {"focal_px": INF},
        {"focal_px": -INF},
        {"layers": True},
        {"layers": "5"},
    ],
    ids=["scale-nan", "scale-inf", "focal-nan", "focal-inf", "focal-minus-inf", "layers-bool", "layers-str"],
)
def test_import_choices_refuse_non_finite_numbers(tmp_path, change):
    depth = tmp_path / "d.npy"
    depth.write_bytes(b"")
    choices = jo.ImportChoices(depth_source="FILE", depth_file=str(depth), **change)
    with pytest.raises(jo.ChoiceError):
        jo.pipeline_options(choices)


INFO = cp.SceneInfo(width=128, height=96, focal_px=110.0, depth_min=2.0, depth_max=5.0)


@pytest.mark.parametrize(
    ("preset", "amplitude"),
    [("SWING_H", NAN), ("SWING_H", INF), ("DOLLY", -1e9), ("ORBIT", 1e4), ("ZOOM", 0.0), ("ZOOM", -1.5)],
)
def test_camera_paths_refuse_amplitudes_no_path_can_use(preset, amplitude):
    with pytest.raises(ValueError, match="amplitude"):
        cp.check_amplitude(preset, amplitude)
    settings = cp.PathSettings(preset, amplitude=amplitude, duration_frames=4, loop=True, overscan=True)
    with pytest.raises(ValueError, match="amplitude"):
        cp.camera_path(settings, INFO)  # NaN poses used to render uniform grey frames


def test_camera_paths_keep_sane_amplitudes():
    for preset, amplitude in (("SWING_H", -0.3), ("ZOOM", 0.5), ("ORBIT", 0.2), ("DOLLY", None)):
        cp.check_amplitude(preset, amplitude)
        poses = cp.camera_path(cp.PathSettings(preset, amplitude=amplitude, duration_frames=4), INFO)
        assert all(math.isfinite(v) for p in poses for v in (*p.location, *p.rotation_euler, p.lens_scale))

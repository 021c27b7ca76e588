"""The comp package (``core.export``) without Blender: the scene it describes, the Nuke camera, the folder's
rules and the command line."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.errors import EXIT_BAD_PACKAGE, EXIT_EXPORT, EXIT_OUTPUT, ExportError, OutputError
from core.export.chan import chan_rows
from core.export.comp import COMP_MANIFEST, parse_formats, write_comp_package
from core.export.scene import CameraSample, sample_to_spec, scene_from_package, scene_from_spec
from core.options import PipelineOptions
from core.package import read_package
from core.pipeline import convert_image
from tests.scenes import square_package, square_scene


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return square_package(tmp_path_factory.mktemp("comp"))


def test_mpi_planes_export_as_quads_at_their_depths(tmp_path):
    image, depth = square_scene().write(tmp_path / "in")
    options = PipelineOptions.from_dict(
        {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}, "geometry": {"representation": "mpi"}}
    )
    mpi = read_package(convert_image(image, tmp_path / "mpi", options).package_path)
    scene = scene_from_package(mpi)
    assert len(scene.cards) == len(mpi.layers) and not any(card.opaque for card in scene.cards)
    camera = scene.camera[0]
    for card, layer in zip(scene.cards, mpi.layers, strict=True):
        corners = camera.project(card.vertices, scene.width, scene.height)
        assert np.allclose(corners, [[0, 0], [scene.width, 0], [scene.width, scene.height], [0, scene.height]])
        # Blender's world is the camera space stood up (STAGE_EULER): depth runs along +Y.
        assert np.allclose(card.vertices[:, 1], layer.plane_depth)


def _turn(sample: CameraSample, frame: int, angle_deg: float, shift: tuple[float, float, float]) -> CameraSample:
    """The sample turned about world Z and moved: a camera path's frame."""
    a = math.radians(angle_deg)
    turn = np.eye(4)
    turn[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    turn[:3, 3] = shift
    return dataclasses.replace(sample, frame=frame, matrix_world=turn @ sample.matrix_world)


def test_the_photos_camera_sees_each_vertex_where_its_texture_pixel_is(package):
    scene = scene_from_package(package)
    camera = scene.camera[0]
    for card, layer in zip(scene.cards, package.layers, strict=True):
        tw, th = package.manifest.texture_size(layer)
        b = layer.border or 0
        expected = np.stack([card.uvs[:, 0] * tw - b, (1 - card.uvs[:, 1]) * th - b], -1)
        assert np.abs(camera.project(card.vertices, scene.width, scene.height) - expected).max() < 1e-3
    assert [card.opaque for card in scene.cards] == [True] + [False] * (len(scene.cards) - 1)


def _rot_zxy(rx, ry, rz):
    a, b, c = np.radians([rx, ry, rz])
    x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    z = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return y @ x @ z


@pytest.mark.parametrize("angles", [(0, 0, 0), (10, 20, 30), (-80, 170, -5), (89.9, -30, 60)])
def test_chan_rows_compose_back_to_the_camera(package, angles):
    scene = scene_from_package(package)
    # Any camera orientation: put the Nuke-space rotation in, read the Blender matrix's angles out.
    y_up = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float64)
    matrix = np.eye(4)
    matrix[:3, :3] = y_up.T @ _rot_zxy(*angles)
    matrix[:3, 3] = (1.0, -2.0, 0.5)
    sample = dataclasses.replace(scene.camera[0], matrix_world=matrix)
    row = chan_rows(dataclasses.replace(scene, camera=(sample,)))[0]
    assert np.abs(_rot_zxy(*row[4:7]) - y_up @ matrix[:3, :3]).max() < 1e-9
    assert np.allclose(row[1:4], y_up @ matrix[:3, 3])


def test_chan_angles_stay_continuous_through_a_half_turn(package):
    scene = scene_from_package(package)
    first = scene.camera[0]
    samples = tuple(_turn(first, 1 + i, 170 + 5 * i, (0, 0, 0)) for i in range(5))  # 170 .. 190 degrees
    rows = chan_rows(dataclasses.replace(scene, camera=samples))
    assert np.abs(np.diff(rows[:, 4:7], axis=0)).max() < 6.0


def test_the_spec_round_trips_and_refuses_what_it_cannot_mean(package):
    scene = scene_from_package(package)
    samples = [_turn(scene.camera[0], 1 + i, 3 * i, (0.1 * i, 0, 0)) for i in range(4)]
    spec = {"resolution": [scene.width, scene.height], "fps": 25.0, "camera": [sample_to_spec(s) for s in samples]}
    again = scene_from_spec(package, spec)
    assert again.animated and again.fps == 25.0 and (again.frame_start, again.frame_end) == (1, 4)
    assert all(np.allclose(a.matrix_world, b.matrix_world) for a, b in zip(again.camera, samples, strict=True))
    bad = [
        ({**spec, "resolution": [0, 10]}, "resolution"),
        ({**spec, "fps": float("inf")}, "fps"),
        ({**spec, "camera": []}, "non-empty"),
        ({**spec, "camera": spec["camera"][::-1]}, "consecutive"),
        ({**spec, "camera": [{**spec["camera"][0], "lens_mm": -1}]}, "lens_mm"),
        ({**spec, "camera": [{**spec["camera"][0], "sensor_fit": "AUTO"}]}, "sensor_fit"),
        ({**spec, "camera": [{**spec["camera"][0], "matrix_world": [[1, 0], [0, 1]]}]}, "4x4"),
        ({**spec, "camera": [{**spec["camera"][0], "matrix_world": (2 * np.eye(4)).tolist()}]}, "affine|scaled"),
        ({**spec, "layers": {"7": np.eye(4).tolist()}}, "layer '7'"),
        ({k: v for k, v in spec.items() if k != "fps"}, "fps"),
    ]
    for broken, message in bad:
        with pytest.raises(ExportError, match=message):
            scene_from_spec(package, broken)


def test_formats_are_named_once_and_blender_ones_are_told_apart():
    assert parse_formats("USD, gltf,usd") == ("usd", "gltf")
    with pytest.raises(ExportError, match="Blender writes those"):
        parse_formats("usd,exr")
    with pytest.raises(ExportError, match="unknown export format obj"):
        parse_formats("obj")
    with pytest.raises(ExportError, match="no export format"):
        parse_formats(" , ")


def test_the_comp_folder_lists_what_it_holds_and_replaces_only_itself(package, tmp_path):
    scene = scene_from_package(package)
    out = tmp_path / "shot"
    result = write_comp_package(scene, package.root, out, ["chan"])
    comp = json.loads((out / COMP_MANIFEST).read_text())
    assert comp["format"] == "photo3d.comp" and comp["files"] == {"chan": "camera.chan"}
    listed = {COMP_MANIFEST, *comp["files"].values(), *(layer["texture"] for layer in comp["layers"])}
    present = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert present == listed
    assert result.files == {"chan": "camera.chan"}
    # Written again over itself: replaced.
    write_comp_package(scene, package.root, out, ["chan"])
    # A file the comp package does not list: refused, and nothing changes.
    (out / "notes.txt").write_text("mine")
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(OutputError, match="notes.txt"):
        write_comp_package(scene, package.root, out, ["chan"])
    assert sorted(p.name for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot"]  # no staging folder left
    # A comp.json Photo3D would not write (duplicate keys, NaN) does not make a folder ours.
    other = tmp_path / "other"
    other.mkdir()
    (other / COMP_MANIFEST).write_text('{"format": "photo3d.comp", "files": {}, "files": {"x": NaN}}')
    with pytest.raises(OutputError, match="not a Photo3D comp package"):
        write_comp_package(scene, package.root, other, ["chan"])
    assert [p.name for p in other.iterdir()] == [COMP_MANIFEST]


def test_a_failing_writer_leaves_nothing_and_keeps_the_old_package(package, tmp_path):
    scene = scene_from_package(package)
    out = tmp_path / "shot"
    write_comp_package(scene, package.root, out, ["chan"])
    before = (out / COMP_MANIFEST).read_bytes()

    def broken(folder):
        (folder / "camera.abc").write_bytes(b"half")
        raise ExportError("the Alembic exporter failed")

    with pytest.raises(ExportError):
        write_comp_package(scene, package.root, out, ["chan"], extra=broken)
    assert (out / COMP_MANIFEST).read_bytes() == before and not (out / "camera.abc").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot"]


def test_a_cancel_stops_the_export_and_writes_nothing(package, tmp_path):
    from core.errors import Cancelled
    from core.progress import Progress

    progress = Progress()
    progress.cancel_token.cancel()
    with pytest.raises(Cancelled):
        write_comp_package(scene_from_package(package), package.root, tmp_path / "shot", ["chan"], progress=progress)
    assert list(tmp_path.iterdir()) == []


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "core", "export", *args], capture_output=True, text=True, env=env)


def test_the_command_line_exports_and_fails_with_its_own_codes(package, tmp_path):
    done = _cli(str(package.root), "--to", str(tmp_path / "shot"), "--formats", "chan", "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files"] == {"chan": "camera.chan"}
    empty = tmp_path / "empty package"
    empty.mkdir()
    no_layers = tmp_path / "no layers"
    shutil.copytree(package.root, no_layers)
    manifest = json.loads((no_layers / "manifest.json").read_text())
    (no_layers / "manifest.json").write_text(json.dumps({**manifest, "layers": []}))
    cases = [
        ((str(empty), "--to", str(tmp_path / "a")), EXIT_BAD_PACKAGE, "not a Photo3D layer package"),
        ((str(no_layers), "--to", str(tmp_path / "a")), EXIT_BAD_PACKAGE, "no layers"),
        ((str(package.root), "--to", str(tmp_path / "b"), "--formats", "exr"), EXIT_EXPORT, "Blender writes"),
        ((str(package.root), "--to", str(package.root), "--formats", "chan"), EXIT_OUTPUT, "not a Photo3D comp"),
    ]
    (tmp_path / "a file").write_text("in the way")
    cases.append(((str(package.root), "--to", str(tmp_path / "a file" / "shot")), EXIT_OUTPUT, "cannot write"))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"resolution": [10, 10], "fps": 24, "camera": "still"}))
    cases.append(((str(package.root), "--to", str(tmp_path / "c"), "--camera", str(spec)), EXIT_EXPORT, "samples"))
    for args, code, message in cases:
        failed = _cli(*args, "--formats", "chan") if "--formats" not in args else _cli(*args)
        assert failed.returncode == code, (args, failed.stderr)
        assert message in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()

"""The layered video package: PC2 point caches, the atomic writer, and a reader that rejects what it cannot trust."""

from __future__ import annotations

import json
import os
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from core.camera import camera_from_fov
from core.errors import OutputError, PackageError, SignalReceived
from core.package import save_mesh_file
from core.textures import write_png
from core.video.manifest import FORMAT_VERSION, MANIFEST_NAME, MAX_MANIFEST_BYTES
from core.video.package import VideoPackageWriter, read_video_package
from core.video.pc2 import HEADER_SIZE, PC2Problem, PC2Writer, read_pc2, read_pc2_header, write_pc2

W, H = 32, 24
"""Texture (working) size."""
SHOTS = ((0, 2), (3, 4))
"""Package frames of each shot: 3 + 2."""
LAYERS = 2
UVS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
FACES = np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def _vertices(shot: int, layer: int, frame: int) -> np.ndarray:
    """A quad at depth 2 + layer that drifts right frame by frame."""
    quad = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float32)
    quad[:, 2] = -(2.0 + layer + shot)
    quad[:, 0] += 0.1 * frame
    return quad


def _texture(shot: int, layer: int, frame: int) -> np.ndarray:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 40 * layer + frame
    rgba[..., 1] = 100 + shot
    rgba[4:20, 4:28, 3] = 255
    return rgba


def _fields() -> dict:
    camera = camera_from_fov(64, 48, 60.0)
    return {
        "source": {
            "path": "/footage/clip.mp4",
            "sha256": "0" * 64,
            "width": 64,
            "height": 48,
            "fps": 25.0,
            "first_frame": 10,
            "stride": 2,
            "variable_rate": False,
        },
        "camera": camera,
        "work_size": [H, W],
        "depth": {"units": "relative", "kind": "z-depth", "source": "tiny"},
        "timings": {"decode": 0.5, "depth": 1.25},
        "options": {"video": {"stride": 2}},
        "warnings": ["shot 1 is short"],
    }


def write_tiny(out: Path, shots=SHOTS) -> Path:
    """The test package through the writer: textures from helper threads, points streamed frame by frame."""
    with VideoPackageWriter(out) as writer, ThreadPoolExecutor(2) as pool:
        for first, last in shots:
            shot = writer.begin_shot(first)
            for layer in range(LAYERS):
                writer.begin_layer_points(shot, layer, 4)
            jobs = []
            for frame in range(first, last + 1):
                writer.add_frame(frame, 10 + 2 * frame, frame / 12.5, shot, seconds=0.01 * (frame + 1))
                for layer in range(LAYERS):
                    jobs.append(pool.submit(writer.write_texture, shot, layer, frame, _texture(shot, layer, frame)))
                    writer.add_layer_points(shot, layer, frame, _vertices(shot, layer, frame))
            for layer in range(LAYERS):
                depth = 2.0 + layer + shot
                writer.set_layer(
                    shot,
                    layer,
                    f"layer_{layer:02d}",
                    UVS,
                    FACES,
                    _vertices(shot, layer, first),
                    (depth, depth),
                    depth,
                    300 + layer,
                )
            for job in jobs:
                job.result()
            writer.end_shot(shot, last)
        return writer.publish(_fields())


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("video") / "clip.p3dv")


@pytest.fixture
def copy(package_dir, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(package_dir, target)
    return target


def _edit(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    change(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def _refused(folder: Path, match: str, **kwargs) -> None:
    with pytest.raises(PackageError, match=match):
        read_video_package(folder, **kwargs)


# --- PC2 -------------------------------------------------------------------------------------------------


def test_pc2_round_trip(tmp_path):
    points = np.random.default_rng(1).normal(size=(5, 7, 3)).astype(np.float32)
    path = tmp_path / "a.pc2"
    written = write_pc2(path, points, start_frame=3.0, sample_rate=0.5)
    assert written == path.stat().st_size == 32 + 5 * 7 * 12
    back, start, rate = read_pc2(path, max_bytes=1 << 20)
    assert back.dtype == np.float32 and np.array_equal(back, points) and (start, rate) == (3.0, 0.5)
    mapped, _, _ = read_pc2(path, max_bytes=1 << 20, mmap=True)
    assert np.array_equal(mapped, points)
    del mapped
    with pytest.raises(PC2Problem, match="at most 100"):
        read_pc2(path, max_bytes=100)


def test_pc2_bytes_are_what_blender_reads(tmp_path):
    """The layout read with plain struct and numpy, as Blender's Mesh Cache modifier reads it: a 32-byte
    little-endian header, then samples of numPoints (x, y, z) float32."""
    points = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3) - 4.5
    path = tmp_path / "b.pc2"
    write_pc2(path, points, start_frame=12.0)
    data = path.read_bytes()
    magic, version, count, start, rate, samples = struct.unpack_from("<12siiffi", data)
    assert (magic, version, count, start, rate, samples) == (b"POINTCACHE2\x00", 1, 3, 12.0, 1.0, 2)
    assert HEADER_SIZE == 32 and len(data) == 32 + 2 * 3 * 12
    assert np.array_equal(np.frombuffer(data, "<f4", offset=32).reshape(2, 3, 3), points)


def test_streaming_pc2_writer_patches_the_sample_count(tmp_path):
    path = tmp_path / "s.pc2"
    with PC2Writer(path, 4, start_frame=5.0) as writer:
        for frame in range(3):
            writer.add(_vertices(0, 0, frame).astype(np.float64))  # converted to float32
        writer._handle.flush()
        # Until closed the header says no samples: a cache cut short is never taken for a whole one.
        assert struct.unpack_from("<i", path.read_bytes(), 28)[0] == 0
    assert read_pc2_header(path).sample_count == 3
    back, start, _ = read_pc2(path, 1 << 20)
    assert np.array_equal(back[2], _vertices(0, 0, 2)) and start == 5.0
    abandoned = tmp_path / "abandoned.pc2"
    with pytest.raises(RuntimeError), PC2Writer(abandoned, 4) as writer:
        writer.add(_vertices(0, 0, 0))
        raise RuntimeError("stop")
    with pytest.raises(PC2Problem, match="0 samples"):
        read_pc2_header(abandoned)


def test_pc2_writer_refuses_bad_points(tmp_path):
    with PC2Writer(tmp_path / "x.pc2", 4) as writer:
        with pytest.raises(ValueError, match="finite"):
            writer.add(np.full((4, 3), np.nan, np.float32))
        with pytest.raises(ValueError, match=r"\(4, 3\)"):
            writer.add(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="frames, vertices, 3"):
        write_pc2(tmp_path / "y.pc2", np.zeros((0, 4, 3), np.float32))


def test_pc2_reader_checks_everything(tmp_path):
    path = tmp_path / "c.pc2"
    write_pc2(path, np.zeros((2, 3, 3), np.float32))
    good = path.read_bytes()
    cases = {
        b"POINTCACHE3\x00" + good[12:]: "no POINTCACHE2 header",
        good[:12] + struct.pack("<i", 2) + good[16:]: "version 2",
        good[:16] + struct.pack("<i", -1) + good[20:]: "-1 points",
        good[:24] + struct.pack("<f", 0.0) + good[28:]: "sample rate",
        good[:-4]: "truncated",
        good + b"\0" * 12: "longer than its header says",
        good[:20]: "too short",
        good[:32] + struct.pack("<f", np.inf) + good[36:]: "not finite",
    }
    for data, problem in cases.items():
        path.write_bytes(data)
        with pytest.raises(PC2Problem, match=problem):
            read_pc2(path, 1 << 20)


# --- the package -----------------------------------------------------------------------------------------


def test_written_package_reads_back(package_dir):
    package = read_video_package(package_dir)
    manifest = package.manifest
    assert (manifest.format, manifest.version) == ("photo3d.video", FORMAT_VERSION)
    assert manifest.work_size == (H, W) and manifest.camera.width == 64
    assert manifest.source.frame_count == 5 and manifest.source.first_frame == 10
    assert [(s.first, s.last) for s in manifest.shots] == list(SHOTS)
    assert [f.shot for f in manifest.frames] == [0, 0, 0, 1, 1]
    assert [f.source_index for f in manifest.frames] == [10, 12, 14, 16, 18]
    assert manifest.frame_timings == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert manifest.timings == {"decode": 0.5, "depth": 1.25} and manifest.warnings == ("shot 1 is short",)
    assert manifest.options == {"video": {"stride": 2}}
    layer = manifest.shots[1].layers[1]
    assert layer.texture_pattern == "shots/001/layer_01/%06d.png"
    assert layer.texture(4) == "shots/001/layer_01/000004.png"
    assert package.texture_path(1, 1, 4) == (package_dir / "shots/001/layer_01/000004.png").resolve()
    with pytest.raises(ValueError, match="not in shot 1"):
        package.texture_path(1, 1, 2)
    for shot, (first, last) in enumerate(SHOTS):
        for index in range(LAYERS):
            points = package.points(shot, index)
            assert points.shape == (last - first + 1, 4, 3)
            expected = [_vertices(shot, index, frame) for frame in range(first, last + 1)]
            assert np.array_equal(points, np.stack(expected))
            mesh = package.load_mesh(shot, index)
            assert np.array_equal(mesh["faces"], FACES) and np.array_equal(mesh["vertices"], expected[0])
    assert np.array_equal(package.points(0, 1, mmap=True), package.points(0, 1))
    assert sorted(p.name for p in package_dir.parent.iterdir()) == ["clip.p3dv"]  # no staging folder left


def test_manifest_round_trips(package_dir):
    from core.video.manifest import parse_video_manifest

    manifest = read_video_package(package_dir).manifest
    assert parse_video_manifest(json.loads(json.dumps(manifest.to_dict()))) == manifest
    assert json.loads((package_dir / MANIFEST_NAME).read_text()) == manifest.to_dict()


def test_missing_and_wrong_sized_textures(copy):
    (copy / "shots/001/layer_01/000004.png").unlink()
    _refused(copy, "shots/001/layer_01/000004.png is missing")
    read_video_package(copy, check_textures=False)  # per-frame textures skipped for speed
    write_png(copy / "shots/001/layer_01/000004.png", np.zeros((12, 16, 4), np.uint8))
    _refused(copy, "000004.png: is a 16x12 .*needs an 8-bit RGBA PNG of 32x24")
    write_png(copy / "shots/001/layer_01/000004.png", np.zeros((H, W, 3), np.uint8))
    _refused(copy, "000004.png: is a 32x24 8-bit RGB PNG")


def test_point_caches_must_fit_mesh_and_shot(copy):
    cache = copy / "shots/000/layer_01.pc2"
    write_pc2(cache, np.zeros((3, 5, 3), np.float32) - 1, start_frame=0.0)
    _refused(copy, "layer_01.pc2 has 5 points but the layer's mesh has 4 vertices")
    write_pc2(cache, np.stack([_vertices(0, 1, f) for f in range(2)]))
    _refused(copy, "has 2 samples but shot 0 has 3 frames")
    write_pc2(cache, np.stack([_vertices(0, 1, f) for f in range(3)]), start_frame=1.0)
    _refused(copy, "starts at frame 1")
    write_pc2(cache, np.stack([_vertices(0, 1, f + 1) for f in range(3)]))
    _refused(copy, "sample 0 is not the mesh's vertices")


def test_non_finite_and_truncated_points(copy):
    cache = copy / "shots/001/layer_00.pc2"
    data = bytearray(cache.read_bytes())
    data[HEADER_SIZE + 12 * 4 + 4 : HEADER_SIZE + 12 * 4 + 8] = struct.pack("<f", float("nan"))  # sample 1
    cache.write_bytes(bytes(data))
    _refused(copy, "layer_00.pc2 sample 1 holds values that are not finite")
    read_video_package(copy, check_points=False)  # only headers and sizes
    cache.write_bytes(bytes(data[:-6]))
    _refused(copy, "layer_00.pc2 is .* bytes but 2 samples of 4 points need 128: truncated", check_points=False)


def test_meshes_are_checked(copy):
    mesh = copy / "shots/000/layer_00_mesh.npz"
    save_mesh_file(mesh, _vertices(0, 0, 0), UVS, np.array([[0, 1, 4]], np.int32))
    _refused(copy, r"shots\[0\].layers\[0\]: mesh layer_00_mesh.npz: face indices outside 0..3")
    save_mesh_file(mesh, _vertices(0, 0, 0), UVS * 2, FACES)
    _refused(copy, "UVs outside 0..1")
    np.savez(mesh, vertices=_vertices(0, 0, 0), uvs=UVS, faces=FACES.astype(np.int64))
    _refused(copy, "'faces' must be int32")
    mesh.write_bytes(b"not a zip")
    _refused(copy, "not an NPZ")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mesh", "../x.npz"),
        ("points", "../../x.pc2"),
        ("texture_pattern", "../x/%06d.png"),
        ("mesh", "/etc/passwd"),
        ("points", "shots\\000\\layer_00.pc2"),
    ],
)
def test_paths_leaving_the_package_are_refused(copy, key, value):
    _edit(copy, lambda m: m["shots"][0]["layers"][0].update({key: value}))
    _refused(copy, "leaves the package|relative|portable")


def test_symbolic_links_out_of_the_package_are_refused(copy, tmp_path):
    outside = tmp_path / "outside.npz"
    shutil.copy(copy / "shots/000/layer_00_mesh.npz", outside)
    (copy / "shots/000/layer_00_mesh.npz").unlink()
    os.symlink(outside, copy / "shots/000/layer_00_mesh.npz")
    _refused(copy, "leaves the package")
    (copy / "shots/000/layer_00_mesh.npz").unlink()
    shutil.copy(outside, copy / "shots/000/layer_00_mesh.npz")
    # A link inside the package that makes two layers' textures one folder.
    shutil.rmtree(copy / "shots/000/layer_01")
    os.symlink("layer_00", copy / "shots/000/layer_01")
    _refused(copy, "is the same file as shots/000/layer_00/")


def test_two_layers_cannot_share_files(copy):
    _edit(copy, lambda m: m["shots"][1]["layers"][1].update(points="shots/001/layer_00.pc2"))
    _refused(copy, r"shots\[1\].layers\[1\].points 'shots/001/layer_00.pc2' is used twice")
    _edit(copy, lambda m: m["shots"][1]["layers"][1].update(points="shots/001/layer_01.pc2"))
    _edit(copy, lambda m: m["shots"][1]["layers"][1].update(texture_pattern="shots/001/layer_00/1%d.png"))
    _refused(copy, "texture_pattern 'shots/001/layer_00/' is used twice")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("shots/000/layer_00/%s.png", "one frame number field"),
        ("shots/000/layer_00/%06d_%d.png", "one frame number field"),
        ("shots/000/layer_00/000000.png", "one frame number field"),
        ("%06d.png", "in a folder"),
        ("shots/%06d/x.png", "in a folder"),
        ("shots/000/layer_00/%06d.jpg", "must name .png files"),
        ("shots/000/layer_00/%010d.png", "one frame number field"),
    ],
)
def test_texture_patterns_are_checked(copy, pattern, problem):
    _edit(copy, lambda m: m["shots"][0]["layers"][0].update(texture_pattern=pattern))
    _refused(copy, problem)


def test_frames_must_be_contiguous_and_match_the_shots(copy):
    _edit(copy, lambda m: m["frames"][2].update(index=3))
    _refused(copy, r"frames\[2\].index is 3; frames must be numbered 0, 1, 2")
    _edit(copy, lambda m: m["frames"][2].update(index=2, source_index=11))
    _refused(copy, r"frames\[2\].source_index is 11: frames must go forward")
    _edit(copy, lambda m: m["frames"][2].update(source_index=14))
    _edit(copy, lambda m: m["frames"][3].update(shot=0))
    _refused(copy, r"frames\[3\].shot is 0 but shot 1 holds the frame")
    _edit(copy, lambda m: m["frames"][3].update(shot=1))
    _edit(copy, lambda m: m["frames"].pop())
    _refused(copy, "source.frame_count is 5 but the package lists 4 frames")


def test_shots_must_cover_the_frames(copy):
    _edit(copy, lambda m: m["shots"][1].update(last=3))
    _refused(copy, r"shots cover frames 0..3 but the package has frames 0..4")
    _edit(copy, lambda m: m["shots"][1].update(last=5))
    _refused(copy, r"shots\[1\].last is 5 but the package has frames 0..4")
    _edit(copy, lambda m: m["shots"][1].update(last=4, first=4))
    _refused(copy, r"shots\[1\].first is 4; the shot must start at frame 3")
    _edit(copy, lambda m: m["shots"][1].update(first=3, index=2))
    _refused(copy, r"shots\[1\].index is 2")


def test_video_json_that_is_not_json_or_too_big(copy):
    (copy / MANIFEST_NAME).write_text("{broken")
    _refused(copy, "cannot read .*video.json")
    with open(copy / MANIFEST_NAME, "wb") as handle:
        handle.truncate(MAX_MANIFEST_BYTES + 10)  # sparse: costs no disk
    _refused(copy, f"more than the {MAX_MANIFEST_BYTES} allowed")
    (copy / MANIFEST_NAME).unlink()
    _refused(copy, "no video.json")
    (copy / MANIFEST_NAME).mkdir()
    _refused(copy, "not a regular file")


def test_versions_and_format(copy):
    for version in ("2.0", "1.1"):
        _edit(copy, lambda m, v=version: m.update(version=v))
        _refused(copy, f"version '{version}' is newer than this reader .*update Photo3D")
    _edit(copy, lambda m: m.update(version="0.9"))
    _refused(copy, "no longer supported")
    for version in (1.0, "1", None):
        _edit(copy, lambda m, v=version: m.update(version=v))
        _refused(copy, "MAJOR.MINOR")
    _edit(copy, lambda m: m.update(version="1.0", format="photo3d.layers"))
    _refused(copy, "not a Photo3D video package")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m["source"].update(fps="25"), "source.fps must be a number, not a string"),
        (lambda m: m["source"].update(fps=0), r"source.fps must be a finite number in \(0"),
        (lambda m: m["source"].update(stride=1.5), "source.stride must be an integer"),
        (lambda m: m["source"].update(variable_rate="no"), "source.variable_rate must be true, false or null"),
        (lambda m: m["source"].update(sha256="xyz"), "source.sha256"),
        (lambda m: m["source"].update(width=65), "source is 65x48 but the camera is 64x48"),
        (lambda m: m["frames"][0].update(shot=True), r"frames\[0\].shot must be an integer, not a boolean"),
        (lambda m: m["frames"][1].update(time_s=None), r"frames\[1\].time_s must be a number, not null"),
        (lambda m: m["frames"][1].update(time_s=-1.0), r"frames\[1\].time_s is -1, before"),
        (lambda m: m.update(frames={}), "frames must be a list, not an object"),
        (lambda m: m.update(frames=[]), "frames must list 1 to"),
        (lambda m: m.update(shots="all"), "shots must be a list"),
        (lambda m: m["shots"][0]["layers"][0].update(name=5), r"layers\[0\].name must be a string"),
        (lambda m: m["shots"][0]["layers"][1].update(name="layer_00"), "'layer_00' is used twice in the shot"),
        (lambda m: m["shots"][0]["layers"][0].update(depth_range=[3, 2]), "starts after it ends"),
        (lambda m: m["shots"][0]["layers"][0].update(pixel_count=-1), "pixel_count must be in 0.."),
        (lambda m: m["shots"][0]["layers"][0].update(index=1), r"layers\[0\].index is 1"),
        (lambda m: m["shots"][0]["layers"][0].pop("points"), r"layers\[0\].points is missing"),
        (lambda m: m["camera"].update(focal_px="wide"), "video.json: camera.focal_px must be a number"),
        (lambda m: m.update(work_size=[24, 40]), "video.json: work_size .*aspect"),
        (lambda m: m.update(timings={"decode": -1}), "timings.decode must be a finite number"),
        (lambda m: m.update(frame_timings=[0.1]), "frame_timings lists 1 entries for 5 frames"),
        (lambda m: m.update(warnings=[1]), r"warnings\[0\] must be a string"),
        (lambda m: m.update(options=[]), "options must be an object"),
        (lambda m: m.pop("depth"), "depth is missing"),
    ],
)
def test_wrong_types_and_ranges(copy, change, problem):
    _edit(copy, change)
    _refused(copy, problem)


def test_work_size_textures_follow_the_manifest(copy):
    # A package whose textures are another size than its work size is refused by the first texture.
    _edit(copy, lambda m: m.update(work_size=[12, 16]))
    _refused(copy, "shots/000/layer_00/000000.png: is a 32x24 .*PNG of 16x12")


# --- the writer ------------------------------------------------------------------------------------------


def _folder_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("error", [RuntimeError("boom"), SignalReceived(15), KeyboardInterrupt()])
def test_a_failure_leaves_no_output_and_no_staging(tmp_path, error):
    out = tmp_path / "out"
    with pytest.raises(type(error)), VideoPackageWriter(out) as writer:
        shot = writer.begin_shot(0)
        writer.begin_layer_points(shot, 0, 4)
        writer.add_layer_points(shot, 0, 0, _vertices(0, 0, 0))
        writer.write_texture(shot, 0, 0, _texture(0, 0, 0))
        assert _folder_entries(tmp_path) != []  # the staging folder exists while writing
        raise error
    assert _folder_entries(tmp_path) == []


def test_a_failed_publish_leaves_the_old_package(tmp_path, package_dir):
    out = tmp_path / "out"
    shutil.copytree(package_dir, out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(PackageError, match="source.fps"), VideoPackageWriter(out) as writer:
        shot = writer.begin_shot(0)
        writer.begin_layer_points(shot, 0, 4)
        writer.add_frame(0, 10, 0.0, shot, 0.1)
        writer.write_texture(shot, 0, 0, _texture(0, 0, 0))
        writer.add_layer_points(shot, 0, 0, _vertices(0, 0, 0))
        writer.set_layer(shot, 0, "only", UVS, FACES, _vertices(0, 0, 0), (2.0, 2.0), None, 10)
        writer.end_shot(shot, 0)
        fields = _fields()
        fields["source"]["fps"] = -1
        writer.publish(fields)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert _folder_entries(tmp_path) == ["out"]
    read_video_package(out)


def test_replacing_a_video_package(tmp_path):
    out = tmp_path / "out"
    write_tiny(out)
    write_tiny(out, shots=((0, 1),))
    package = read_video_package(out)
    assert len(package.shots) == 1 and package.frame_count == 2
    assert not (out / "shots/001").exists()  # the old package's files went with it
    assert _folder_entries(tmp_path) == ["out"]


def test_a_users_folder_is_refused_and_untouched(tmp_path, package_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty and is not only a Photo3D video package"):
        VideoPackageWriter(out)
    assert _folder_entries(out) == ["notes.txt"] and _folder_entries(tmp_path) == ["mine"]
    # A video package with something of the user's added is theirs too.
    shutil.rmtree(out)
    shutil.copytree(package_dir, out)
    (out / "shots/000/layer_00/render.exr").write_bytes(b"x")
    with pytest.raises(OutputError, match="render.exr"):
        VideoPackageWriter(out)
    assert (out / "shots/000/layer_00/render.exr").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        VideoPackageWriter(tmp_path / "file")


def test_writer_misuse_is_a_value_error(tmp_path):
    with VideoPackageWriter(tmp_path / "out") as writer:
        with pytest.raises(ValueError, match="must start at frame 0"):
            writer.begin_shot(1)
        shot = writer.begin_shot(0)
        with pytest.raises(ValueError, match="not ended"):
            writer.begin_shot(1)
        writer.begin_layer_points(shot, 0, 4)
        with pytest.raises(ValueError, match="frame 1 given, 0 expected"):
            writer.add_layer_points(shot, 0, 1, _vertices(0, 0, 1))
        with pytest.raises(ValueError, match="uint8 RGBA"):
            writer.write_texture(shot, 0, 0, np.zeros((H, W, 3), np.uint8))
        writer.write_texture(shot, 0, 0, _texture(0, 0, 0))
        with pytest.raises(ValueError, match="written twice"):
            writer.write_texture(shot, 0, 0, _texture(0, 0, 0))
        with pytest.raises(ValueError, match="the package's are 32x24"):
            writer.write_texture(shot, 1, 0, np.zeros((H, W + 1, 4), np.uint8))
        writer.add_layer_points(shot, 0, 0, _vertices(0, 0, 0))
        with pytest.raises(ValueError, match="1 frames for 2"):
            writer.end_shot(shot, 1)
        with pytest.raises(ValueError, match="never set with set_layer"):
            writer.publish(_fields())
        with pytest.raises(ValueError, match="the writer fills frames"):
            writer.publish({**_fields(), "frames": []})


def test_stray_texture_is_not_published(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="outside the package's shots"), VideoPackageWriter(out) as writer:
        shot = writer.begin_shot(0)
        writer.begin_layer_points(shot, 0, 4)
        writer.add_frame(0, 10, 0.0, shot, 0.1)
        writer.write_texture(shot, 0, 0, _texture(0, 0, 0))
        writer.write_texture(shot, 0, 1, _texture(0, 0, 1))  # a frame the shot will not hold
        writer.add_layer_points(shot, 0, 0, _vertices(0, 0, 0))
        writer.set_layer(shot, 0, "only", UVS, FACES, _vertices(0, 0, 0), (2.0, 2.0), 2.0, 10)
        writer.end_shot(shot, 0)
        writer.publish(_fields())
    assert _folder_entries(tmp_path) == []

"""The package contract: atomic writes, and a reader that rejects what it cannot trust."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.errors import OutputError, PackageError
from core.options import PipelineOptions
from core.package import FORMAT_VERSION, read_package, save_mesh_file, write_package_atomically
from core.pipeline import convert_image
from tests.scenes import square_scene


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pkg")
    image, depth = square_scene().write(folder / "in")
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    return convert_image(image, folder / "pkg", options).package_path


@pytest.fixture
def copy(package_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(package_dir, target)
    return target


def _edit(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_valid_package_reads(package_dir):
    package = read_package(package_dir)
    assert package.manifest.format == "photo3d.layers" and package.manifest.version == FORMAT_VERSION == "1.1"
    assert package.manifest.camera.width == 128
    mesh = package.load_mesh(package.layers[0])
    assert mesh["vertices"].dtype == np.float32 and mesh["faces"].dtype == np.int32


def test_only_known_versions_are_accepted(copy):
    _edit(copy, lambda m: m.update(version="1.0"))
    read_package(copy)
    # A newer minor version may add fields that change what the files mean: refuse rather than guess.
    for version in ("1.7", "1.999"):
        _edit(copy, lambda m, v=version: m.update(version=v))
        with pytest.raises(PackageError, match="newer than this reader"):
            read_package(copy)
    for version in ("1", "1.x", 1.0, None):
        _edit(copy, lambda m, v=version: m.update(version=v))
        with pytest.raises(PackageError, match="MAJOR.MINOR"):
            read_package(copy)
    _edit(copy, lambda m: m.update(version="2.0"))
    with pytest.raises(PackageError, match="version '2.0' is not supported"):
        read_package(copy)


@pytest.mark.parametrize("path", ["../outside.png", "/etc/passwd", "layers/../../x.png", "C:/x.png"])
def test_paths_leaving_the_package_are_rejected(copy, path):
    _edit(copy, lambda m: m["layers"][0].update(texture=path))
    with pytest.raises(PackageError, match="package|relative"):
        read_package(copy)


def test_missing_files_and_fields(copy):
    (copy / "layers" / "01_color.png").unlink()
    with pytest.raises(PackageError, match="01_color.png is missing"):
        read_package(copy)
    _edit(copy, lambda m: m.pop("camera"))
    with pytest.raises(PackageError, match="camera"):
        read_package(copy)
    (copy / "manifest.json").write_text("{broken")
    with pytest.raises(PackageError, match="cannot read"):
        read_package(copy)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"vertices": np.zeros((3, 3), np.float64)}, "'vertices' must be float32"),
        ({"uvs": np.zeros((3, 3), np.float32)}, "'uvs' must be float32 \\(N, 2\\)"),
        ({"faces": np.array([[0, 1, 5]], np.int32)}, "face indices outside"),
        ({"faces": np.array([[0, 1, 2]], np.int64)}, "'faces' must be int32"),
        ({"uvs": np.zeros((2, 2), np.float32)}, "2 UVs for 3 vertices"),
        ({"vertices": np.full((3, 3), np.nan, np.float32)}, "non-finite"),
    ],
)
def test_wrong_mesh_arrays_are_rejected(copy, arrays, message):
    mesh = {
        "vertices": np.zeros((3, 3), np.float32),
        "uvs": np.zeros((3, 2), np.float32),
        "faces": np.array([[0, 1, 2]], np.int32),
    }
    mesh.update(arrays)
    np.savez(copy / "layers" / "00_mesh.npz", **mesh)
    with pytest.raises(PackageError, match=message):
        read_package(copy)


def test_not_a_package(tmp_path):
    with pytest.raises(PackageError, match="not a Photo3D layer package"):
        read_package(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(PackageError, match="not a Photo3D layer package"):
        read_package(tmp_path)


def test_failed_write_leaves_nothing_and_keeps_the_old_package(package_dir, tmp_path):
    target = tmp_path / "pkg"
    shutil.copytree(package_dir, target)
    before = (target / "manifest.json").read_text()

    def fail_midway(tmp):
        save_mesh_file(tmp / "half.npz", np.zeros((1, 3)), np.zeros((1, 2)), np.zeros((0, 3)))
        raise RuntimeError("crashed while writing")

    with pytest.raises(RuntimeError):
        write_package_atomically(target, fail_midway)
    assert (target / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_invalid_result_is_never_published(tmp_path):
    def bad_manifest(tmp):
        return {"format": "photo3d.layers", "version": "1.0"}

    with pytest.raises(PackageError):
        write_package_atomically(tmp_path / "pkg", bad_manifest)
    assert list(tmp_path.iterdir()) == []


def test_output_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        write_package_atomically(tmp_path / "f", lambda tmp: {})

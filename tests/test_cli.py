"""The command line: summary, JSON, exit codes, and bad inputs that must fail cleanly."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture
def scene_files(tmp_path):
    return square_scene().write(tmp_path / "input")


def _convert_args(image, depth, out):
    return ["convert", str(image), "-o", str(out), "--depth", str(depth), "--segment", "none", "-q"]


def test_convert_prints_summary_and_validate_agrees(scene_files, tmp_path):
    image, depth = scene_files
    result = _run(*_convert_args(image, depth, tmp_path / "pkg"))
    assert result.returncode == 0, result.stderr
    assert "mesh with 2 layers" in result.stdout
    assert "layer_00" in result.stdout and "inpainted" in result.stdout and "total" in result.stdout
    check = _run("validate", str(tmp_path / "pkg"))
    assert check.returncode == 0 and "valid" in check.stdout


def test_json_output_is_machine_readable(scene_files, tmp_path, capsys):
    image, depth = scene_files
    code = main([*_convert_args(image, depth, tmp_path / "pkg"), "--json", "--representation", "mpi", "--planes", "8"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["manifest"]["representation"] == "mpi"
    assert len(data["manifest"]["layers"]) <= 8


def _expect_failure(args, code, *words, capsys):
    assert main(args) == code
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err
    return err


def _no_package_left(folder: Path):
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.startswith("out")]
    assert leftovers == []


def test_missing_photo(tmp_path, capsys, scene_files):
    _, depth = scene_files
    _expect_failure(_convert_args(tmp_path / "nope.jpg", depth, tmp_path / "out"), 2, "nope.jpg", capsys=capsys)
    _no_package_left(tmp_path)


def test_truncated_jpeg(tmp_path, capsys, scene_files):
    _, depth = scene_files
    buffer = io.BytesIO()
    Image.fromarray(square_scene().rgb).save(buffer, "JPEG")
    bad = tmp_path / "half.jpg"
    bad.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _expect_failure(_convert_args(bad, depth, tmp_path / "out"), 2, "half.jpg", capsys=capsys)
    _no_package_left(tmp_path)


def test_zero_size_and_tiny_images(tmp_path, capsys, scene_files):
    _, depth = scene_files
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _expect_failure(_convert_args(empty, depth, tmp_path / "out"), 2, "empty.png", capsys=capsys)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    _expect_failure(_convert_args(tiny, depth, tmp_path / "out"), 2, "1x1", capsys=capsys)
    _no_package_left(tmp_path)


def _png_header_only(path: Path, width: int, height: int):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )


def test_huge_dimensions_fail_fast(tmp_path, capsys, scene_files):
    _, depth = scene_files
    huge = tmp_path / "huge.png"
    _png_header_only(huge, 100_000, 100_000)
    _expect_failure(_convert_args(huge, depth, tmp_path / "out"), 2, "huge.png", capsys=capsys)
    _no_package_left(tmp_path)


def test_depth_map_of_the_wrong_shape(tmp_path, capsys, scene_files):
    image, _ = scene_files
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((50, 200), np.float32))
    _expect_failure(_convert_args(image, wrong, tmp_path / "out"), 2, "wrong.npy", "200", capsys=capsys)
    _no_package_left(tmp_path)


def test_unwritable_output(tmp_path, capsys, scene_files):
    image, depth = scene_files
    # /proc refuses new folders even to root, so this holds wherever the tests run.
    _expect_failure(_convert_args(image, depth, Path("/proc/photo3d-test/pkg")), 4, "/proc", capsys=capsys)


def test_disk_full_mid_write_leaves_nothing(tmp_path, capsys, scene_files, monkeypatch):
    import errno

    import core.pipeline

    image, depth = scene_files
    calls = []

    def full_disk(path, rgba):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        core.textures.write_png(path, rgba)

    monkeypatch.setattr(core.pipeline, "write_png", full_disk)
    _expect_failure(_convert_args(image, depth, tmp_path / "out"), 4, "No space left", capsys=capsys)
    _no_package_left(tmp_path)


def test_output_that_cannot_be_a_folder(tmp_path, capsys, scene_files):
    image, depth = scene_files
    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    # A file in the way of the package, and a file in the way of its parent folder.
    _expect_failure(_convert_args(image, depth, blocker), 4, "file.txt", capsys=capsys)
    _expect_failure(_convert_args(image, depth, blocker / "pkg"), 4, "file.txt", capsys=capsys)
    assert blocker.read_text() == "mine"


def test_non_empty_folder_is_never_replaced(tmp_path, capsys, scene_files):
    image, depth = scene_files
    target = tmp_path / "holiday"
    target.mkdir()
    (target / "photo.jpg").write_text("precious")
    _expect_failure(_convert_args(image, depth, target), 4, "not empty", capsys=capsys)
    assert (target / "photo.jpg").read_text() == "precious"


def test_existing_package_is_replaced(tmp_path, scene_files):
    image, depth = scene_files
    out = tmp_path / "pkg"
    assert main(_convert_args(image, depth, out)) == 0
    first = json.loads((out / "manifest.json").read_text())["created_at"]
    assert main([*_convert_args(image, depth, out), "--layers", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["layers"]) == 1 and first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "pkg"]


def test_bad_option_values(tmp_path, capsys, scene_files):
    image, depth = scene_files
    _expect_failure([*_convert_args(image, depth, tmp_path / "o"), "--layers", "0"], 2, "max_layers", capsys=capsys)
    _expect_failure(
        [*_convert_args(image, depth, tmp_path / "o"), "--near", "5", "--far", "1"], 2, "near", capsys=capsys
    )


def test_missing_model_offline_names_the_model(tmp_path, capsys, scene_files):
    image, _ = scene_files
    args = [
        "convert",
        str(image),
        "-o",
        str(tmp_path / "o"),
        "--depth-model",
        "someone/depth-model-x",
        "--models-dir",
        str(tmp_path),
        "--offline",
        "-q",
    ]
    _expect_failure(args, 3, "someone/depth-model-x", capsys=capsys)
